// Opens the UDP socket of the relay's STUN responder. Runs once, on the thread that builds the
// responder; the socket then belongs to the responder (stun_server.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace derpkit::relay {

// A file descriptor this object closes. Move-only.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() { Reset(); }
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  int get() const { return fd_; }
  void Reset();

 private:
  int fd_ = -1;
};

struct StunSocket {
  OwnedFd fd;              // blocking, close-on-exec
  std::uint16_t port = 0;  // the bound port (the kernel's choice when asked for 0)
};

// Opens a UDP socket bound to `listen_host` (an IP literal; empty means the wildcard: [::]
// dual-stack with IPV6_V6ONLY off where the host has IPv6, else 0.0.0.0) and `port` (0: an
// ephemeral port). No SO_REUSEPORT: a second relay on the same port fails to start rather than
// silently taking a share of the clients.
//
// Throws std::system_error naming the address when `listen_host` is not an IP literal or the
// socket cannot be opened or bound.
StunSocket OpenStunSocket(const std::string& listen_host, std::uint16_t port);

}  // namespace derpkit::relay
