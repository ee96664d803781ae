#include "lib/derp/handshake.h"

#include <gtest/gtest.h>

#include <set>

#include "lib/derp/frame.h"
#include "tests/unit/derp/testdata.h"

namespace derpkit::derp {
namespace {

using testing::Hex;

const PrivateKey kServerPrivate =
    PrivateKey::FromRaw(Hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e5f"));
const PrivateKey kClientPrivate =
    PrivateKey::FromRaw(Hex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e7f"));
constexpr std::string_view kMeshHex =
    "f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805";

Nonce NonceFrom(std::uint8_t first) {
  Nonce n;
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = static_cast<std::byte>(first + i);
  return n;
}

ByteSpan PayloadOf(const Bytes& frame) { return ByteSpan(frame).subspan(kFrameHeaderSize); }

// ---- §14.2 vectors ----

const Bytes kClientInfoVector =
    Hex("02 00000068"
        "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7"
        "17de701d87b44c624c5baf9ced5eb763"
        "7290998345c4f87919ad718cb15f3acbc7681a0deb13a91b1cc6e58f566b0057");

const Bytes kServerInfoVector =
    Hex("03 00000035"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7"
        "2a89115f509c63c25c2e0364c0785f65 1383647884a485efd35195b60a");

TEST(ClientInfo, SpecVectorEncodesByteForByte) {
  ClientInfo info;
  info.can_ack_pings = true;
  EXPECT_EQ(EncodeClientInfoJson(info), R"({"version":2,"CanAckPings":true})");
  Bytes out;
  AppendClientInfo(out, kClientPrivate, kServerPrivate.Public(), info, NonceFrom(0xa0));
  EXPECT_EQ(out, kClientInfoVector);
}

TEST(ClientInfo, SpecVectorOpensWithTheServerKey) {
  auto opened = OpenClientInfo(PayloadOf(kClientInfoVector), kServerPrivate);
  ASSERT_TRUE(opened.has_value()) << Describe(opened.error());
  EXPECT_EQ(opened->client, kClientPrivate.Public());
  EXPECT_EQ(opened->info.version, 2);
  EXPECT_TRUE(opened->info.can_ack_pings);
  EXPECT_FALSE(opened->info.is_prober);
  EXPECT_FALSE(opened->info.mesh_key.has_value());
  EXPECT_EQ(opened->info.app_name, "");
}

TEST(ServerInfo, SpecVectorBothWays) {
  EXPECT_EQ(EncodeServerInfoJson(ServerInfo{}), R"({"version":2})");
  Bytes out;
  AppendServerInfo(out, kServerPrivate, kClientPrivate.Public(), ServerInfo{}, NonceFrom(0xc0));
  EXPECT_EQ(out, kServerInfoVector);
  auto info = OpenServerInfo(PayloadOf(kServerInfoVector), kClientPrivate, kServerPrivate.Public());
  ASSERT_TRUE(info.has_value()) << Describe(info.error());
  EXPECT_EQ(info->version, 2);
  EXPECT_EQ(info->token_bucket_bytes_per_second, 0);
  EXPECT_EQ(info->token_bucket_bytes_burst, 0);
}

// ---- ClientInfo JSON ----

TEST(ClientInfoJson, MeshClientEncodesLikeTheCurrentReferenceClient) {
  ClientInfo info;
  info.mesh_key = *MeshKey::Parse(kMeshHex);
  EXPECT_EQ(EncodeClientInfoJson(info),
            R"({"meshKey":")" + std::string(kMeshHex) + R"(","version":2,"CanAckPings":false})");
}

TEST(ClientInfoJson, OptionalMembersAppearInSpecOrderOnlyWhenSet) {
  ClientInfo info;
  info.version = 0;
  info.mesh_key = MeshKey{};  // zero key = no key
  EXPECT_EQ(EncodeClientInfoJson(info), R"({"CanAckPings":false})");
  info.version = 2;
  info.can_ack_pings = true;
  info.is_prober = true;
  info.app_name = "derpprobe";
  EXPECT_EQ(EncodeClientInfoJson(info),
            R"({"version":2,"CanAckPings":true,"IsProber":true,"AppName":"derpprobe"})");
}

TEST(ClientInfoJson, EscapesStringsLikeGo) {
  ClientInfo info;
  info.app_name = std::string("q\"b\\s<>&\n\t\b\f\x01\x7f") + "\xff" + "\xe2\x80\xa8\xe2\x80\xa9" +
                  "\xc3\xa9\xf0\x9f\x94\x91" + "\xed\xa0\x80" + "\xc0\xaf";
  const std::string json = EncodeClientInfoJson(info);
  EXPECT_EQ(json,
            "{\"version\":2,\"CanAckPings\":false,\"AppName\":"
            "\"q\\\"b\\\\s\\u003c\\u003e\\u0026\\n\\t\\b\\f\\u0001\x7f\\ufffd\\u2028\\u2029"
            "\xc3\xa9\xf0\x9f\x94\x91\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"}");
  // What we write, we (and nlohmann) can read back.
  auto decoded = DecodeClientInfoJson(json);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->app_name.substr(0, 6), "q\"b\\s<");
}

TEST(ClientInfoJson, DecodesOldAndNewMemberOrders) {
  for (const std::string& json :
       {R"({"version":2,"meshKey":")" + std::string(kMeshHex) + R"(","CanAckPings":false})",
        R"({"meshKey":")" + std::string(kMeshHex) + R"(","version":2,"CanAckPings":false})"}) {
    auto info = DecodeClientInfoJson(json);
    ASSERT_TRUE(info.has_value()) << json;
    EXPECT_EQ(info->version, 2);
    ASSERT_TRUE(info->mesh_key.has_value());
    EXPECT_EQ(info->mesh_key->ToHex(), kMeshHex);
    EXPECT_FALSE(info->can_ack_pings);
  }
}

TEST(ClientInfoJson, MatchesNamesCaseInsensitivelyAndIgnoresUnknownAndNull) {
  auto info = DecodeClientInfoJson(
      R"({"VERSION":7,"canackpings":true,"isprober":true,"appname":"x","Extra":[1,{}],)"
      R"("MeshKey":null})");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->version, 7);
  EXPECT_TRUE(info->can_ack_pings);
  EXPECT_TRUE(info->is_prober);
  EXPECT_EQ(info->app_name, "x");
  EXPECT_FALSE(info->mesh_key.has_value());
}

TEST(ClientInfoJson, PrefersTheExactlyNamedMember) {
  auto info = DecodeClientInfoJson(R"({"Version":3,"version":2,"VERSION":4})");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->version, 2);
}

TEST(ClientInfoJson, MissingMembersGetGoZeroValues) {
  for (std::string_view json : {"{}", "null"}) {
    auto info = DecodeClientInfoJson(json);
    ASSERT_TRUE(info.has_value()) << json;
    EXPECT_EQ(info->version, 0);
    EXPECT_FALSE(info->can_ack_pings);
    EXPECT_FALSE(info->mesh_key.has_value());
  }
}

TEST(ClientInfoJson, AllZeroMeshKeyMeansNoMeshKey) {
  auto info = DecodeClientInfoJson(R"({"meshKey":")" + std::string(64, '0') + R"("})");
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->mesh_key.has_value());
}

TEST(ClientInfoJson, RejectsMeshKeyThatIsNotSixtyFourHexDigits) {
  for (const std::string& value :
       {std::string(""), std::string(kMeshHex.substr(0, 62)), std::string(kMeshHex) + "00",
        "z" + std::string(kMeshHex.substr(1)), " " + std::string(kMeshHex) + " "}) {
    auto info = DecodeClientInfoJson(R"({"version":2,"meshKey":")" + value + R"("})");
    ASSERT_FALSE(info.has_value()) << value;
    EXPECT_EQ(info.error(), HandshakeError::kBadMeshKey);
  }
}

TEST(ClientInfoJson, RejectsInvalidJsonNonObjectsAndWrongTypes) {
  for (std::string_view json :
       {"", "{", "[]", "2", "\"x\"", R"({"version":2} x)", R"({"version":"2"})",
        R"({"version":2.0})", R"({"version":2e0})", R"({"version":99999999999})",
        R"({"CanAckPings":1})", R"({"IsProber":"true"})", R"({"AppName":5})", R"({"meshKey":5})",
        R"({"meshKey":["00"]})"}) {
    auto info = DecodeClientInfoJson(json);
    ASSERT_FALSE(info.has_value()) << json;
    EXPECT_EQ(info.error(), HandshakeError::kBadJson) << json;
  }
}

TEST(ClientInfoJson, EncodeThenDecodeGivesTheSameInfo) {
  ClientInfo info;
  info.version = 5;
  info.can_ack_pings = true;
  info.is_prober = true;
  info.mesh_key = *MeshKey::Parse(kMeshHex);
  info.app_name = "caf\xc3\xa9 <tool>";
  auto decoded = DecodeClientInfoJson(EncodeClientInfoJson(info));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->version, info.version);
  EXPECT_EQ(decoded->can_ack_pings, info.can_ack_pings);
  EXPECT_EQ(decoded->is_prober, info.is_prober);
  ASSERT_TRUE(decoded->mesh_key.has_value());
  EXPECT_TRUE(decoded->mesh_key->ConstantTimeEquals(*info.mesh_key));
  EXPECT_EQ(decoded->app_name, info.app_name);
}

// ---- ServerInfo JSON ----

TEST(ServerInfoJson, TokenBucketMembersAppearOnlyWhenNonZero) {
  ServerInfo info;
  info.token_bucket_bytes_per_second = 1000000;
  EXPECT_EQ(EncodeServerInfoJson(info), R"({"version":2,"TokenBucketBytesPerSecond":1000000})");
  info.token_bucket_bytes_burst = 5000000000;
  info.version = 0;
  EXPECT_EQ(EncodeServerInfoJson(info),
            R"({"TokenBucketBytesPerSecond":1000000,"TokenBucketBytesBurst":5000000000})");
  auto decoded = DecodeServerInfoJson(EncodeServerInfoJson(info));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->version, 0);
  EXPECT_EQ(decoded->token_bucket_bytes_per_second, 1000000);
  EXPECT_EQ(decoded->token_bucket_bytes_burst, 5000000000);
}

TEST(ServerInfoJson, RejectsInvalidJsonAndWrongTypes) {
  for (std::string_view json :
       {"", "[1]", R"({"version":true})", R"({"TokenBucketBytesBurst":1.5})",
        R"({"tokenbucketbytespersecond":"1"})"}) {
    auto info = DecodeServerInfoJson(json);
    ASSERT_FALSE(info.has_value()) << json;
    EXPECT_EQ(info.error(), HandshakeError::kBadJson);
  }
}

// ---- boxes and their errors ----

TEST(Sealed, OpensOnlyWithTheMatchingKeys) {
  const PrivateKey a = PrivateKey::Generate();
  const PrivateKey b = PrivateKey::Generate();
  const Nonce nonce = RandomNonce();
  Bytes box;
  AppendSealed(box, AsBytes("secret"), nonce, b.Public(), a);
  EXPECT_EQ(box.size(), kBoxOverheadSize + 6);
  auto opened = OpenSealed(box, nonce, a.Public(), b);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(AsText(*opened), "secret");
  auto wrong = OpenSealed(box, nonce, b.Public(), b);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error(), HandshakeError::kBoxDoesNotOpen);
  auto short_box = OpenSealed(ByteSpan(box).first(kBoxOverheadSize - 1), nonce, a.Public(), b);
  ASSERT_FALSE(short_box.has_value());
  EXPECT_EQ(short_box.error(), HandshakeError::kTooShort);
}

TEST(Sealed, ToALowOrderKeyWritesAnUnopenableBoxInsteadOfLeaking) {
  Bytes box;
  AppendSealed(box, AsBytes("mesh key inside"), NonceFrom(0), PublicKey{}, kClientPrivate);
  EXPECT_EQ(box, Bytes(kBoxOverheadSize + 15));
}

TEST(Sealed, RandomNoncesDiffer) { EXPECT_NE(RandomNonce(), RandomNonce()); }

TEST(OpenClientInfo, RejectsPayloadTooShortForKeyNonceAndTag) {
  const ByteSpan payload = PayloadOf(kClientInfoVector).first(kKeySize + kNonceSize + 15);
  auto opened = OpenClientInfo(payload, kServerPrivate);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), HandshakeError::kTooShort);
}

TEST(OpenClientInfo, RejectsPayloadOverTheServerLimit) {
  Bytes payload(kMaxClientInfoSize + 1);
  auto opened = OpenClientInfo(payload, kServerPrivate);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), HandshakeError::kTooLarge);
}

TEST(OpenClientInfo, RejectsTamperedBoxAndWrongServerKey) {
  Bytes tampered(PayloadOf(kClientInfoVector).begin(), PayloadOf(kClientInfoVector).end());
  tampered.back() ^= std::byte{1};
  auto opened = OpenClientInfo(tampered, kServerPrivate);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), HandshakeError::kBoxDoesNotOpen);
  auto wrong_key = OpenClientInfo(PayloadOf(kClientInfoVector), kClientPrivate);
  ASSERT_FALSE(wrong_key.has_value());
  EXPECT_EQ(wrong_key.error(), HandshakeError::kBoxDoesNotOpen);
}

TEST(OpenClientInfo, ReportsJsonErrorsAfterTheBoxOpens) {
  const struct {
    std::string_view json;
    HandshakeError want;
  } cases[] = {{"not json", HandshakeError::kBadJson},
               {R"({"meshKey":""})", HandshakeError::kBadMeshKey}};
  for (const auto& c : cases) {
    Bytes frame;
    AppendClientInfoJson(frame, kClientPrivate, kServerPrivate.Public(), c.json, NonceFrom(1));
    auto opened = OpenClientInfo(PayloadOf(frame), kServerPrivate);
    ASSERT_FALSE(opened.has_value()) << c.json;
    EXPECT_EQ(opened.error(), c.want) << c.json;
  }
}

TEST(OpenClientInfo, RoundTripsAMeshClient) {
  ClientInfo info;
  info.mesh_key = *MeshKey::Parse(kMeshHex);
  info.app_name = "relay-mesh";
  Bytes frame;
  AppendClientInfo(frame, kClientPrivate, kServerPrivate.Public(), info, RandomNonce());
  auto opened = OpenClientInfo(PayloadOf(frame), kServerPrivate);
  ASSERT_TRUE(opened.has_value());
  ASSERT_TRUE(opened->info.mesh_key.has_value());
  EXPECT_EQ(opened->info.mesh_key->ToHex(), kMeshHex);
  EXPECT_EQ(opened->info.app_name, "relay-mesh");
}

TEST(OpenServerInfo, RejectsShortLargeTamperedAndBadJson) {
  const PublicKey server = kServerPrivate.Public();
  auto short_payload =
      OpenServerInfo(PayloadOf(kServerInfoVector).first(kNonceSize + 15), kClientPrivate, server);
  ASSERT_FALSE(short_payload.has_value());
  EXPECT_EQ(short_payload.error(), HandshakeError::kTooShort);

  auto large = OpenServerInfo(Bytes(kNonceSize + kMaxInfoSize + 1), kClientPrivate, server);
  ASSERT_FALSE(large.has_value());
  EXPECT_EQ(large.error(), HandshakeError::kTooLarge);

  auto wrong_key = OpenServerInfo(PayloadOf(kServerInfoVector), kServerPrivate, server);
  ASSERT_FALSE(wrong_key.has_value());
  EXPECT_EQ(wrong_key.error(), HandshakeError::kBoxDoesNotOpen);

  Bytes frame;
  AppendServerInfoJson(frame, kServerPrivate, kClientPrivate.Public(), "[]", NonceFrom(2));
  auto bad_json = OpenServerInfo(PayloadOf(frame), kClientPrivate, server);
  ASSERT_FALSE(bad_json.has_value());
  EXPECT_EQ(bad_json.error(), HandshakeError::kBadJson);
}

TEST(Handshake, EveryErrorHasADistinctDescription) {
  std::set<std::string_view> seen;
  for (auto e :
       {HandshakeError::kTooShort, HandshakeError::kTooLarge, HandshakeError::kBoxDoesNotOpen,
        HandshakeError::kBadJson, HandshakeError::kBadMeshKey}) {
    EXPECT_TRUE(seen.insert(Describe(e)).second);
  }
}

}  // namespace
}  // namespace derpkit::derp
