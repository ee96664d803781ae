// derp-load --sender bursty: a sender the way a simple C load generator writes. Each pair's
// sender is a thread of its own on a BLOCKING socket: it sleeps ~1 ms (nanosleep), wakes, writes
// every frame that has come due since, each with its own write() (TLS: its own SSL_write, so its
// own TLS record and write()), and sleeps again. Frames therefore leave in small bursts, and a
// relay that reads a whole burst before its receivers' writers run sees them all at once.
//
// Threads: BlockingWriter::TakeOver runs on the main thread while no event loop runs; from then
// on the writer belongs to its sender thread alone. Nothing else may touch the stream until that
// thread has been joined (no reads: asio would make the socket non-blocking again).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>

#include "bench/load_flow.h"
#include "lib/derp/keys.h"
#include "lib/net/stream.h"
#include "lib/util/expected.h"

namespace derpkit::bench {

// Blocking writes to a connected DERP stream, outside asio. Plain TCP: write(2) on the socket.
// TLS: the stream's SSL object is moved from asio's memory BIO pair onto a socket BIO, so that
// SSL_write encrypts one record and writes it with one write(2).
class BlockingWriter {
 public:
  // Makes `stream`'s socket blocking and takes over its write side. Fails (with words) for a
  // stream that is neither TCP nor TLS, or when TLS bytes are still buffered in asio's engine.
  static Expected<BlockingWriter, std::string> TakeOver(net::Stream& stream);

  // Writes all of [data, data + size): one write() (TLS: one SSL_write) unless the kernel takes
  // only part or the send timeout (back-pressure) interrupts it, in which case it retries until
  // `give_up`. Returns the error that ended it, or timed_out past `give_up`.
  std::error_code WriteFrame(const std::byte* data, std::size_t size, Clock::time_point give_up);

  // write() calls made so far (TLS: SSL_write calls), to show there is one per frame.
  std::uint64_t write_calls() const { return write_calls_; }

 private:
  BlockingWriter(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}

  int fd_;
  SSL* ssl_;  // null for plain TCP; owned by the stream
  std::uint64_t write_calls_ = 0;
};

// The body of one bursty sender thread: sends `size`-byte packets to `dst` from w.start until
// w.measure_end at `packets_per_second` (0: back to back, no sleeps). Writes sent_* and
// send_error of `st` (the receiver's event loop writes the other fields).
void BurstySend(BlockingWriter& writer, derp::PublicKey dst, std::size_t size,
                double packets_per_second, const Window& w, FlowStats& st);

}  // namespace derpkit::bench
