// Fuzzes lib/net's TLS 1.3 record layer (tls13_records.h), the parser Tls13Stream runs on every
// byte a TLS client sends the relay. Any input parses or fails cleanly, and:
// - raw mode (first byte even): the rest is read as a record stream, as Tls13Stream does: a
//   header must give a size within bounds, and a record the fuzzer made up (it cannot forge the
//   AEAD tag) never opens, and a failed open leaves the sequence number alone;
// - sealed mode (first byte odd): the rest is the inner plaintext of one record (its last byte the
//   content type, zeros before it as padding, as the fuzzer chose), sealed under real keys and
//   opened again: the content type is the last non-zero byte and the plaintext round-trips, an
//   all-zero inner plaintext is kNoContentType; with one bit flipped (the first byte's other bits
//   say whether and which),
//   the record no longer opens.
// The second byte also picks the cipher suite.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "lib/net/tls13_records.h"

namespace {

namespace net = derpkit::net;

net::TrafficKeys KeysFor(net::Tls13Suite suite) {
  std::array<std::uint8_t, 48> secret{};
  for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::uint8_t>(i * 7 + 1);
  auto keys = net::MakeTrafficKeys(suite, std::span(secret).first(net::Tls13SecretBytes(suite)));
  if (!keys) __builtin_trap();
  return *keys;
}

void FuzzRecordStream(net::TrafficKeys keys, std::span<const std::byte> in) {
  std::vector<std::byte> record;
  while (in.size() >= net::kRecordHeaderBytes) {
    const auto size = net::RecordSize(in.first<net::kRecordHeaderBytes>());
    if (!size) return;
    if (*size < net::kRecordHeaderBytes + 1 + net::kRecordTagBytes ||
        *size > net::kRecordHeaderBytes + net::kMaxRecordCiphertextBytes) {
      __builtin_trap();
    }
    if (*size > in.size()) return;  // a record cut off: Tls13Stream waits for the rest
    record.assign(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(*size));
    const std::uint64_t seq = keys.seq;
    const auto opened = net::OpenRecord(keys, record);
    if (opened) __builtin_trap();  // a forged tag
    if (keys.seq != seq) __builtin_trap();
    in = in.subspan(*size);
  }
}

void FuzzSealedRecord(net::TrafficKeys keys, std::uint8_t flip, std::span<const std::byte> inner) {
  if (inner.empty() || inner.size() > net::kMaxRecordPlaintextBytes + 1) return;
  const std::size_t plaintext_bytes = inner.size() - 1;
  const auto type = static_cast<net::ContentType>(inner.back());
  std::vector<std::byte> record(net::kRecordHeaderBytes + inner.size() + net::kRecordTagBytes);
  std::copy(inner.begin(), inner.end() - 1, record.begin() + net::kRecordHeaderBytes);
  net::TrafficKeys sealer = keys;
  const auto sealed = net::SealRecord(sealer, type, record, plaintext_bytes);
  if (!sealed || *sealed != record.size()) __builtin_trap();

  // The expected verdict: the content type is the last non-zero byte of `inner`.
  std::size_t end = inner.size();
  while (end > 0 && inner[end - 1] == std::byte{0}) --end;

  if (flip & 1) {
    std::vector<std::byte> damaged = record;
    const std::size_t bit = (static_cast<std::size_t>(flip) >> 1) * 131 % (damaged.size() * 8);
    damaged[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    net::TrafficKeys opener = keys;
    if (net::OpenRecord(opener, damaged)) __builtin_trap();
  }

  net::TrafficKeys opener = keys;
  const auto opened = net::OpenRecord(opener, record);
  if (end == 0) {
    if (opened || opened.error() != net::RecordError::kNoContentType) __builtin_trap();
    return;
  }
  if (!opened || opened->plaintext_bytes != end - 1 ||
      opened->type != static_cast<net::ContentType>(inner[end - 1]) ||
      std::memcmp(record.data() + net::kRecordHeaderBytes, inner.data(), end - 1) != 0 ||
      opener.seq != keys.seq + 1) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto in = std::as_bytes(std::span(data, size));
  static const std::array<net::TrafficKeys, 3> keys = {
      KeysFor(net::Tls13Suite::kAes128GcmSha256), KeysFor(net::Tls13Suite::kAes256GcmSha384),
      KeysFor(net::Tls13Suite::kChacha20Poly1305Sha256)};
  const net::TrafficKeys& k = keys[data[1] % keys.size()];
  if (data[0] % 2 == 0) {
    FuzzRecordStream(k, in.subspan(2));
  } else {
    FuzzSealedRecord(k, static_cast<std::uint8_t>(data[0] >> 1), in.subspan(2));
  }
  return 0;
}
