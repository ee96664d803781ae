// Curve25519 keys as DERP uses them: node public keys (client identity, "nodekey:<hex>"), the
// server's private key ("privkey:<hex>", derper's key file) and the region mesh key (bare hex).
// Spec: derp-protocol.md §1.1, §2. All types are plain values; copy them freely. Thread-safe.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::derp {

// Why a key's text form was rejected.
enum class KeyError {
  kBadPrefix,  // missing or wrong type prefix ("nodekey:", "privkey:")
  kBadLength,  // not exactly 64 hex digits after the prefix
  kBadHex,     // 64 characters, but not all hex digits
};
std::string_view Describe(KeyError e);

// Initialises libsodium once per process (thread-safe, idempotent). Every function in lib/derp
// that needs it calls it; callers only need it for their own direct libsodium use.
void EnsureSodiumInitialized();

// A node public key: the 32 raw bytes that identify a client on the wire.
struct PublicKey {
  std::array<std::byte, kKeySize> bytes{};

  // Copies a 32-byte span (asserted: a wrong size is the caller's bug, not peer input).
  static PublicKey FromSpan(ByteSpan s);
  // Parses "nodekey:" + 64 hex digits (either case).
  static Expected<PublicKey, KeyError> FromText(std::string_view text);
  // Parses 64 untyped hex digits (Derp-Public-Key header, meta-certificate CN).
  static Expected<PublicKey, KeyError> FromHex(std::string_view hex);

  bool IsZero() const;
  // Returns "nodekey:" + lowercase hex.
  std::string ToText() const;
  // Returns 64 lowercase hex digits.
  std::string ToHex() const;
  // Returns the debug form "[j0DFr]" (first 5 characters of standard base64), or "" for the
  // zero key.
  std::string ShortString() const;

  // Equality is one memcmp the compiler inlines as two 16-byte compares: the defaulted one
  // compares std::byte by std::byte (~200 instructions), and the relay compares keys for every
  // packet (route lookups, the last sender of a receiver).
  friend bool operator==(const PublicKey& a, const PublicKey& b) noexcept {
    return std::memcmp(a.bytes.data(), b.bytes.data(), kKeySize) == 0;
  }
  friend auto operator<=>(const PublicKey&, const PublicKey&) = default;
};

// Hashes public keys for unordered containers. Keys are chosen by (possibly hostile) clients, so
// this is a keyed hash (SipHash-2-4) with a random per-process key: nobody can precompute keys
// that collide in our tables. Costs one SipHash of 32 bytes.
//
// Deliberately not noexcept: libstdc++ then keeps each node's hash in the node (8 bytes), so a
// lookup hashes only the key it looks for. With a noexcept hash it hashes again every node it
// walks past to see whether that node still belongs to the bucket: two SipHashes per route
// lookup, one per relayed packet, measured with callgrind.
struct PublicKeyHash {
  std::size_t operator()(const PublicKey& k) const;
};

// A Curve25519 private key. Only ToText() prints it; keep it out of logs.
struct PrivateKey {
  std::array<std::byte, kKeySize> bytes{};

  // Returns a new random key, clamped (b[0] &= 248; b[31] = (b[31] & 127) | 64).
  static PrivateKey Generate();
  // Copies 32 raw bytes as given, without clamping (asserted size).
  static PrivateKey FromRaw(ByteSpan raw);
  // Parses "privkey:" + 64 hex digits (either case).
  static Expected<PrivateKey, KeyError> FromText(std::string_view text);

  bool IsZero() const;
  // Returns the matching public key (X25519 base-point multiplication).
  PublicKey Public() const;
  // Returns "privkey:" + lowercase hex. The only function that reveals the key.
  std::string ToText() const;
};

// The region's pre-shared mesh key (derper --mesh-psk-file). The all-zero key means "none".
struct MeshKey {
  std::array<std::byte, kKeySize> bytes{};

  // Parses exactly 64 hex digits (either case) after trimming surrounding ASCII whitespace, so
  // a key file's trailing newline is fine. Never returns kBadPrefix.
  static Expected<MeshKey, KeyError> Parse(std::string_view text);

  bool IsZero() const;
  // Compares in constant time: the key is a shared secret presented by untrusted clients.
  bool ConstantTimeEquals(const MeshKey& other) const;
  std::string ToHex() const;
};

// Why derper's key file was rejected.
enum class KeyFileError {
  kBadJson,            // not a JSON object
  kMissingPrivateKey,  // no "PrivateKey" member (or null)
  kBadPrivateKey,      // "PrivateKey" is not a string in the "privkey:<64 hex>" form
};
std::string_view Describe(KeyFileError e);

// Parses derper's key file {"PrivateKey": "privkey:<hex>"}. Member names match
// case-insensitively and unknown members are ignored, as Go's encoding/json does.
Expected<PrivateKey, KeyFileError> ParseKeyFile(std::string_view json);

// Returns the key file exactly as derper writes it: tab-indented, no trailing newline.
std::string FormatKeyFile(const PrivateKey& key);

}  // namespace derpkit::derp
