// The IPv4 default gateway from Linux's /proc/net/route text: where the port-mapping probe sends
// its NAT-PMP, PCP and SSDP requests. Pure: the caller reads the file and passes its text.
//
// Format (one header line, then one route per line, fields separated by tabs or spaces):
//   Iface  Destination  Gateway   Flags  RefCnt  Use  Metric  Mask      MTU  Window  IRTT
//   eth0   00000000     0100000A  0003   0       0    100     00000000  0    0       0
// Destination, Gateway and Mask are the kernel's big-endian address words printed with %08X as
// host integers: on a little-endian machine "0100000A" is 10.0.0.1. Flags: RTF_UP 0x1,
// RTF_GATEWAY 0x2.
//
// Choice: among routes with destination 0, mask 0 and both flags, the lowest metric wins (ties:
// the first listed), which is the route the kernel uses. Unlike Tailscale (netmon
// likelyHomeRouterIP: the first gateway route whose gateway is an RFC 1918 address), the gateway
// is not required to be private: we ask only the host's own next hop, and a CGNAT or public next
// hop that speaks PCP is worth reporting too.
#pragma once

#include <optional>
#include <string_view>

#include "lib/util/netaddr.h"

namespace derpkit::portmap {

// Routes read at most (Tailscale stops at 1000 lines too: a big router's table is not a home).
inline constexpr int kMaxRouteLines = 1000;

// Returns the default gateway, or nullopt when there is no usable IPv4 default route. Malformed
// lines are skipped, as the kernel never writes them and a partial read must not abort the probe.
std::optional<netaddr::IpAddress> DefaultGatewayFromProcNetRoute(std::string_view text);

}  // namespace derpkit::portmap
