// TLS 1.3 record protection (see tls13_records.h). No sockets; the AEAD itself (and its per-thread
// cipher state) is record_aead.cc's.

#include "lib/net/tls13_records.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "lib/net/record_aead.h"

namespace derpkit::net {

namespace {

const EVP_MD* SuiteHash(Tls13Suite suite) {
  return suite == Tls13Suite::kAes256GcmSha384 ? EVP_sha384() : EVP_sha256();
}

std::array<std::uint8_t, 12> RecordNonce(const TrafficKeys& keys) {
  std::array<std::uint8_t, 12> nonce = keys.iv;
  for (int i = 0; i < 8; ++i) {
    nonce[11 - i] ^= static_cast<std::uint8_t>(keys.seq >> (8 * i));
  }
  return nonce;
}

void WriteRecordHeader(std::byte* at, std::size_t ciphertext_bytes) {
  at[0] = static_cast<std::byte>(ContentType::kApplicationData);
  at[1] = std::byte{0x03};
  at[2] = std::byte{0x03};
  at[3] = static_cast<std::byte>(ciphertext_bytes >> 8);
  at[4] = static_cast<std::byte>(ciphertext_bytes & 0xff);
}

}  // namespace

std::optional<Tls13Suite> Tls13SuiteFromId(std::uint16_t protocol_id) {
  switch (protocol_id) {
    case 0x1301:
      return Tls13Suite::kAes128GcmSha256;
    case 0x1302:
      return Tls13Suite::kAes256GcmSha384;
    case 0x1303:
      return Tls13Suite::kChacha20Poly1305Sha256;
    default:
      return std::nullopt;
  }
}

const char* Tls13SuiteName(Tls13Suite suite) {
  switch (suite) {
    case Tls13Suite::kAes128GcmSha256:
      return "TLS_AES_128_GCM_SHA256";
    case Tls13Suite::kAes256GcmSha384:
      return "TLS_AES_256_GCM_SHA384";
    case Tls13Suite::kChacha20Poly1305Sha256:
      return "TLS_CHACHA20_POLY1305_SHA256";
  }
  return "?";
}

std::size_t Tls13SecretBytes(Tls13Suite suite) {
  return suite == Tls13Suite::kAes256GcmSha384 ? 48 : 32;
}

std::size_t Tls13KeyBytes(Tls13Suite suite) {
  return suite == Tls13Suite::kAes128GcmSha256 ? 16 : 32;
}

const char* RecordErrorText(RecordError e) {
  switch (e) {
    case RecordError::kBadHeader:
      return "TLS record: bad header (not application_data with version 0x0303)";
    case RecordError::kOverflow:
      return "TLS record: longer than 2^14 + 256 bytes (record_overflow)";
    case RecordError::kBadRecordMac:
      return "TLS record: authentication failed (bad_record_mac)";
    case RecordError::kNoContentType:
      return "TLS record: no inner content type (all padding)";
    case RecordError::kInternal:
      return "TLS record: cipher failure";
  }
  return "TLS record: error";
}

Expected<void, std::string> HkdfExpandLabel(Tls13Suite suite, std::span<const std::uint8_t> secret,
                                            std::string_view label,
                                            std::span<const std::uint8_t> context,
                                            std::span<std::uint8_t> out) {
  const EVP_MD* md = SuiteHash(suite);
  const std::size_t hash_bytes = static_cast<std::size_t>(EVP_MD_get_size(md));
  constexpr std::string_view kPrefix = "tls13 ";
  if (out.size() > hash_bytes || kPrefix.size() + label.size() > 255 || context.size() > 255) {
    return Unexpected(std::string("HKDF-Expand-Label: length out of range"));
  }
  // HkdfLabel = uint16 length, opaque label<7..255>, opaque context<0..255>; then T(1) =
  // HMAC(secret, HkdfLabel || 0x01), of which the first `length` bytes are the output.
  std::array<std::uint8_t, 2 + 1 + 255 + 1 + 255 + 1> info{};
  std::size_t n = 0;
  info[n++] = static_cast<std::uint8_t>(out.size() >> 8);
  info[n++] = static_cast<std::uint8_t>(out.size() & 0xff);
  info[n++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
  std::memcpy(info.data() + n, kPrefix.data(), kPrefix.size());
  n += kPrefix.size();
  std::memcpy(info.data() + n, label.data(), label.size());
  n += label.size();
  info[n++] = static_cast<std::uint8_t>(context.size());
  if (!context.empty()) std::memcpy(info.data() + n, context.data(), context.size());
  n += context.size();
  info[n++] = 0x01;
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> block{};
  unsigned int block_bytes = 0;
  if (HMAC(md, secret.data(), static_cast<int>(secret.size()), info.data(), n, block.data(),
           &block_bytes) == nullptr ||
      block_bytes < out.size()) {
    return Unexpected(std::string("HKDF-Expand-Label: HMAC failed"));
  }
  std::memcpy(out.data(), block.data(), out.size());
  OPENSSL_cleanse(block.data(), block.size());
  return {};
}

Expected<TrafficKeys, std::string> MakeTrafficKeys(Tls13Suite suite,
                                                   std::span<const std::uint8_t> secret) {
  if (secret.size() != Tls13SecretBytes(suite)) {
    return Unexpected(std::string("traffic secret of ") + std::to_string(secret.size()) +
                      " bytes for " + Tls13SuiteName(suite));
  }
  TrafficKeys keys;
  keys.suite = suite;
  std::memcpy(keys.secret.data(), secret.data(), secret.size());
  auto key =
      HkdfExpandLabel(suite, secret, "key", {}, std::span(keys.key).first(Tls13KeyBytes(suite)));
  if (!key) return Unexpected(key.error());
  auto iv = HkdfExpandLabel(suite, secret, "iv", {}, keys.iv);
  if (!iv) return Unexpected(iv.error());
  return keys;
}

Expected<void, std::string> UpdateTrafficKeys(TrafficKeys& keys) {
  const std::size_t secret_bytes = Tls13SecretBytes(keys.suite);
  std::array<std::uint8_t, 48> next{};
  auto r = HkdfExpandLabel(keys.suite, std::span(keys.secret).first(secret_bytes), "traffic upd",
                           {}, std::span(next).first(secret_bytes));
  if (!r) return r;
  auto made = MakeTrafficKeys(keys.suite, std::span(next).first(secret_bytes));
  OPENSSL_cleanse(next.data(), next.size());
  if (!made) return Unexpected(made.error());
  OPENSSL_cleanse(&keys, sizeof keys);
  keys = *made;
  return {};
}

Expected<std::size_t, std::string> SealRecord(TrafficKeys& keys, ContentType type,
                                              std::span<std::byte> record,
                                              std::size_t plaintext_bytes) {
  const std::size_t inner_bytes = plaintext_bytes + 1;
  const std::size_t total = kRecordHeaderBytes + inner_bytes + kRecordTagBytes;
  if (plaintext_bytes > kMaxRecordPlaintextBytes || record.size() < total) {
    return Unexpected(std::string("TLS record: plaintext too long to seal"));
  }
  // RFC 8446 §5.3: the sequence number must not wrap; rekeying is the peer's job long before.
  if (keys.seq == UINT64_MAX)
    return Unexpected(std::string("TLS record: sequence numbers used up"));
  std::byte* header = record.data();
  auto* body = reinterpret_cast<unsigned char*>(record.data() + kRecordHeaderBytes);
  WriteRecordHeader(header, inner_bytes + kRecordTagBytes);
  body[plaintext_bytes] = static_cast<unsigned char>(type);
  const auto nonce = RecordNonce(keys);
  if (SealRecordBody(keys, nonce, record.first<kRecordHeaderBytes>(), body, inner_bytes,
                     body + inner_bytes) != AeadOutcome::kOk) {
    return Unexpected(std::string("TLS record: encryption failed"));
  }
  ++keys.seq;
  return total;
}

Expected<std::size_t, RecordError> RecordSize(
    std::span<const std::byte, kRecordHeaderBytes> header) {
  if (header[0] != static_cast<std::byte>(ContentType::kApplicationData) ||
      header[1] != std::byte{0x03} || header[2] != std::byte{0x03}) {
    return Unexpected(RecordError::kBadHeader);
  }
  const std::size_t length =
      (std::to_integer<std::size_t>(header[3]) << 8) | std::to_integer<std::size_t>(header[4]);
  if (length > kMaxRecordCiphertextBytes) return Unexpected(RecordError::kOverflow);
  // The shortest protected record: one content type byte and the tag.
  if (length < 1 + kRecordTagBytes) return Unexpected(RecordError::kBadRecordMac);
  return kRecordHeaderBytes + length;
}

Expected<OpenedRecord, RecordError> OpenRecord(TrafficKeys& keys, std::span<std::byte> record) {
  if (record.size() < kRecordHeaderBytes) return Unexpected(RecordError::kBadHeader);
  auto size = RecordSize(record.first<kRecordHeaderBytes>());
  if (!size) return Unexpected(size.error());
  if (*size != record.size()) return Unexpected(RecordError::kBadHeader);
  if (keys.seq == UINT64_MAX) return Unexpected(RecordError::kInternal);
  const std::size_t inner_bytes = record.size() - kRecordHeaderBytes - kRecordTagBytes;
  auto* body = reinterpret_cast<unsigned char*>(record.data() + kRecordHeaderBytes);
  const auto nonce = RecordNonce(keys);
  switch (OpenRecordBody(keys, nonce, record.first<kRecordHeaderBytes>(), body, inner_bytes,
                         body + inner_bytes)) {
    case AeadOutcome::kOk:
      break;
    case AeadOutcome::kBadTag:
      return Unexpected(RecordError::kBadRecordMac);
    case AeadOutcome::kFailed:
      return Unexpected(RecordError::kInternal);
  }
  ++keys.seq;
  // RFC 8446 §5.4: the content type is the last non-zero byte; zeros after it are padding.
  std::size_t end = inner_bytes;
  while (end > 0 && body[end - 1] == 0) --end;
  if (end == 0) return Unexpected(RecordError::kNoContentType);
  return OpenedRecord{static_cast<ContentType>(body[end - 1]), end - 1};
}

}  // namespace derpkit::net
