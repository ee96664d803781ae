// PCP, the Port Control Protocol (RFC 6887), as netcheck's port-mapping probe uses it: the spec
// header for the ANNOUNCE request and the common response header. Pure codec; no sockets.
//
// Flow. The client sends ANNOUNCE (opcode 0) to the default gateway's UDP port 5351 (shared with
// NAT-PMP; the first byte tells them apart: NAT-PMP is version 0, PCP version 2). A PCP server
// answers with the reply bit set and a result code; SUCCESS means it is there and willing. The
// request names the client's own address: a server that sees another source (a NAT between
// client and server) answers ADDRESS_MISMATCH. netcheck never sends MAP or PEER.
//
// Request header (RFC 6887 §7.1), 24 bytes; ANNOUNCE has no opcode-specific data (§14.1):
//   offset  0  u8    version = 2
//   offset  1  u8    R (top bit) = 0 | opcode (7 bits) = 0 ANNOUNCE
//   offset  2  u16   reserved, 0
//   offset  4  u32   requested lifetime in seconds = 0 for ANNOUNCE
//   offset  8  16 B  the client's IP address; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
// Response header (§7.2), 24 bytes, then opcode-specific data and options:
//   offset  0  u8    version = 2
//   offset  1  u8    R = 1 | opcode of the request
//   offset  2  u8    reserved
//   offset  3  u8    result code (§7.4)
//   offset  4  u32   lifetime in seconds
//   offset  8  u32   epoch time: seconds since the server's mapping state began
//   offset 12  12 B  reserved
// Every PCP message is 24..1100 bytes and a multiple of 4 (§7, §8.3); reserved bits are sent as
// zero and ignored on receipt.
//
// Errors: ParsePcpResponse returns Expected<PcpResponse, PcpError>; nothing here throws.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::portmap {

inline constexpr std::uint8_t kPcpVersion = 2;
inline constexpr std::uint8_t kPcpReplyBit = 0x80;
inline constexpr std::uint8_t kPcpOpAnnounce = 0;
inline constexpr std::uint8_t kPcpOpMap = 1;
inline constexpr std::uint8_t kPcpOpPeer = 2;
inline constexpr std::size_t kPcpHeaderSize = 24;
inline constexpr std::size_t kPcpMaxMessageSize = 1100;

// Result codes (RFC 6887 §7.4).
inline constexpr std::uint8_t kPcpResultSuccess = 0;
inline constexpr std::uint8_t kPcpResultUnsupportedVersion = 1;
inline constexpr std::uint8_t kPcpResultNotAuthorized = 2;
inline constexpr std::uint8_t kPcpResultAddressMismatch = 12;

// Returns the RFC's name for a result code ("ADDRESS_MISMATCH"), or "" for unknown codes.
std::string_view PcpResultName(std::uint8_t code);

// Appends the 24-byte ANNOUNCE request naming `client_ip16` (an IPv6 address, or IPv4 in its
// IPv4-mapped form: netaddr::IpAddress::As16()).
void AppendPcpAnnounceRequest(Bytes& out, const std::array<std::byte, 16>& client_ip16);

struct PcpResponse {
  std::uint8_t opcode = 0;  // without the reply bit
  std::uint8_t result_code = 0;
  std::uint32_t lifetime_seconds = 0;
  std::uint32_t epoch_seconds = 0;
  // Opcode-specific data and options after the 24-byte header, as sent; aliases the parsed input
  // and is valid while it is.
  ByteSpan body;
};

enum class PcpError {
  kTooShort,        // fewer than 24 bytes
  kTooLong,         // more than 1100 bytes
  kNotMultipleOf4,  // length not a multiple of 4
  kBadVersion,      // first byte is not 2 (NAT-PMP is 0; 1 was a pre-RFC draft)
  kNotAResponse,    // the R bit is clear: a request, not a response
};

// Returns a one-line description of `e`.
std::string_view Describe(PcpError e);

// Parses any PCP response (the common header; the body is returned unparsed). Reserved fields are
// ignored, as §7.2 requires.
Expected<PcpResponse, PcpError> ParsePcpResponse(ByteSpan in);

// Appends a response as a PCP server would send it (reserved fields zero), then `body`. Tests and
// the fuzz target use it; the probe only parses.
void AppendPcpResponse(Bytes& out, const PcpResponse& response);

}  // namespace derpkit::portmap
