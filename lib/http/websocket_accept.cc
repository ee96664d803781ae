#include "lib/http/websocket_accept.h"

#include <cstdint>

namespace derpkit::http {
namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint32_t RotateLeft(std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

// One 64-byte block of FIPS 180-4 §6.1.2.
void Sha1Block(std::array<std::uint32_t, 5>& h, const std::byte* block) {
  std::array<std::uint32_t, 80> w{};
  for (int t = 0; t < 16; ++t) w[t] = LoadBigEndian32(ByteSpan(block + 4 * t, 4));
  for (int t = 16; t < 80; ++t) w[t] = RotateLeft(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; ++t) {
    std::uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    const std::uint32_t temp = RotateLeft(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = RotateLeft(b, 30);
    b = a;
    a = temp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

std::array<std::byte, 20> Sha1(ByteSpan in) {
  std::array<std::uint32_t, 5> h = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  std::size_t full = in.size() / 64 * 64;
  for (std::size_t i = 0; i < full; i += 64) Sha1Block(h, in.data() + i);
  // Padding: 0x80, zeros, then the message length in bits as a big-endian u64 (one or two blocks).
  std::array<std::byte, 128> tail{};
  const std::size_t rest = in.size() - full;
  for (std::size_t i = 0; i < rest; ++i) tail[i] = in[full + i];
  tail[rest] = std::byte{0x80};
  const std::size_t tail_size = rest + 1 + 8 <= 64 ? 64 : 128;
  const std::uint64_t bits = static_cast<std::uint64_t>(in.size()) * 8;
  StoreBigEndian32(std::span(tail).subspan(tail_size - 8, 4),
                   static_cast<std::uint32_t>(bits >> 32));
  StoreBigEndian32(std::span(tail).subspan(tail_size - 4, 4), static_cast<std::uint32_t>(bits));
  for (std::size_t i = 0; i < tail_size; i += 64) Sha1Block(h, tail.data() + i);

  std::array<std::byte, 20> digest{};
  for (int i = 0; i < 5; ++i) StoreBigEndian32(std::span(digest).subspan(4 * i, 4), h[i]);
  return digest;
}

std::string Base64Encode(ByteSpan in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = std::to_integer<std::uint32_t>(in[i]) << 16 |
                            std::to_integer<std::uint32_t>(in[i + 1]) << 8 |
                            std::to_integer<std::uint32_t>(in[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kBase64Alphabet[(v >> shift) & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::to_integer<std::uint32_t>(in[i]) << 16;
    if (rest == 2) v |= std::to_integer<std::uint32_t>(in[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string WebSocketAccept(std::string_view key) {
  std::string input(key);
  input.append(kWebSocketGuid);
  return Base64Encode(Sha1(AsBytes(input)));
}

bool IsValidWebSocketKey(std::string_view key) {
  // 16 bytes = 5 full groups of 3 plus one byte: 22 alphabet characters and "==". Like Go's
  // base64.StdEncoding (which coder/websocket uses), unused low bits of the last character are
  // not required to be zero.
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (const char c : key.substr(0, 22)) {
    if (kBase64Alphabet.find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace derpkit::http
