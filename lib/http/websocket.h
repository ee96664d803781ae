// RFC 6455 WebSocket framing (§5): frame headers, masking and Close payloads. Pure: no I/O.
//
// DERP over WebSocket (derp-protocol.md §3.4) only uses binary messages whose boundaries mean
// nothing, so this codec deliberately stops at the frame: it parses and writes headers and
// leaves payload bytes where they are (the caller streams them, unmasking in place with
// ApplyWsMask). lib/net/ws_stream.h turns that into a byte stream.
//
// Base framing (§5.2), network byte order, bits numbered from the most significant:
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-------+-+-------------+-------------------------------+
//   |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//   |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//   |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//   | |1|2|3|       |K|             |                               |
//   +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//   |     Extended payload length continued, if payload len == 127  |
//   + - - - - - - - - - - - - - - - +-------------------------------+
//   |                               | Masking-key, if MASK set to 1 |
//   +-------------------------------+-------------------------------+
//   | Masking-key (continued)       |          Payload Data         |
//   +-------------------------------- - - - - - - - - - - - - - - - +
//
// - Payload len 0..125 is the length; 126: a 16-bit length follows; 127: a 64-bit length with
//   the top bit clear follows. The minimal form is required (§5.2 "the minimal number of bytes
//   MUST be used"), which is also what makes parse -> append a byte-exact round trip.
// - Client-to-server frames are always masked, server-to-client frames never (§5.1). Masked
//   payload byte i is XORed with mask[i % 4] (§5.3).
// - Control frames (Close, Ping, Pong) have payloads of at most 125 bytes and are never
//   fragmented (§5.5). A Close payload is empty or a 16-bit status code followed by a UTF-8
//   reason (§5.5.1).
// - No extensions are negotiated (permessage-deflate is disabled for DERP), so RSV1-3 must be 0.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::http {

enum class WsOpcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xa,
};

// True for Close, Ping and Pong (opcodes with the high bit set).
constexpr bool IsWsControl(WsOpcode op) { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

using WsMask = std::array<std::byte, 4>;

// The largest header: 2 bytes, a 64-bit extended length, a 4-byte mask.
inline constexpr std::size_t kWsMaxFrameHeaderSize = 2 + 8 + 4;
// §5.5: control frame payloads are at most 125 bytes.
inline constexpr std::size_t kWsMaxControlPayloadSize = 125;
// A Close payload's reason after its 2-byte status code.
inline constexpr std::size_t kWsMaxCloseReasonSize = kWsMaxControlPayloadSize - 2;

// Close status codes (§7.4.1) that derpkit sends or names. Codes are an open set (3000-4999
// belong to applications), hence plain constants rather than an enum.
inline constexpr std::uint16_t kWsCloseNormal = 1000;
inline constexpr std::uint16_t kWsCloseGoingAway = 1001;
inline constexpr std::uint16_t kWsCloseProtocolError = 1002;
inline constexpr std::uint16_t kWsCloseUnsupportedData = 1003;  // e.g. a text frame for DERP
// Never on the wire: what ParseWsClosePayload reports for an empty payload, and what
// AppendWsClose takes to mean "send an empty payload".
inline constexpr std::uint16_t kWsCloseNoStatus = 1005;
inline constexpr std::uint16_t kWsClosePolicyViolation = 1008;
inline constexpr std::uint16_t kWsCloseMessageTooBig = 1009;
inline constexpr std::uint16_t kWsCloseInternalError = 1011;

struct WsFrameHeader {
  bool fin = true;
  WsOpcode opcode = WsOpcode::kBinary;
  bool masked = false;
  WsMask mask{};                   // meaningful only when `masked`
  std::uint64_t payload_size = 0;  // bytes of payload after the header
  std::size_t header_size = 0;     // bytes of header, 2..kWsMaxFrameHeaderSize
};

enum class WsError {
  kShort,              // the header is not complete yet: read more, then call again
  kReservedBits,       // RSV1-3 set, but no extension was negotiated
  kBadOpcode,          // opcode 3-7 or 0xb-0xf (reserved)
  kControlTooLong,     // Close/Ping/Pong with a payload over 125 bytes
  kControlFragmented,  // Close/Ping/Pong without FIN
  kTooLarge,           // payload over the caller's limit (or a 64-bit length with the top bit set)
  kNonMinimalLength,   // a 16- or 64-bit length that would have fit a shorter form
  kMaskRequired,       // an unmasked frame where the peer is a client (server side)
  kMaskForbidden,      // a masked frame where the peer is a server (client side)
  kBadClosePayload,    // a Close payload of 1 byte, a status code not allowed on the wire, or a
                       // reason that is not UTF-8
};

// Returns a one-line human description of `e`.
std::string_view Describe(WsError e);

// Parses the frame header at the front of `in`. Never consumes input and never looks past the
// header. `expect_masked` is true on the server side (client frames must be masked) and false on
// the client side. Every error except kShort is decidable as soon as the bytes that show it are
// there: the payload size is checked against `max_payload` before the mask bytes are needed, so
// a caller refuses an oversized frame without buffering anything more.
Expected<WsFrameHeader, WsError> ParseWsFrameHeader(ByteSpan in, std::uint64_t max_payload,
                                                    bool expect_masked);

// Appends a frame header with the minimal length encoding. `mask` is nullptr for an unmasked
// frame (server side); otherwise the caller masks the payload it sends after this header with
// ApplyWsMask(payload, *mask, 0). RSV bits are always 0.
void AppendWsFrameHeader(Bytes& out, bool fin, WsOpcode opcode, std::uint64_t payload_size,
                         const WsMask* mask);

// XORs `data` with `mask` in place (masking and unmasking are the same operation). `offset` is
// the position of data[0] within the frame's payload, so a payload that arrives in several reads
// can be unmasked piece by piece. Works a machine word at a time: it runs over every relayed byte.
void ApplyWsMask(std::span<std::byte> data, const WsMask& mask, std::uint64_t offset);

struct WsClose {
  std::uint16_t code = kWsCloseNoStatus;  // kWsCloseNoStatus when the payload was empty
  std::string_view reason;                // aliases the payload passed to ParseWsClosePayload
};

// Appends a whole Close frame: header, then (masked when `mask` is not nullptr) the big-endian
// `code` and `reason`. code == kWsCloseNoStatus sends an empty payload (the reason is ignored).
// A reason longer than kWsMaxCloseReasonSize is cut to that size: callers pass short ASCII.
void AppendWsClose(Bytes& out, std::uint16_t code, std::string_view reason, const WsMask* mask);

// Parses an (already unmasked) Close payload. Errors: kBadClosePayload when the payload is 1
// byte, the code is one §7.4 forbids on the wire (below 1000, 1004-1006, 1015, 1016-2999 except
// the IANA-registered 1012-1014, 5000 and above), or the reason is not valid UTF-8 (§5.5.1);
// kControlTooLong when it is over 125 bytes.
Expected<WsClose, WsError> ParseWsClosePayload(ByteSpan payload);

}  // namespace derpkit::http
