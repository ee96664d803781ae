// The TLS 1.3 record layer's cryptography (RFC 8446 §5 and §7), without sockets: traffic keys from
// a traffic secret (HKDF-Expand-Label "key"/"iv"), the next secret for a KeyUpdate ("traffic upd"),
// and sealing/opening one record in place with GnuTLS's AEAD (nonce = iv XOR sequence number, the
// inner content type after the plaintext, zero padding tolerated on open). OpenSSL derives the
// keys.
//
// Used by Tls13Stream after OpenSSL's handshake has been handed over; no handshake here.
//
// Thread affinity: a TrafficKeys belongs to one connection (its shard thread). SealRecord and
// OpenRecord use record_aead.h's per-thread cipher state (up to 256 keys per direction), so that
// records under a recently used key make no key schedule and an idle connection holds no cipher
// state at all.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "lib/util/expected.h"

namespace derpkit::net {

enum class Tls13Suite : std::uint8_t {
  kAes128GcmSha256,
  kAes256GcmSha384,
  kChacha20Poly1305Sha256
};

// TLS_AES_128_GCM_SHA256 (0x1301), TLS_AES_256_GCM_SHA384 (0x1302),
// TLS_CHACHA20_POLY1305_SHA256 (0x1303); nullopt for anything else.
std::optional<Tls13Suite> Tls13SuiteFromId(std::uint16_t protocol_id);
const char* Tls13SuiteName(Tls13Suite suite);
std::size_t Tls13SecretBytes(Tls13Suite suite);  // the hash length: 32 or 48
std::size_t Tls13KeyBytes(Tls13Suite suite);     // 16 or 32

enum class ContentType : std::uint8_t {
  kChangeCipherSpec = 20,
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
};

inline constexpr std::size_t kRecordHeaderBytes = 5;
inline constexpr std::size_t kRecordTagBytes = 16;
// The largest plaintext of one record (2^14) and the largest ciphertext a peer may send (2^14 +
// 256, RFC 8446 §5.2): anything longer is a record_overflow.
inline constexpr std::size_t kMaxRecordPlaintextBytes = 16384;
inline constexpr std::size_t kMaxRecordCiphertextBytes = 16384 + 256;
// header + plaintext + content type + tag of the largest record we write.
inline constexpr std::size_t kMaxSealedRecordBytes =
    kRecordHeaderBytes + kMaxRecordPlaintextBytes + 1 + kRecordTagBytes;

// One direction's record protection (104 bytes): with the other direction, all the crypto state a
// connection keeps.
struct TrafficKeys {
  Tls13Suite suite = Tls13Suite::kAes128GcmSha256;
  std::array<std::uint8_t, 48> secret{};  // the traffic secret (Tls13SecretBytes used)
  std::array<std::uint8_t, 32> key{};     // Tls13KeyBytes used
  std::array<std::uint8_t, 12> iv{};
  std::uint64_t seq = 0;  // of the next record
};

// HKDF-Expand-Label(secret, "tls13 " + label, context, length) for length <= the hash length
// (one HMAC block, all that the record layer needs).
Expected<void, std::string> HkdfExpandLabel(Tls13Suite suite, std::span<const std::uint8_t> secret,
                                            std::string_view label,
                                            std::span<const std::uint8_t> context,
                                            std::span<std::uint8_t> out);

// Keys for `secret` (a CLIENT_/SERVER_TRAFFIC_SECRET_N), sequence number 0.
Expected<TrafficKeys, std::string> MakeTrafficKeys(Tls13Suite suite,
                                                   std::span<const std::uint8_t> secret);
// KeyUpdate (RFC 8446 §7.2): the next secret, its key and IV, sequence number 0.
Expected<void, std::string> UpdateTrafficKeys(TrafficKeys& keys);

// Seals the record whose plaintext is at record[5 .. 5 + plaintext_bytes): writes the header,
// the content type after the plaintext, encrypts in place and appends the tag. `record` must
// hold kRecordHeaderBytes + plaintext_bytes + 1 + kRecordTagBytes bytes (plaintext_bytes <=
// 2^14). Returns the record's size, or an error (a failed cipher call, sequence numbers used up).
Expected<std::size_t, std::string> SealRecord(TrafficKeys& keys, ContentType type,
                                              std::span<std::byte> record,
                                              std::size_t plaintext_bytes);

struct OpenedRecord {
  ContentType type;
  std::size_t plaintext_bytes;  // at record[5 ..], in place
};
enum class RecordError { kBadHeader, kOverflow, kBadRecordMac, kNoContentType, kInternal };
const char* RecordErrorText(RecordError e);

// The total size of the record starting with `header` (5 bytes), or kBadHeader (not an
// application_data outer type, a wrong legacy version) / kOverflow (longer than 2^14 + 256).
Expected<std::size_t, RecordError> RecordSize(
    std::span<const std::byte, kRecordHeaderBytes> header);

// Opens one whole record (header included) in place: authenticates and decrypts, strips the
// padding and the inner content type. The sequence number advances only on success.
Expected<OpenedRecord, RecordError> OpenRecord(TrafficKeys& keys, std::span<std::byte> record);

}  // namespace derpkit::net
