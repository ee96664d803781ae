#include "lib/derp/keys.h"

#include <gtest/gtest.h>

#include <cctype>
#include <compare>
#include <set>
#include <type_traits>
#include <unordered_set>

#include "tests/unit/derp/testdata.h"

namespace derpkit::derp {
namespace {

using testing::Hex;
using testing::LoadTestKeys;
using testing::ReadTestdata;
using testing::ReadTestdataJson;

constexpr std::string_view kServerPrivateHex =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e5f";
constexpr std::string_view kServerPublicHex =
    "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";
constexpr std::string_view kClientPrivateHex =
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e7f";
constexpr std::string_view kClientPublicHex =
    "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254";

TEST(Keys, SpecVectorServerKeyDerivesPublicTextAndShortForm) {
  const PrivateKey priv = PrivateKey::FromRaw(Hex(kServerPrivateHex));
  const PublicKey pub = priv.Public();
  EXPECT_EQ(pub.ToHex(), kServerPublicHex);
  EXPECT_EQ(pub.ToText(), "nodekey:" + std::string(kServerPublicHex));
  EXPECT_EQ(pub.ShortString(), "[j0DFr]");
  EXPECT_EQ(priv.ToText(), "privkey:" + std::string(kServerPrivateHex));
}

TEST(Keys, SpecVectorClientKeyDerivesPublicAndShortForm) {
  const PublicKey pub = PrivateKey::FromRaw(Hex(kClientPrivateHex)).Public();
  EXPECT_EQ(pub.ToHex(), kClientPublicHex);
  EXPECT_EQ(pub.ShortString(), "[NYBy1]");
}

TEST(Keys, SpecVectorTextParsesBackToTheSameBytes) {
  auto pub = PublicKey::FromText("nodekey:" + std::string(kServerPublicHex));
  ASSERT_TRUE(pub.has_value());
  EXPECT_EQ(Bytes(pub->bytes.begin(), pub->bytes.end()), Hex(kServerPublicHex));
  auto priv = PrivateKey::FromText("privkey:" + std::string(kClientPrivateHex));
  ASSERT_TRUE(priv.has_value());
  EXPECT_EQ(priv->Public().ToHex(), kClientPublicHex);
}

TEST(Keys, EveryCapturedKeyDerivesItsRecordedPublicKey) {
  const auto doc = ReadTestdataJson("keys/keys.json");
  ASSERT_EQ(doc["Keys"].size(), 9u);
  for (const auto& k : doc["Keys"]) {
    SCOPED_TRACE(k["Name"].get<std::string>());
    const auto priv = PrivateKey::FromText(k["Private"].get<std::string>());
    ASSERT_TRUE(priv.has_value());
    EXPECT_EQ(HexEncode(priv->bytes), k["RawPriv"].get<std::string>());
    const PublicKey pub = priv->Public();
    EXPECT_EQ(pub.ToText(), k["Public"].get<std::string>());
    EXPECT_EQ(pub.ToHex(), k["RawPub"].get<std::string>());
    EXPECT_EQ(priv->ToText(), k["Private"].get<std::string>());
    auto from_hex = PublicKey::FromHex(k["RawPub"].get<std::string>());
    ASSERT_TRUE(from_hex.has_value());
    EXPECT_EQ(*from_hex, pub);
  }
}

TEST(Keys, TextParsingAcceptsUppercaseHex) {
  std::string upper(kServerPublicHex);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto pub = PublicKey::FromText("nodekey:" + upper);
  ASSERT_TRUE(pub.has_value());
  EXPECT_EQ(pub->ToHex(), kServerPublicHex);
  auto untyped = PublicKey::FromHex(upper);
  ASSERT_TRUE(untyped.has_value());
  EXPECT_EQ(*untyped, *pub);
}

TEST(Keys, TextParsingRejectsWrongPrefix) {
  const std::string hex(kServerPublicHex);
  for (const std::string& text : {"mkey:" + hex, "NODEKEY:" + hex, hex, "privkey:" + hex}) {
    auto pub = PublicKey::FromText(text);
    ASSERT_FALSE(pub.has_value()) << text;
    EXPECT_EQ(pub.error(), KeyError::kBadPrefix);
  }
  auto priv = PrivateKey::FromText("nodekey:" + hex);
  ASSERT_FALSE(priv.has_value());
  EXPECT_EQ(priv.error(), KeyError::kBadPrefix);
}

TEST(Keys, TextParsingRejectsWrongLength) {
  const std::string hex(kServerPublicHex);
  for (const std::string& text :
       {"nodekey:" + hex.substr(0, 62), "nodekey:" + hex + "00", std::string("nodekey:")}) {
    auto pub = PublicKey::FromText(text);
    ASSERT_FALSE(pub.has_value()) << text;
    EXPECT_EQ(pub.error(), KeyError::kBadLength);
  }
  auto untyped = PublicKey::FromHex(hex + "0");
  ASSERT_FALSE(untyped.has_value());
  EXPECT_EQ(untyped.error(), KeyError::kBadLength);
}

TEST(Keys, TextParsingRejectsNonHexDigits) {
  std::string hex(kServerPublicHex);
  hex[10] = 'g';
  auto pub = PublicKey::FromText("nodekey:" + hex);
  ASSERT_FALSE(pub.has_value());
  EXPECT_EQ(pub.error(), KeyError::kBadHex);
  auto priv = PrivateKey::FromText("privkey:" + hex);
  ASSERT_FALSE(priv.has_value());
  EXPECT_EQ(priv.error(), KeyError::kBadHex);
}

TEST(Keys, ZeroKeyHasEmptyShortStringAndIsZero) {
  const PublicKey zero;
  EXPECT_TRUE(zero.IsZero());
  EXPECT_EQ(zero.ShortString(), "");
  PublicKey one;
  one.bytes[31] = std::byte{1};
  EXPECT_FALSE(one.IsZero());
  EXPECT_EQ(one.ShortString(), "[AAAAA]");
  EXPECT_TRUE(PrivateKey{}.IsZero());
}

TEST(Keys, PublicKeysOrderAndCompareByBytes) {
  PublicKey a;
  PublicKey b;
  b.bytes[0] = std::byte{1};
  EXPECT_LT(a, b);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, PublicKey{});
  std::set<PublicKey> ordered = {b, a};
  EXPECT_EQ(*ordered.begin(), a);
}

// Equality is a memcmp of its own (not the defaulted one): a difference in any byte counts.
TEST(Keys, PublicKeysDifferingInAnyOneByteAreNotEqual) {
  PublicKey base;
  for (std::size_t i = 0; i < base.bytes.size(); ++i) base.bytes[i] = std::byte(i * 7 + 1);
  PublicKey same = base;
  EXPECT_TRUE(base == same);
  EXPECT_FALSE(base != same);
  for (std::size_t i = 0; i < base.bytes.size(); ++i) {
    PublicKey other = base;
    other.bytes[i] ^= std::byte{0x80};
    EXPECT_FALSE(base == other) << "byte " << i;
    EXPECT_TRUE(base != other) << "byte " << i;
    EXPECT_NE(base <=> other, std::strong_ordering::equal) << "byte " << i;
  }
}

// keys.h: a hash that may throw makes libstdc++ keep each node's hash, so a lookup hashes once.
static_assert(!std::is_nothrow_invocable_v<PublicKeyHash, const PublicKey&>,
              "PublicKeyHash must stay potentially-throwing (see keys.h)");

TEST(Keys, HashIsConsistentAndSpreadsCapturedKeys) {
  const auto keys = LoadTestKeys();
  ASSERT_EQ(keys.size(), 9u);
  PublicKeyHash hash;
  std::unordered_set<std::size_t> hashes;
  std::unordered_set<PublicKey, PublicKeyHash> set;
  for (const auto& [name, k] : keys) {
    EXPECT_EQ(hash(k.pub), hash(PublicKey::FromSpan(k.pub.bytes))) << name;
    hashes.insert(hash(k.pub));
    set.insert(k.pub);
  }
  EXPECT_EQ(hashes.size(), keys.size());
  EXPECT_EQ(set.size(), keys.size());
  EXPECT_EQ(set.count(keys.at("A").pub), 1u);
}

TEST(Keys, GeneratedKeysAreClampedAndDistinct) {
  const PrivateKey a = PrivateKey::Generate();
  const PrivateKey b = PrivateKey::Generate();
  EXPECT_NE(a.bytes, b.bytes);
  for (const PrivateKey& k : {a, b}) {
    EXPECT_EQ(std::to_integer<int>(k.bytes[0]) & 7, 0);
    EXPECT_EQ(std::to_integer<int>(k.bytes[31]) & 0xc0, 0x40);
    EXPECT_FALSE(k.Public().IsZero());
  }
}

TEST(MeshKey, ParsesTheCapturedMeshKeyFileWithItsTrailingNewline) {
  const std::string file = ReadTestdata("keys/mesh.key");
  ASSERT_EQ(file.back(), '\n');
  auto key = MeshKey::Parse(file);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->ToHex(), ReadTestdataJson("keys/keys.json")["MeshKey"].get<std::string>());
  EXPECT_FALSE(key->IsZero());
}

TEST(MeshKey, TrimsSurroundingWhitespaceAndAcceptsUppercase) {
  auto key = MeshKey::Parse(
      " \t\r\nF27947D01A4A425499DECACCA04FFCEF12104F2D8FC3815364ACB6CF4392C805 \r\n");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->ToHex(), "f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805");
}

TEST(MeshKey, RejectsWrongLengthIncludingEmpty) {
  for (std::string_view text : {"", "   \n", "f27947d0", "nodekey:f27947d0"}) {
    auto key = MeshKey::Parse(text);
    ASSERT_FALSE(key.has_value()) << text;
    EXPECT_EQ(key.error(), KeyError::kBadLength);
  }
}

TEST(MeshKey, RejectsNonHexAndInnerWhitespace) {
  for (std::string_view text :
       {"z27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805",
        "f27947d01a4a425499decacca04ffcef 2104f2d8fc3815364acb6cf4392c805"}) {
    auto key = MeshKey::Parse(text);
    ASSERT_FALSE(key.has_value()) << text;
    EXPECT_EQ(key.error(), KeyError::kBadHex);
  }
}

TEST(MeshKey, ComparesByValue) {
  auto a = MeshKey::Parse("f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805");
  auto b = MeshKey::Parse("f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c806");
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->ConstantTimeEquals(*a));
  EXPECT_FALSE(a->ConstantTimeEquals(*b));
  EXPECT_TRUE(MeshKey{}.IsZero());
}

TEST(KeyFile, ParsesDerperKeyFileToTheRecordedPublicKey) {
  const std::string file = ReadTestdata("keys/derper.key");
  auto key = ParseKeyFile(file);
  ASSERT_TRUE(key.has_value()) << Describe(key.error());
  std::string pub_text = ReadTestdata("keys/derper.pub.txt");
  while (!pub_text.empty() && (pub_text.back() == '\n' || pub_text.back() == '\r')) {
    pub_text.pop_back();
  }
  EXPECT_EQ(key->Public().ToText(), pub_text);
}

TEST(KeyFile, FormatsByteIdenticalToDerper) {
  const std::string file = ReadTestdata("keys/derper.key");
  auto key = ParseKeyFile(file);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(FormatKeyFile(*key), file);
}

TEST(KeyFile, GeneratedKeyRoundTrips) {
  const PrivateKey key = PrivateKey::Generate();
  auto parsed = ParseKeyFile(FormatKeyFile(key));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->bytes, key.bytes);
}

TEST(KeyFile, MatchesMemberNameCaseInsensitivelyAndIgnoresUnknownMembers) {
  auto key = ParseKeyFile(
      R"({"other": 1, "privatekey": "privkey:807f2f6e9b4087720f3e0fc66248c6ca7847436dd932e6b420dda65153beb977"})");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->Public().ToHex(),
            "e4057ef8d0f8dcf8eab5617c8ba4ee0e5294e87fd976eb016ab6f97d890e1534");
}

TEST(KeyFile, RejectsInvalidJsonAndNonObjects) {
  for (std::string_view text : {"", "{", "[]", "\"privkey:00\"", "{} trailing"}) {
    auto key = ParseKeyFile(text);
    ASSERT_FALSE(key.has_value()) << text;
    EXPECT_EQ(key.error(), KeyFileError::kBadJson);
  }
}

TEST(KeyFile, RejectsMissingPrivateKey) {
  for (std::string_view text : {"{}", R"({"PublicKey": "x"})", R"({"PrivateKey": null})"}) {
    auto key = ParseKeyFile(text);
    ASSERT_FALSE(key.has_value()) << text;
    EXPECT_EQ(key.error(), KeyFileError::kMissingPrivateKey);
  }
}

TEST(KeyFile, RejectsMalformedPrivateKey) {
  for (
      std::string_view text :
      {R"({"PrivateKey": 5})", R"({"PrivateKey": "privkey:1234"})",
       R"({"PrivateKey": "nodekey:807f2f6e9b4087720f3e0fc66248c6ca7847436dd932e6b420dda65153beb977"})"}) {
    auto key = ParseKeyFile(text);
    ASSERT_FALSE(key.has_value()) << text;
    EXPECT_EQ(key.error(), KeyFileError::kBadPrivateKey);
  }
}

TEST(Keys, EveryErrorHasADistinctDescription) {
  std::set<std::string_view> seen;
  for (auto e : {KeyError::kBadPrefix, KeyError::kBadLength, KeyError::kBadHex}) {
    EXPECT_TRUE(seen.insert(Describe(e)).second);
  }
  for (auto e :
       {KeyFileError::kBadJson, KeyFileError::kMissingPrivateKey, KeyFileError::kBadPrivateKey}) {
    EXPECT_TRUE(seen.insert(Describe(e)).second);
  }
}

}  // namespace
}  // namespace derpkit::derp
