#include "lib/derp/handshake.h"

#include <sodium.h>

#include <cassert>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "lib/derp/frame.h"

namespace derpkit::derp {
namespace {

using Json = nlohmann::json;

unsigned char* U8(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* U8(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

// ---- JSON encoding, byte-compatible with Go's encoding/json ----

// Returns the length of the valid UTF-8 sequence at s[i], or 0 if it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as in Go's utf8.DecodeRune).
std::size_t Utf8SequenceSize(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  const unsigned char b0 = byte(i);
  std::size_t size = 0;
  unsigned lo = 0x80;  // allowed range of the second byte; later bytes are always 80..bf
  unsigned hi = 0xbf;
  if (in(b0, 0xc2, 0xdf)) {
    size = 2;
  } else if (b0 == 0xe0) {
    size = 3;
    lo = 0xa0;  // no overlong forms
  } else if (in(b0, 0xe1, 0xec) || in(b0, 0xee, 0xef)) {
    size = 3;
  } else if (b0 == 0xed) {
    size = 3;
    hi = 0x9f;  // no UTF-16 surrogates
  } else if (b0 == 0xf0) {
    size = 4;
    lo = 0x90;  // no overlong forms
  } else if (in(b0, 0xf1, 0xf3)) {
    size = 4;
  } else if (b0 == 0xf4) {
    size = 4;
    hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  const std::size_t left = s.size() - i;
  if (left < size || !in(byte(i + 1), lo, hi)) return 0;
  for (std::size_t k = 2; k < size; ++k) {
    if (!in(byte(i + k), 0x80, 0xbf)) return 0;
  }
  return size;
}

// Appends `s` as a JSON string exactly as Go's json.Marshal writes it: HTML-sensitive <, >, &
// and U+2028/U+2029 escaped as \u00xx/\u202x, invalid UTF-8 bytes replaced by \ufffd.
void AppendGoJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\':
          out += "\\\\";
          break;
        case '"':
          out += "\\\"";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xf]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const std::size_t size = Utf8SequenceSize(s, i);
    if (size == 0) {
      out += "\\ufffd";
      ++i;
    } else if (size == 3 && c == 0xe2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) & 0xfe) == 0xa8) {
      out += (static_cast<unsigned char>(s[i + 2]) == 0xa8) ? "\\u2028" : "\\u2029";
      i += size;
    } else {
      out.append(s.substr(i, size));
      i += size;
    }
  }
  out.push_back('"');
}

// Appends `"name":` with a comma before it unless it is the first member.
void AppendMemberName(std::string& out, std::string_view name) {
  if (out.size() > 1) out.push_back(',');
  out.push_back('"');
  out.append(name);
  out += "\":";
}

// ---- JSON decoding, Go-like ----

bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Returns the member Go's decoder would store into the field `name`, or nullptr. Go takes every
// matching member in document order; the parsed object no longer has that order, so we prefer
// the exact name and otherwise take the last case-insensitive match in key order. Only ASCII
// case folding (Go also folds the Kelvin sign and long s; no real client sends those).
const Json* FindMember(const Json& object, std::string_view name) {
  const Json* found = nullptr;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (it.key() == name) {
      found = &*it;
      break;
    }
    if (EqualsIgnoringAsciiCase(it.key(), name)) found = &*it;
  }
  if (found != nullptr && found->is_null()) return nullptr;  // Go leaves the field alone
  return found;
}

template <typename Int>
bool ReadInt(const Json* v, Int& out) {
  if (v == nullptr) return true;
  // Go rejects 2.0 and 2e0 for an int field; nlohmann parses exactly those as floats.
  if (v->is_number_unsigned()) {
    const auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<Int>::max())) return false;
    out = static_cast<Int>(u);
    return true;
  }
  if (v->is_number_integer()) {
    const auto s = v->get<std::int64_t>();
    if (s < std::numeric_limits<Int>::min() || s > std::numeric_limits<Int>::max()) return false;
    out = static_cast<Int>(s);
    return true;
  }
  return false;
}

bool ReadBool(const Json* v, bool& out) {
  if (v == nullptr) return true;
  if (!v->is_boolean()) return false;
  out = v->get<bool>();
  return true;
}

bool ReadString(const Json* v, std::string& out) {
  if (v == nullptr) return true;
  if (!v->is_string()) return false;
  out = v->get_ref<const std::string&>();
  return true;
}

// Parses `text` into an object (or null, which Go accepts as "all zero"); nullopt otherwise.
std::optional<Json> ParseObject(std::string_view text) {
  Json doc = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !(doc.is_object() || doc.is_null())) return std::nullopt;
  if (doc.is_null()) doc = Json::object();
  return doc;
}

// ---- boxes ----

Nonce NonceAt(ByteSpan payload, std::size_t offset) {
  Nonce nonce;
  std::memcpy(nonce.data(), payload.data() + offset, kNonceSize);
  return nonce;
}

std::uint32_t FrameLength(std::size_t n) {
  assert(n <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(n);
}

}  // namespace

std::string_view Describe(HandshakeError e) {
  switch (e) {
    case HandshakeError::kTooShort:
      return "handshake payload is too short to hold a sealed box";
    case HandshakeError::kTooLarge:
      return "handshake payload exceeds its size limit";
    case HandshakeError::kBoxDoesNotOpen:
      return "sealed box does not open with these keys (wrong key or tampered)";
    case HandshakeError::kBadJson:
      return "handshake JSON is not an object or a member has the wrong type";
    case HandshakeError::kBadMeshKey:
      return "meshKey is present but not exactly 64 hex digits";
  }
  return "unknown handshake error";
}

std::string EncodeClientInfoJson(const ClientInfo& info) {
  std::string out = "{";
  if (info.mesh_key && !info.mesh_key->IsZero()) {
    AppendMemberName(out, "meshKey");
    AppendGoJsonString(out, info.mesh_key->ToHex());
  }
  if (info.version != 0) {
    AppendMemberName(out, "version");
    out += std::to_string(info.version);
  }
  AppendMemberName(out, "CanAckPings");
  out += info.can_ack_pings ? "true" : "false";
  if (info.is_prober) {
    AppendMemberName(out, "IsProber");
    out += "true";
  }
  if (!info.app_name.empty()) {
    AppendMemberName(out, "AppName");
    AppendGoJsonString(out, info.app_name);
  }
  out.push_back('}');
  return out;
}

Expected<ClientInfo, HandshakeError> DecodeClientInfoJson(std::string_view json) {
  const auto doc = ParseObject(json);
  if (!doc) return Unexpected{HandshakeError::kBadJson};
  ClientInfo info;
  info.version = 0;  // Go's zero value when the member is missing
  if (!ReadInt(FindMember(*doc, "version"), info.version) ||
      !ReadBool(FindMember(*doc, "CanAckPings"), info.can_ack_pings) ||
      !ReadBool(FindMember(*doc, "IsProber"), info.is_prober) ||
      !ReadString(FindMember(*doc, "AppName"), info.app_name)) {
    return Unexpected{HandshakeError::kBadJson};
  }
  if (const Json* mesh = FindMember(*doc, "meshKey"); mesh != nullptr) {
    if (!mesh->is_string()) return Unexpected{HandshakeError::kBadJson};
    const auto& text = mesh->get_ref<const std::string&>();
    // Go's key parser takes the value as is: no whitespace trimming inside JSON.
    if (text.size() != 2 * kKeySize) return Unexpected{HandshakeError::kBadMeshKey};
    auto key = MeshKey::Parse(text);
    if (!key) return Unexpected{HandshakeError::kBadMeshKey};
    if (!key->IsZero()) info.mesh_key = *key;
  }
  return info;
}

std::string EncodeServerInfoJson(const ServerInfo& info) {
  std::string out = "{";
  if (info.version != 0) {
    AppendMemberName(out, "version");
    out += std::to_string(info.version);
  }
  if (info.token_bucket_bytes_per_second != 0) {
    AppendMemberName(out, "TokenBucketBytesPerSecond");
    out += std::to_string(info.token_bucket_bytes_per_second);
  }
  if (info.token_bucket_bytes_burst != 0) {
    AppendMemberName(out, "TokenBucketBytesBurst");
    out += std::to_string(info.token_bucket_bytes_burst);
  }
  out.push_back('}');
  return out;
}

Expected<ServerInfo, HandshakeError> DecodeServerInfoJson(std::string_view json) {
  const auto doc = ParseObject(json);
  if (!doc) return Unexpected{HandshakeError::kBadJson};
  ServerInfo info;
  info.version = 0;
  if (!ReadInt(FindMember(*doc, "version"), info.version) ||
      !ReadInt(FindMember(*doc, "TokenBucketBytesPerSecond"), info.token_bucket_bytes_per_second) ||
      !ReadInt(FindMember(*doc, "TokenBucketBytesBurst"), info.token_bucket_bytes_burst)) {
    return Unexpected{HandshakeError::kBadJson};
  }
  return info;
}

Nonce RandomNonce() {
  EnsureSodiumInitialized();
  Nonce nonce;
  randombytes_buf(nonce.data(), nonce.size());
  return nonce;
}

void AppendSealed(Bytes& out, ByteSpan message, const Nonce& nonce, const PublicKey& recipient,
                  const PrivateKey& sender) {
  EnsureSodiumInitialized();
  const std::size_t at = out.size();
  out.resize(at + kBoxOverheadSize + message.size());
  const int rc =
      crypto_box_easy(U8(out.data() + at), U8(message.data()), message.size(), U8(nonce.data()),
                      U8(recipient.bytes.data()), U8(sender.bytes.data()));
  if (rc != 0) {
    // The recipient key is a low-order point (zero, or another small-subgroup point): no real
    // key is, so only a broken or hostile peer sends one, and no secret shared key exists. Go
    // would seal with an all-zero shared secret, readable by anyone. We write zeros instead,
    // which nobody can open, so the handshake fails at the other end without leaking the JSON.
    std::memset(out.data() + at, 0, out.size() - at);
  }
}

Expected<Bytes, HandshakeError> OpenSealed(ByteSpan box, const Nonce& nonce,
                                           const PublicKey& sender, const PrivateKey& recipient) {
  if (box.size() < kBoxOverheadSize) return Unexpected{HandshakeError::kTooShort};
  EnsureSodiumInitialized();
  Bytes message(box.size() - kBoxOverheadSize);
  // Low-order sender keys fail here too (libsodium rejects them), unlike in Go.
  if (crypto_box_open_easy(U8(message.data()), U8(box.data()), box.size(), U8(nonce.data()),
                           U8(sender.bytes.data()), U8(recipient.bytes.data())) != 0) {
    return Unexpected{HandshakeError::kBoxDoesNotOpen};
  }
  return message;
}

void AppendClientInfo(Bytes& out, const PrivateKey& client, const PublicKey& server,
                      const ClientInfo& info, const Nonce& nonce) {
  AppendClientInfoJson(out, client, server, EncodeClientInfoJson(info), nonce);
}

void AppendClientInfoJson(Bytes& out, const PrivateKey& client, const PublicKey& server,
                          std::string_view json, const Nonce& nonce) {
  AppendFrameHeader(out, FrameType::kClientInfo,
                    FrameLength(kKeySize + kNonceSize + kBoxOverheadSize + json.size()));
  AppendBytes(out, client.Public().bytes);
  AppendBytes(out, nonce);
  AppendSealed(out, AsBytes(json), nonce, server, client);
}

Expected<OpenedClientInfo, HandshakeError> OpenClientInfo(ByteSpan payload,
                                                          const PrivateKey& server) {
  if (payload.size() < kKeySize + kNonceSize + kBoxOverheadSize) {
    return Unexpected{HandshakeError::kTooShort};
  }
  if (payload.size() > kMaxClientInfoSize) return Unexpected{HandshakeError::kTooLarge};
  const PublicKey client = PublicKey::FromSpan(payload.first(kKeySize));
  auto json = OpenSealed(payload.subspan(kKeySize + kNonceSize), NonceAt(payload, kKeySize), client,
                         server);
  if (!json) return Unexpected{json.error()};
  auto info = DecodeClientInfoJson(AsText(*json));
  if (!info) return Unexpected{info.error()};
  return OpenedClientInfo{client, std::move(*info)};
}

void AppendServerInfo(Bytes& out, const PrivateKey& server, const PublicKey& client,
                      const ServerInfo& info, const Nonce& nonce) {
  AppendServerInfoJson(out, server, client, EncodeServerInfoJson(info), nonce);
}

void AppendServerInfoJson(Bytes& out, const PrivateKey& server, const PublicKey& client,
                          std::string_view json, const Nonce& nonce) {
  AppendFrameHeader(out, FrameType::kServerInfo,
                    FrameLength(kNonceSize + kBoxOverheadSize + json.size()));
  AppendBytes(out, nonce);
  AppendSealed(out, AsBytes(json), nonce, client, server);
}

Expected<ServerInfo, HandshakeError> OpenServerInfo(ByteSpan payload, const PrivateKey& client,
                                                    const PublicKey& server) {
  if (payload.size() < kNonceSize + kBoxOverheadSize) return Unexpected{HandshakeError::kTooShort};
  if (payload.size() > kNonceSize + kMaxInfoSize) return Unexpected{HandshakeError::kTooLarge};
  auto json = OpenSealed(payload.subspan(kNonceSize), NonceAt(payload, 0), server, client);
  if (!json) return Unexpected{json.error()};
  return DecodeServerInfoJson(AsText(*json));
}

}  // namespace derpkit::derp
