// NAT-PMP (RFC 6886) as netcheck's port-mapping probe uses it: the spec header for the external
// address request and its response. Pure codec: bytes in, values out, and back; no sockets.
//
// Flow. The client sends a 2-byte request to the default gateway's UDP port 5351 and the gateway
// answers from that port. Only the gateway itself may answer (RFC 6886 §3.1: the client ignores
// packets from any other source); the caller checks the source, this codec checks the bytes.
// netcheck never sends the mapping opcodes (1 UDP, 2 TCP): it only asks whether NAT-PMP is there.
//
// Request (RFC 6886 §3.2), 2 bytes:
//   offset 0  u8   version = 0
//   offset 1  u8   opcode  = 0 (external address)
// Response (§3.2), 12 bytes:
//   offset 0  u8   version = 0
//   offset 1  u8   opcode  = 128 + 0 (the reply bit is 0x80)
//   offset 2  u16  result code (0 = success; §3.5)
//   offset 4  u32  seconds since the gateway's port-mapping table was (re)initialised (epoch)
//   offset 8  4 B  external IPv4 address (a.b.c.d); meaningless unless the result is 0
// Error responses (§3.5) may stop after the epoch: 8 bytes. A NAT-PMP-only gateway answers a PCP
// request (version 2) with version 0, opcode 128 + the request's opcode, result 1 ("unsupported
// version"), 8 bytes: that is how a PCP probe learns the gateway speaks only NAT-PMP.
//
// Errors: ParsePmpExternalAddressResponse returns Expected<…, PmpError>; nothing here throws.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::portmap {

// The UDP port NAT-PMP and PCP servers listen on (RFC 6886 §3.1, RFC 6887 §19.1).
inline constexpr std::uint16_t kPxpPort = 5351;

inline constexpr std::uint8_t kPmpVersion = 0;
inline constexpr std::uint8_t kPmpOpExternalAddress = 0;
inline constexpr std::uint8_t kPmpReplyBit = 0x80;
inline constexpr std::size_t kPmpRequestSize = 2;
inline constexpr std::size_t kPmpErrorResponseSize = 8;
inline constexpr std::size_t kPmpExternalAddressResponseSize = 12;

// Result codes (RFC 6886 §3.5).
inline constexpr std::uint16_t kPmpResultSuccess = 0;
inline constexpr std::uint16_t kPmpResultUnsupportedVersion = 1;
inline constexpr std::uint16_t kPmpResultNotAuthorized = 2;
inline constexpr std::uint16_t kPmpResultNetworkFailure = 3;
inline constexpr std::uint16_t kPmpResultOutOfResources = 4;
inline constexpr std::uint16_t kPmpResultUnsupportedOpcode = 5;

// Returns the RFC's name for a result code ("NETWORK_FAILURE"), or "" for unknown codes.
std::string_view PmpResultName(std::uint16_t code);

// Appends the 2-byte external address request {0, 0}.
void AppendPmpExternalAddressRequest(Bytes& out);

struct PmpExternalAddressResponse {
  std::uint16_t result_code = 0;
  std::uint32_t epoch_seconds = 0;
  // The 4 address bytes when the response carried them (12 bytes), nullopt for an 8-byte error
  // response. Only meaningful when result_code is 0.
  std::optional<std::array<std::byte, 4>> external_ipv4;

  friend bool operator==(const PmpExternalAddressResponse&,
                         const PmpExternalAddressResponse&) = default;
};

enum class PmpError {
  kTooShort,      // fewer than 8 bytes: not even the common response header
  kBadVersion,    // first byte is not 0: not NAT-PMP (PCP is version 2)
  kNotAResponse,  // the reply bit (0x80) of the opcode is clear: a request, not an answer
  kWrongOpcode,   // a reply to some other opcode than 0 (external address)
  kWrongLength,   // success must be exactly 12 bytes; an error response 8 or 12
};

// Returns a one-line description of `e`.
std::string_view Describe(PmpError e);

// Parses the response to an external address request. Strict: the length must match the result
// (12 bytes for success; 8 or 12 for an error) and nothing may follow.
Expected<PmpExternalAddressResponse, PmpError> ParsePmpExternalAddressResponse(ByteSpan in);

// Appends the response as a gateway would send it: 12 bytes when external_ipv4 is set, else 8.
// Tests and the fuzz target use it; the probe only parses.
void AppendPmpExternalAddressResponse(Bytes& out, const PmpExternalAddressResponse& response);

}  // namespace derpkit::portmap
