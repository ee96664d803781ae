// What the host's network stack offers netcheck, asked from the kernel: which address families
// have a usable address (Tailscale's netmon HaveV4/HaveV6) and whether IPv6 exists at all
// (OSHasIPv6: a UDP socket binds to [::1]:0).
//
// Thread affinity: any thread; each call reads the interface list afresh (getifaddrs).
#pragma once

#include <string>

#include "netcheck/plan.h"

namespace derpkit::netcheck {

// Families with an address on an interface that is up: IPv4 other than loopback and link-local
// (169.254/16); IPv6 other than loopback, link-local (fe80::/10) and multicast. Tailscale's own
// addresses (100.64.0.0/10, fd7a:115c:a1e0::/48) do not count, as netmon skips its interface.
// With a bind address only that address's family can be used (a wildcard keeps both).
HostFamilies DetectHostFamilies(const std::string& bind_address);

// Whether a UDP socket can be bound to [::1]:0.
bool OsHasIpv6();

}  // namespace derpkit::netcheck
