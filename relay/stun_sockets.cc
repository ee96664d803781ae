// OpenStunSocket: the STUN responder's UDP socket (see stun_sockets.h).
#include "relay/stun_sockets.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/ip/address.hpp>
#include <asio/ip/udp.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "lib/util/netaddr.h"

namespace derpkit::relay {
namespace {

using asio::ip::udp;

std::error_code LastError() { return {errno, std::system_category()}; }

bool IsIpv6Unavailable(const std::error_code& ec) {
  return ec == std::error_code(EAFNOSUPPORT, std::system_category()) ||
         ec == std::error_code(EADDRNOTAVAIL, std::system_category());
}

// Opens a blocking UDP socket bound to `at`, into `out`; returns the first error.
std::error_code OpenAndBind(const udp::endpoint& at, OwnedFd& out) {
  const int family = at.address().is_v6() ? AF_INET6 : AF_INET;
  OwnedFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return LastError();
  if (at.address().is_v6() && at.address().is_unspecified()) {
    // Dual-stack, like derper's ":3478": IPv4 clients then arrive as ::ffff:a.b.c.d.
    const int off = 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) {
      return LastError();
    }
  }
  if (::bind(fd.get(), at.data(), static_cast<socklen_t>(at.size())) != 0) return LastError();
  out = std::move(fd);
  return {};
}

std::uint16_t BoundPort(const OwnedFd& fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  // memcpy rather than casting the storage: the struct types differ and may not alias.
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &ss, sizeof sin6);
    return ntohs(sin6.sin6_port);
  }
  sockaddr_in sin;
  std::memcpy(&sin, &ss, sizeof sin);
  return ntohs(sin.sin_port);
}

}  // namespace

void OwnedFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

StunSocket OpenStunSocket(const std::string& listen_host, std::uint16_t port) {
  StunSocket out;
  std::error_code ec;
  udp::endpoint at;
  if (listen_host.empty()) {
    at = udp::endpoint(udp::v6(), port);
    ec = OpenAndBind(at, out.fd);
    if (IsIpv6Unavailable(ec)) {
      at = udp::endpoint(udp::v4(), port);
      ec = OpenAndBind(at, out.fd);
    }
  } else {
    // asio parses as the TCP listeners do (scope ids included).
    asio::error_code parse_error;
    const asio::ip::address addr = asio::ip::make_address(listen_host, parse_error);
    if (parse_error) {
      throw std::system_error(parse_error,
                              "STUN listen address \"" + listen_host + "\" is not an IP address");
    }
    at = udp::endpoint(addr, port);
    ec = OpenAndBind(at, out.fd);
  }
  if (ec) {
    throw std::system_error(ec, "cannot listen for STUN on UDP " +
                                    netaddr::JoinHostPort(at.address().to_string(), port));
  }
  out.port = BoundPort(out.fd);
  return out;
}

}  // namespace derpkit::relay
