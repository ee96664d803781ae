// NAT-PMP external address request and response (RFC 6886 §3.2); layouts in pmp.h.
#include "lib/portmap/pmp.h"

namespace derpkit::portmap {

std::string_view PmpResultName(std::uint16_t code) {
  switch (code) {
    case kPmpResultSuccess:
      return "SUCCESS";
    case kPmpResultUnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case kPmpResultNotAuthorized:
      return "NOT_AUTHORIZED";
    case kPmpResultNetworkFailure:
      return "NETWORK_FAILURE";
    case kPmpResultOutOfResources:
      return "OUT_OF_RESOURCES";
    case kPmpResultUnsupportedOpcode:
      return "UNSUPPORTED_OPCODE";
  }
  return "";
}

std::string_view Describe(PmpError e) {
  switch (e) {
    case PmpError::kTooShort:
      return "NAT-PMP response shorter than its 8-byte header";
    case PmpError::kBadVersion:
      return "not NAT-PMP: version byte is not 0";
    case PmpError::kNotAResponse:
      return "NAT-PMP packet without the reply bit: a request, not a response";
    case PmpError::kWrongOpcode:
      return "NAT-PMP response to another opcode than 0 (external address)";
    case PmpError::kWrongLength:
      return "NAT-PMP external address response of the wrong length (success: 12 bytes, "
             "error: 8 or 12)";
  }
  return "unknown NAT-PMP error";
}

void AppendPmpExternalAddressRequest(Bytes& out) {
  out.push_back(std::byte{kPmpVersion});
  out.push_back(std::byte{kPmpOpExternalAddress});
}

Expected<PmpExternalAddressResponse, PmpError> ParsePmpExternalAddressResponse(ByteSpan in) {
  if (in.size() < kPmpErrorResponseSize) return Unexpected{PmpError::kTooShort};
  if (in[0] != std::byte{kPmpVersion}) return Unexpected{PmpError::kBadVersion};
  const auto opcode = std::to_integer<std::uint8_t>(in[1]);
  if ((opcode & kPmpReplyBit) == 0) return Unexpected{PmpError::kNotAResponse};
  if (opcode != (kPmpReplyBit | kPmpOpExternalAddress)) return Unexpected{PmpError::kWrongOpcode};
  PmpExternalAddressResponse r;
  r.result_code = LoadBigEndian16(in.subspan(2, 2));
  r.epoch_seconds = LoadBigEndian32(in.subspan(4, 4));
  if (in.size() == kPmpExternalAddressResponseSize) {
    std::array<std::byte, 4> ip{};
    for (std::size_t i = 0; i < ip.size(); ++i) ip[i] = in[8 + i];
    r.external_ipv4 = ip;
  } else if (in.size() != kPmpErrorResponseSize || r.result_code == kPmpResultSuccess) {
    return Unexpected{PmpError::kWrongLength};
  }
  return r;
}

void AppendPmpExternalAddressResponse(Bytes& out, const PmpExternalAddressResponse& response) {
  out.push_back(std::byte{kPmpVersion});
  out.push_back(std::byte{kPmpReplyBit | kPmpOpExternalAddress});
  AppendBigEndian16(out, response.result_code);
  AppendBigEndian32(out, response.epoch_seconds);
  if (response.external_ipv4) AppendBytes(out, *response.external_ipv4);
}

}  // namespace derpkit::portmap
