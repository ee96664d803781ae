#include "lib/http/websocket.h"

#include <algorithm>
#include <cstring>

namespace derpkit::http {
namespace {

bool IsKnownOpcode(std::uint8_t op) {
  switch (static_cast<WsOpcode>(op)) {
    case WsOpcode::kContinuation:
    case WsOpcode::kText:
    case WsOpcode::kBinary:
    case WsOpcode::kClose:
    case WsOpcode::kPing:
    case WsOpcode::kPong:
      return true;
  }
  return false;
}

// §7.4.1/§7.4.2 plus the IANA registry: the codes an endpoint may put in a Close frame.
bool IsSendableCloseCode(std::uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  if (code < 1000 || code > 1014) return false;
  return code != 1004 && code != 1005 && code != 1006;
}

// RFC 3629 well-formedness: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(ByteSpan s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned b0 = std::to_integer<unsigned>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned lo = 0x80;  // allowed range of the second byte
    unsigned hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      n = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      n = 2;
      if (b0 == 0xe0) lo = 0xa0;  // overlong
      if (b0 == 0xed) hi = 0x9f;  // surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      n = 3;
      if (b0 == 0xf0) lo = 0x90;  // overlong
      if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const unsigned b = std::to_integer<unsigned>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

std::string_view Describe(WsError e) {
  switch (e) {
    case WsError::kShort:
      return "incomplete WebSocket frame header";
    case WsError::kReservedBits:
      return "WebSocket frame has RSV bits set but no extension was negotiated";
    case WsError::kBadOpcode:
      return "WebSocket frame has a reserved opcode";
    case WsError::kControlTooLong:
      return "WebSocket control frame payload is over 125 bytes";
    case WsError::kControlFragmented:
      return "WebSocket control frame is fragmented (FIN clear)";
    case WsError::kTooLarge:
      return "WebSocket frame payload is over the size limit";
    case WsError::kNonMinimalLength:
      return "WebSocket frame length is not in its minimal encoding";
    case WsError::kMaskRequired:
      return "WebSocket frame from a client is not masked";
    case WsError::kMaskForbidden:
      return "WebSocket frame from a server is masked";
    case WsError::kBadClosePayload:
      return "WebSocket Close payload is malformed (1 byte, bad status code or non-UTF-8 reason)";
  }
  return "unknown WebSocket error";
}

Expected<WsFrameHeader, WsError> ParseWsFrameHeader(ByteSpan in, std::uint64_t max_payload,
                                                    bool expect_masked) {
  if (in.size() < 2) return Unexpected{WsError::kShort};
  const unsigned b0 = std::to_integer<unsigned>(in[0]);
  const unsigned b1 = std::to_integer<unsigned>(in[1]);

  WsFrameHeader h;
  h.fin = (b0 & 0x80) != 0;
  if ((b0 & 0x70) != 0) return Unexpected{WsError::kReservedBits};
  if (!IsKnownOpcode(static_cast<std::uint8_t>(b0 & 0x0f))) return Unexpected{WsError::kBadOpcode};
  h.opcode = static_cast<WsOpcode>(b0 & 0x0f);
  h.masked = (b1 & 0x80) != 0;
  const unsigned len7 = b1 & 0x7f;
  if (IsWsControl(h.opcode)) {
    if (len7 > kWsMaxControlPayloadSize) return Unexpected{WsError::kControlTooLong};
    if (!h.fin) return Unexpected{WsError::kControlFragmented};
  }
  if (expect_masked && !h.masked) return Unexpected{WsError::kMaskRequired};
  if (!expect_masked && h.masked) return Unexpected{WsError::kMaskForbidden};

  std::size_t at = 2;
  if (len7 == 126) {
    if (in.size() < at + 2) return Unexpected{WsError::kShort};
    h.payload_size = LoadBigEndian16(in.subspan(at, 2));
    at += 2;
    if (h.payload_size < 126) return Unexpected{WsError::kNonMinimalLength};
  } else if (len7 == 127) {
    if (in.size() < at + 8) return Unexpected{WsError::kShort};
    h.payload_size = (std::uint64_t{LoadBigEndian32(in.subspan(at, 4))} << 32) |
                     LoadBigEndian32(in.subspan(at + 4, 4));
    at += 8;
    // §5.2: "the most significant bit MUST be 0". No limit could admit such a frame anyway.
    if ((h.payload_size >> 63) != 0) return Unexpected{WsError::kTooLarge};
    if (h.payload_size <= 0xffff) return Unexpected{WsError::kNonMinimalLength};
  } else {
    h.payload_size = len7;
  }
  if (h.payload_size > max_payload) return Unexpected{WsError::kTooLarge};

  if (h.masked) {
    if (in.size() < at + 4) return Unexpected{WsError::kShort};
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), 4, h.mask.begin());
    at += 4;
  }
  h.header_size = at;
  return h;
}

void AppendWsFrameHeader(Bytes& out, bool fin, WsOpcode opcode, std::uint64_t payload_size,
                         const WsMask* mask) {
  const unsigned mask_bit = mask != nullptr ? 0x80 : 0;
  out.push_back(static_cast<std::byte>((fin ? 0x80 : 0) | static_cast<unsigned>(opcode)));
  if (payload_size <= 125) {
    out.push_back(static_cast<std::byte>(mask_bit | static_cast<unsigned>(payload_size)));
  } else if (payload_size <= 0xffff) {
    out.push_back(static_cast<std::byte>(mask_bit | 126));
    AppendBigEndian16(out, static_cast<std::uint16_t>(payload_size));
  } else {
    out.push_back(static_cast<std::byte>(mask_bit | 127));
    AppendBigEndian32(out, static_cast<std::uint32_t>(payload_size >> 32));
    AppendBigEndian32(out, static_cast<std::uint32_t>(payload_size));
  }
  if (mask != nullptr) out.insert(out.end(), mask->begin(), mask->end());
}

void ApplyWsMask(std::span<std::byte> data, const WsMask& mask, std::uint64_t offset) {
  // The mask rotated to `offset` and repeated to a word. Byte order does not matter: the word
  // is loaded from and stored to memory with the same layout as the data it is XORed with.
  std::array<std::byte, 8> pattern;
  for (std::size_t k = 0; k < pattern.size(); ++k) pattern[k] = mask[(offset + k) % 4];
  std::uint64_t word;
  std::memcpy(&word, pattern.data(), sizeof word);

  std::byte* p = data.data();
  std::size_t n = data.size();
  // memcpy keeps this free of alignment and aliasing assumptions; compilers turn each one into
  // a single unaligned load or store.
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    v ^= word;
    std::memcpy(p, &v, sizeof v);
  }
  for (std::size_t k = 0; k < n; ++k) p[k] ^= pattern[k];
}

void AppendWsClose(Bytes& out, std::uint16_t code, std::string_view reason, const WsMask* mask) {
  if (code == kWsCloseNoStatus) {
    AppendWsFrameHeader(out, true, WsOpcode::kClose, 0, mask);
    return;
  }
  reason = reason.substr(0, kWsMaxCloseReasonSize);
  AppendWsFrameHeader(out, true, WsOpcode::kClose, 2 + reason.size(), mask);
  const std::size_t payload_at = out.size();
  AppendBigEndian16(out, code);
  AppendBytes(out, AsBytes(reason));
  if (mask != nullptr) ApplyWsMask(std::span(out).subspan(payload_at), *mask, 0);
}

Expected<WsClose, WsError> ParseWsClosePayload(ByteSpan payload) {
  if (payload.size() > kWsMaxControlPayloadSize) return Unexpected{WsError::kControlTooLong};
  if (payload.empty()) return WsClose{};
  if (payload.size() == 1) return Unexpected{WsError::kBadClosePayload};
  const std::uint16_t code = LoadBigEndian16(payload);
  if (!IsSendableCloseCode(code)) return Unexpected{WsError::kBadClosePayload};
  const ByteSpan reason = payload.subspan(2);
  if (!IsValidUtf8(reason)) return Unexpected{WsError::kBadClosePayload};
  return WsClose{code, AsText(reason)};
}

}  // namespace derpkit::http
