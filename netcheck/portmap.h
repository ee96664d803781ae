// Port-mapping probe for netcheck: asks the default gateway whether it speaks UPnP IGD (SSDP
// discovery), NAT-PMP (RFC 6886, external-address request) or PCP (RFC 6887, ANNOUNCE), as
// Tailscale's portmapper probe does for `tailscale netcheck`'s PortMapping line. It only asks; it
// never creates a mapping.
//
// Thread affinity: runs as a coroutine on the caller's executor; no other threads.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace derpkit::netcheck {

struct PortMapOptions {
  // The gateway to ask; empty = the IPv4 default gateway from /proc/net/route. When there is none,
  // nothing is sent and every result stays nullopt ("not checked").
  std::string gateway;
  // Local IPv4 address to send from; empty = any.
  std::string bind_address;
  // Bound on the whole probe (all three protocols run concurrently).
  std::chrono::milliseconds timeout{2500};
  // Where the gateway listens: NAT-PMP and PCP share 5351; SSDP is 1900. Tests move them.
  std::uint16_t pxp_port = 5351;
  std::uint16_t ssdp_port = 1900;
  // Also send the M-SEARCHes to the SSDP multicast group 239.255.255.250, as Tailscale does (some
  // gateways answer only multicast). Never done for a loopback gateway: the group is not on
  // loopback, so the datagrams would leave through the LAN interface instead.
  bool ssdp_multicast = true;
};

struct PortMapResult {
  std::string gateway;       // the address asked, "" when none was found
  std::optional<bool> upnp;  // nullopt = not checked
  std::optional<bool> pmp;
  std::optional<bool> pcp;
  std::vector<std::string>
      notes;  // one line each, for --verbose ("NAT-PMP: public address 198.51.100.1")
};

asio::awaitable<PortMapResult> ProbePortMapping(PortMapOptions options);

}  // namespace derpkit::netcheck
