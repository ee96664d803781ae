// Interface and IPv6 checks for netcheck (see host_state.h).
#include "netcheck/host_state.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "lib/util/netaddr.h"

namespace derpkit::netcheck {
namespace {

bool UsableV4(const sockaddr_in& sa) {
  const std::uint32_t a = ntohl(sa.sin_addr.s_addr);
  if ((a >> 24) == 127) return false;     // loopback
  if ((a >> 16) == 0xA9FE) return false;  // 169.254.0.0/16 link-local
  if (a == 0) return false;
  if ((a & 0xFFC00000u) == 0x64400000u) return false;  // 100.64.0.0/10: Tailscale (CGNAT)
  return true;
}

bool UsableV6(const sockaddr_in6& sa) {
  const auto* b = sa.sin6_addr.s6_addr;
  if (IN6_IS_ADDR_LOOPBACK(&sa.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&sa.sin6_addr)) return false;
  if (IN6_IS_ADDR_LINKLOCAL(&sa.sin6_addr) || IN6_IS_ADDR_MULTICAST(&sa.sin6_addr)) return false;
  if (IN6_IS_ADDR_V4MAPPED(&sa.sin6_addr)) return false;
  // fd7a:115c:a1e0::/48: Tailscale's ULA range.
  const unsigned char tailscale[6] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
  return std::memcmp(b, tailscale, sizeof tailscale) != 0;
}

}  // namespace

HostFamilies DetectHostFamilies(const std::string& bind_address) {
  HostFamilies host;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (const ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
      if (ifa->ifa_addr == nullptr || (ifa->ifa_flags & IFF_UP) == 0) continue;
      if (ifa->ifa_addr->sa_family == AF_INET) {
        host.have_v4 |= UsableV4(*reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr));
      } else if (ifa->ifa_addr->sa_family == AF_INET6) {
        host.have_v6 |= UsableV6(*reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr));
      }
    }
    ::freeifaddrs(list);
  }
  if (!bind_address.empty()) {
    auto ip = netaddr::ParseIp(bind_address);
    if (ip && !ip->IsUnspecified()) {
      if (ip->Unmap().is_v4()) {
        host.have_v6 = false;
      } else {
        host.have_v4 = false;
      }
    } else if (ip && ip->is_v4()) {
      host.have_v6 = false;  // 0.0.0.0: the IPv4 wildcard only
    }
  }
  return host;
}

bool OsHasIpv6() {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

}  // namespace derpkit::netcheck
