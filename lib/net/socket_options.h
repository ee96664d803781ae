// TCP socket options the relay and clients set on accepted or dialled connections.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <system_error>

namespace derpkit::net {

struct TcpOptions {
  // Idle time before TCP keepalive probes start; 0 leaves the system default (off).
  std::chrono::seconds keepalive_idle{0};
  // TCP_USER_TIMEOUT: how long unacknowledged data may stay in flight before the kernel drops
  // the connection; 0 leaves the system default.
  std::chrono::milliseconds user_timeout{0};
  bool no_delay = true;
};

// Applies `opts` to a connected socket. Returns the first error; the socket stays usable.
std::error_code ApplyTcpOptions(asio::ip::tcp::socket& socket, const TcpOptions& opts);

// Raises the soft RLIMIT_NOFILE to the hard limit (as Go programs do at start) and returns the
// resulting soft limit.
long RaiseOpenFileLimit();
// Returns the current soft RLIMIT_NOFILE.
long CurrentOpenFileLimit();

}  // namespace derpkit::net
