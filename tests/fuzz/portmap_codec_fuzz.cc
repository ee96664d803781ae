// Fuzzes lib/portmap's parsers. Any input parses or fails cleanly, and what parses round-trips:
// - NAT-PMP external address response: re-encodes to exactly the input;
// - PCP response: re-encodes to the input with its reserved fields zeroed (the parser ignores
//   them, as RFC 6887 §7.2 requires);
// - SSDP answer: re-encoding its fields and parsing again gives the same value;
// - /proc/net/route text: yields an IPv4 gateway or none.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lib/portmap/pcp.h"
#include "lib/portmap/pmp.h"
#include "lib/portmap/route.h"
#include "lib/portmap/ssdp.h"

namespace portmap = derpkit::portmap;
using derpkit::Bytes;
using derpkit::ByteSpan;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in = std::as_bytes(std::span(data, size));

  if (const auto pmp = portmap::ParsePmpExternalAddressResponse(in)) {
    Bytes again;
    portmap::AppendPmpExternalAddressResponse(again, *pmp);
    if (!std::equal(again.begin(), again.end(), in.begin(), in.end())) __builtin_trap();
  }

  if (const auto pcp = portmap::ParsePcpResponse(in)) {
    if (pcp->body.size() != size - portmap::kPcpHeaderSize) __builtin_trap();
    Bytes again;
    portmap::AppendPcpResponse(again, *pcp);
    Bytes want(in.begin(), in.end());
    want[2] = std::byte{0};
    std::fill(want.begin() + 12, want.begin() + 24, std::byte{0});
    if (again != want) __builtin_trap();
  }

  if (const auto ssdp = portmap::ParseSsdpResponse(in)) {
    std::string again;
    portmap::AppendSsdpResponse(again, *ssdp);
    const auto back = portmap::ParseSsdpResponse(derpkit::AsBytes(again));
    if (!back || *back != *ssdp) __builtin_trap();
    if (portmap::IsInternetGatewayDevice(*back) != portmap::IsInternetGatewayDevice(*ssdp)) {
      __builtin_trap();
    }
  }

  if (const auto gateway = portmap::DefaultGatewayFromProcNetRoute(derpkit::AsText(in))) {
    if (!gateway->is_v4()) __builtin_trap();
  }
  return 0;
}
