// PCP ANNOUNCE request and common response header (RFC 6887 §7, §14.1); layouts in pcp.h.
#include "lib/portmap/pcp.h"

namespace derpkit::portmap {

std::string_view PcpResultName(std::uint8_t code) {
  switch (code) {
    case 0:
      return "SUCCESS";
    case 1:
      return "UNSUPP_VERSION";
    case 2:
      return "NOT_AUTHORIZED";
    case 3:
      return "MALFORMED_REQUEST";
    case 4:
      return "UNSUPP_OPCODE";
    case 5:
      return "UNSUPP_OPTION";
    case 6:
      return "MALFORMED_OPTION";
    case 7:
      return "NETWORK_FAILURE";
    case 8:
      return "NO_RESOURCES";
    case 9:
      return "UNSUPP_PROTOCOL";
    case 10:
      return "USER_EX_QUOTA";
    case 11:
      return "CANNOT_PROVIDE_EXTERNAL";
    case 12:
      return "ADDRESS_MISMATCH";
    case 13:
      return "EXCESSIVE_REMOTE_PEERS";
  }
  return "";
}

std::string_view Describe(PcpError e) {
  switch (e) {
    case PcpError::kTooShort:
      return "PCP response shorter than its 24-byte header";
    case PcpError::kTooLong:
      return "PCP message longer than 1100 bytes";
    case PcpError::kNotMultipleOf4:
      return "PCP message length is not a multiple of 4";
    case PcpError::kBadVersion:
      return "not PCP: version byte is not 2";
    case PcpError::kNotAResponse:
      return "PCP packet without the R bit: a request, not a response";
  }
  return "unknown PCP error";
}

void AppendPcpAnnounceRequest(Bytes& out, const std::array<std::byte, 16>& client_ip16) {
  out.push_back(std::byte{kPcpVersion});
  out.push_back(std::byte{kPcpOpAnnounce});
  AppendBigEndian16(out, 0);  // reserved
  AppendBigEndian32(out, 0);  // requested lifetime: ANNOUNCE asks for nothing
  AppendBytes(out, client_ip16);
}

Expected<PcpResponse, PcpError> ParsePcpResponse(ByteSpan in) {
  if (in.size() < kPcpHeaderSize) return Unexpected{PcpError::kTooShort};
  if (in.size() > kPcpMaxMessageSize) return Unexpected{PcpError::kTooLong};
  if (in.size() % 4 != 0) return Unexpected{PcpError::kNotMultipleOf4};
  if (in[0] != std::byte{kPcpVersion}) return Unexpected{PcpError::kBadVersion};
  const auto r_and_opcode = std::to_integer<std::uint8_t>(in[1]);
  if ((r_and_opcode & kPcpReplyBit) == 0) return Unexpected{PcpError::kNotAResponse};
  PcpResponse r;
  r.opcode = r_and_opcode & static_cast<std::uint8_t>(~kPcpReplyBit);
  r.result_code = std::to_integer<std::uint8_t>(in[3]);
  r.lifetime_seconds = LoadBigEndian32(in.subspan(4, 4));
  r.epoch_seconds = LoadBigEndian32(in.subspan(8, 4));
  r.body = in.subspan(kPcpHeaderSize);
  return r;
}

void AppendPcpResponse(Bytes& out, const PcpResponse& response) {
  out.push_back(std::byte{kPcpVersion});
  out.push_back(std::byte{static_cast<std::uint8_t>(kPcpReplyBit | response.opcode)});
  out.push_back(std::byte{0});  // reserved
  out.push_back(std::byte{response.result_code});
  AppendBigEndian32(out, response.lifetime_seconds);
  AppendBigEndian32(out, response.epoch_seconds);
  out.insert(out.end(), 12, std::byte{0});  // reserved
  AppendBytes(out, response.body);
}

}  // namespace derpkit::portmap
