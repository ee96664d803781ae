#include "lib/derp/keys.h"

#include <sodium.h>

#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

namespace derpkit::derp {
namespace {

constexpr std::string_view kNodePublicPrefix = "nodekey:";
constexpr std::string_view kNodePrivatePrefix = "privkey:";

// libsodium takes unsigned char; std::byte and unsigned char may alias each other.
unsigned char* U8(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* U8(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

Expected<std::array<std::byte, kKeySize>, KeyError> ParseHex32(std::string_view hex) {
  std::array<std::byte, kKeySize> out{};
  if (hex.size() != 2 * kKeySize) return Unexpected{KeyError::kBadLength};
  if (!HexDecodeInto(hex, out)) return Unexpected{KeyError::kBadHex};
  return out;
}

Expected<std::array<std::byte, kKeySize>, KeyError> ParseTyped(std::string_view text,
                                                               std::string_view prefix) {
  if (!text.starts_with(prefix)) return Unexpected{KeyError::kBadPrefix};
  return ParseHex32(text.substr(prefix.size()));
}

bool AllZero(const std::array<std::byte, kKeySize>& b) {
  return sodium_is_zero(U8(b.data()), b.size()) == 1;
}

bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view Describe(KeyError e) {
  switch (e) {
    case KeyError::kBadPrefix:
      return "key text does not start with the expected type prefix";
    case KeyError::kBadLength:
      return "key text is not exactly 64 hex digits after its prefix";
    case KeyError::kBadHex:
      return "key text contains a character that is not a hex digit";
  }
  return "unknown key error";
}

void EnsureSodiumInitialized() {
  // sodium_init() is itself thread-safe; the static just skips the call after the first time.
  static const bool initialised = [] {
    if (sodium_init() < 0) std::abort();  // cannot happen on a working system; no RNG otherwise
    return true;
  }();
  (void)initialised;
}

// ---- PublicKey ----

PublicKey PublicKey::FromSpan(ByteSpan s) {
  assert(s.size() == kKeySize);
  PublicKey k;
  std::memcpy(k.bytes.data(), s.data(), kKeySize);
  return k;
}

Expected<PublicKey, KeyError> PublicKey::FromText(std::string_view text) {
  auto raw = ParseTyped(text, kNodePublicPrefix);
  if (!raw) return Unexpected{raw.error()};
  return PublicKey{*raw};
}

Expected<PublicKey, KeyError> PublicKey::FromHex(std::string_view hex) {
  auto raw = ParseHex32(hex);
  if (!raw) return Unexpected{raw.error()};
  return PublicKey{*raw};
}

bool PublicKey::IsZero() const { return AllZero(bytes); }

std::string PublicKey::ToText() const { return std::string(kNodePublicPrefix) + HexEncode(bytes); }

std::string PublicKey::ToHex() const { return HexEncode(bytes); }

std::string PublicKey::ShortString() const {
  if (IsZero()) return "";
  // Five base64 characters cover the first 30 bits, so the first 4 bytes are enough.
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::uint32_t v = LoadBigEndian32(bytes);
  std::string out = "[";
  for (int shift = 26; shift >= 2; shift -= 6) out.push_back(kAlphabet[(v >> shift) & 0x3f]);
  out.push_back(']');
  return out;
}

std::size_t PublicKeyHash::operator()(const PublicKey& k) const {
  static const auto hash_key = [] {
    EnsureSodiumInitialized();
    std::array<unsigned char, crypto_shorthash_KEYBYTES> key{};
    randombytes_buf(key.data(), key.size());
    return key;
  }();
  std::array<unsigned char, crypto_shorthash_BYTES> out{};
  crypto_shorthash(out.data(), U8(k.bytes.data()), k.bytes.size(), hash_key.data());
  std::uint64_t h = 0;
  static_assert(sizeof(h) == crypto_shorthash_BYTES);
  std::memcpy(&h, out.data(), sizeof(h));
  return static_cast<std::size_t>(h);
}

// ---- PrivateKey ----

PrivateKey PrivateKey::Generate() {
  EnsureSodiumInitialized();
  PrivateKey k;
  randombytes_buf(k.bytes.data(), k.bytes.size());
  k.bytes[0] &= std::byte{248};
  k.bytes[31] = (k.bytes[31] & std::byte{127}) | std::byte{64};
  return k;
}

PrivateKey PrivateKey::FromRaw(ByteSpan raw) {
  assert(raw.size() == kKeySize);
  PrivateKey k;
  std::memcpy(k.bytes.data(), raw.data(), kKeySize);
  return k;
}

Expected<PrivateKey, KeyError> PrivateKey::FromText(std::string_view text) {
  auto raw = ParseTyped(text, kNodePrivatePrefix);
  if (!raw) return Unexpected{raw.error()};
  return PrivateKey{*raw};
}

bool PrivateKey::IsZero() const { return AllZero(bytes); }

PublicKey PrivateKey::Public() const {
  EnsureSodiumInitialized();
  PublicKey pub;
  // Multiplying the (internally clamped) scalar by the base point cannot fail.
  (void)crypto_scalarmult_base(U8(pub.bytes.data()), U8(bytes.data()));
  return pub;
}

std::string PrivateKey::ToText() const {
  return std::string(kNodePrivatePrefix) + HexEncode(bytes);
}

// ---- MeshKey ----

Expected<MeshKey, KeyError> MeshKey::Parse(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return Unexpected{KeyError::kBadLength};
  text = text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  auto raw = ParseHex32(text);
  if (!raw) return Unexpected{raw.error()};
  return MeshKey{*raw};
}

bool MeshKey::IsZero() const { return AllZero(bytes); }

bool MeshKey::ConstantTimeEquals(const MeshKey& other) const {
  return sodium_memcmp(bytes.data(), other.bytes.data(), kKeySize) == 0;
}

std::string MeshKey::ToHex() const { return HexEncode(bytes); }

// ---- derper key file ----

std::string_view Describe(KeyFileError e) {
  switch (e) {
    case KeyFileError::kBadJson:
      return "key file is not a JSON object";
    case KeyFileError::kMissingPrivateKey:
      return "key file has no \"PrivateKey\" member";
    case KeyFileError::kBadPrivateKey:
      return "key file \"PrivateKey\" is not a string of the form \"privkey:<64 hex digits>\"";
  }
  return "unknown key file error";
}

Expected<PrivateKey, KeyFileError> ParseKeyFile(std::string_view json) {
  const auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return Unexpected{KeyFileError::kBadJson};
  // Go prefers an exact name match and otherwise takes a case-insensitive one.
  const nlohmann::json* value = nullptr;
  if (auto it = doc.find("PrivateKey"); it != doc.end()) {
    value = &*it;
  } else {
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      if (EqualsIgnoringAsciiCase(it.key(), "PrivateKey")) value = &*it;
    }
  }
  if (value == nullptr || value->is_null()) return Unexpected{KeyFileError::kMissingPrivateKey};
  if (!value->is_string()) return Unexpected{KeyFileError::kBadPrivateKey};
  auto key = PrivateKey::FromText(value->get_ref<const std::string&>());
  if (!key) return Unexpected{KeyFileError::kBadPrivateKey};
  return *key;
}

std::string FormatKeyFile(const PrivateKey& key) {
  // Go's json.MarshalIndent(config, "", "\t"), byte for byte.
  return "{\n\t\"PrivateKey\": \"" + key.ToText() + "\"\n}";
}

}  // namespace derpkit::derp
