// StalledReaderCheck: a write deadline for Pongs that are already in the kernel, so that a client
// that pings but does not read is closed by --tcp-write-timeout like any other non-reader.
//
// Why: the write deadline covers a write the relay is waiting on, which for packets is what a
// non-reader soon causes (its window closes, the send buffer fills, a write blocks). A Pong is
// 13 bytes: the kernel takes it at once and holds it behind the client's closed window, the
// relay's writer goes idle, and no deadline runs. A Ping flooder that does not read even stops
// being able to send (its kernel drops our segments, ACKs of its data included, so its own
// sending backs off), and it lingered until TCP_USER_TIMEOUT (--tcp-user-timeout, 15 s) ended it
// as an io_error. So after writing a Pong the relay keeps an eye on the socket until the client
// has taken every byte we wrote: if it takes none for a whole write timeout, that is the verdict
// a blocked write gets.
//
// Thread affinity: the owning connection's shard thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace derpkit::relay {

// What the kernel says about sending on a TCP socket.
struct SendProgress {
  std::uint64_t unacked_bytes = 0;  // written by us, not yet acknowledged (sent or not)
  std::uint64_t acked_bytes = 0;    // acknowledged by the peer since the connection began
};

// Reads SIOCOUTQ and TCP_INFO of socket `fd`. nullopt when the kernel does not say (not a TCP
// socket, or a kernel before 4.2, whose tcp_info has no tcpi_bytes_acked).
std::optional<SendProgress> ReadSendProgress(int fd);

class StalledReaderCheck {
 public:
  using Clock = std::chrono::steady_clock;

  // How often the kernel is asked while watching.
  static constexpr std::chrono::milliseconds kCheckInterval{100};

  // Call after a write that carried a Pong. Costs no system call: the kernel is asked by Poll().
  void AfterPongWrite(Clock::time_point now);
  bool watching() const { return since_.has_value(); }
  // When Poll() wants to run next (meaningful while watching()).
  Clock::time_point next_check() const { return next_check_; }
  // Asks the kernel about TCP socket `fd` if a check is due. Stops watching once every byte up
  // to the last Pong is acknowledged; returns true when no byte was for `timeout` (never when
  // `timeout` is 0, like --tcp-write-timeout=0).
  bool Poll(int fd, Clock::time_point now, std::chrono::milliseconds timeout);

 private:
  Clock::time_point next_check_{};
  std::optional<Clock::time_point> since_;  // the Pong write, or the last acknowledgement seen
  std::optional<std::uint64_t> acked_;      // at the last check
  // Acknowledged bytes that cover every Pong written before the check that set it.
  std::optional<std::uint64_t> target_;
  bool pong_after_target_ = false;
};

}  // namespace derpkit::relay
