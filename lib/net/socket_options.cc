#include "lib/net/socket_options.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

namespace derpkit::net {

std::error_code ApplyTcpOptions(asio::ip::tcp::socket& socket, const TcpOptions& opts) {
  std::error_code ec;
  if (opts.no_delay) socket.set_option(asio::ip::tcp::no_delay(true), ec);
  if (ec) return ec;
  const int fd = socket.native_handle();
  if (opts.keepalive_idle.count() > 0) {
    const int on = 1;
    const int idle = static_cast<int>(opts.keepalive_idle.count());
    if (::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0 ||
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) != 0) {
      return {errno, std::system_category()};
    }
  }
  if (opts.user_timeout.count() > 0) {
    const unsigned ms = static_cast<unsigned>(opts.user_timeout.count());
    if (::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
      return {errno, std::system_category()};
    }
  }
  return {};
}

long RaiseOpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return static_cast<long>(lim.rlim_cur);
}

long CurrentOpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
  return static_cast<long>(lim.rlim_cur);
}

}  // namespace derpkit::net
