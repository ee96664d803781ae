// StalledReaderCheck (see stalled_reader.h). Thread affinity: the owning connection's shard.
#include "relay/stalled_reader.h"

// The kernel's struct tcp_info (glibc's predates tcpi_bytes_acked); it clashes with
// <netinet/tcp.h>, so this file is kept out of unity batches and the Asio precompiled header
// (relay/CMakeLists.txt).
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>

namespace derpkit::relay {

std::optional<SendProgress> ReadSendProgress(int fd) {
  int unacked = 0;
  if (::ioctl(fd, SIOCOUTQ, &unacked) != 0 || unacked < 0) return std::nullopt;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  // The kernel fills only the fields it knows: older ones return a shorter struct.
  if (len < offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked) {
    return std::nullopt;
  }
  return SendProgress{static_cast<std::uint64_t>(unacked), info.tcpi_bytes_acked};
}

void StalledReaderCheck::AfterPongWrite(Clock::time_point now) {
  if (watching()) {
    pong_after_target_ = true;
    return;
  }
  since_ = now;
  acked_.reset();
  target_.reset();
  next_check_ = now + kCheckInterval;
}

bool StalledReaderCheck::Poll(int fd, Clock::time_point now, std::chrono::milliseconds timeout) {
  if (!watching() || now < next_check_) return false;
  next_check_ = now + kCheckInterval;
  const auto progress = ReadSendProgress(fd);
  if (!progress || progress->unacked_bytes == 0) {
    since_.reset();  // the client took everything, the Pongs included
    return false;
  }
  // Everything written so far (the Pong included) is acknowledged at acked + unacked.
  const std::uint64_t written = progress->acked_bytes + progress->unacked_bytes;
  if (!target_ || (progress->acked_bytes >= *target_ && pong_after_target_)) {
    target_ = written;
    pong_after_target_ = false;
  } else if (progress->acked_bytes >= *target_) {
    since_.reset();  // the client took every Pong; later bytes have the usual write deadline
    return false;
  }
  if (acked_ != progress->acked_bytes) {
    // Some of our bytes were acknowledged (at the first check: maybe): the deadline starts again.
    if (acked_) since_ = now;
    acked_ = progress->acked_bytes;
    return false;
  }
  return timeout.count() > 0 && now - *since_ >= timeout;
}

}  // namespace derpkit::relay
