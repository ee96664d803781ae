// Byte helpers shared by every codec: big-endian loads and stores, hex, and conversions between
// text and std::byte spans. Pure: no I/O, no allocation except where a vector is appended to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace derpkit {

using Bytes = std::vector<std::byte>;
using ByteSpan = std::span<const std::byte>;

inline std::uint16_t LoadBigEndian16(ByteSpan in) {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(in[0]) << 8) |
                                    std::to_integer<unsigned>(in[1]));
}

inline std::uint32_t LoadBigEndian32(ByteSpan in) {
  return (std::to_integer<std::uint32_t>(in[0]) << 24) |
         (std::to_integer<std::uint32_t>(in[1]) << 16) |
         (std::to_integer<std::uint32_t>(in[2]) << 8) | std::to_integer<std::uint32_t>(in[3]);
}

inline void StoreBigEndian16(std::span<std::byte> out, std::uint16_t v) {
  out[0] = static_cast<std::byte>(v >> 8);
  out[1] = static_cast<std::byte>(v);
}

inline void StoreBigEndian32(std::span<std::byte> out, std::uint32_t v) {
  out[0] = static_cast<std::byte>(v >> 24);
  out[1] = static_cast<std::byte>(v >> 16);
  out[2] = static_cast<std::byte>(v >> 8);
  out[3] = static_cast<std::byte>(v);
}

inline void AppendBigEndian16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::byte>(v >> 8));
  out.push_back(static_cast<std::byte>(v));
}

inline void AppendBigEndian32(Bytes& out, std::uint32_t v) {
  out.push_back(static_cast<std::byte>(v >> 24));
  out.push_back(static_cast<std::byte>(v >> 16));
  out.push_back(static_cast<std::byte>(v >> 8));
  out.push_back(static_cast<std::byte>(v));
}

inline void AppendBytes(Bytes& out, ByteSpan in) { out.insert(out.end(), in.begin(), in.end()); }

// Views text as bytes. The span aliases `s` and is valid while `s` is.
inline ByteSpan AsBytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Views bytes as text. The view aliases `b` and is valid while `b` is.
inline std::string_view AsText(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};  // char may alias any object
}

// Returns lowercase hex of `in`.
std::string HexEncode(ByteSpan in);

// Decodes hex digits (either case) into bytes; nullopt when the length is odd or a character is
// not a hex digit.
std::optional<Bytes> HexDecode(std::string_view hex);

// Decodes exactly out.size()*2 hex digits into `out`; false on any other length or a bad digit.
bool HexDecodeInto(std::string_view hex, std::span<std::byte> out);

// Returns the bytes of `hex`, ignoring spaces and newlines, for tests; aborts on bad input.
Bytes BytesFromHex(std::string_view hex);

}  // namespace derpkit
