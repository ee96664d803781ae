// Reading and writing a TCP socket without waiting, written once for the streams that bypass
// asio's reads and writes (TcpStream, DirectTlsStream, Tls13Stream):
// - RecvNow / SendNow: one recv() / sendmsg() that never waits (MSG_DONTWAIT, MSG_NOSIGNAL),
//   EINTR retried, EAGAIN reported as asio::error::would_block, a peer's FIN as asio::error::eof.
// - KeptBytes: what a socket did not take of bytes that must leave whole and in order (TLS
//   records): kept in a buffer that has capacity only while the socket is full, so an idle
//   connection holds none.
//
// Thread affinity: the io_context thread that owns the socket.
#pragma once

#include <sys/uio.h>

#include <asio.hpp>
#include <cstddef>
#include <span>
#include <system_error>
#include <vector>

#include "lib/net/stream.h"

namespace derpkit::net {

// Reads what the socket has now into `buf`: bytes > 0, or ec: would_block, eof, or the socket's
// error.
IoResult RecvNow(int fd, std::span<std::byte> buf);

// Writes what the socket takes of `iov` now. bytes > 0, or ec: would_block, or the socket's error.
IoResult SendNow(int fd, std::span<const iovec> iov, bool more_follows = false);

class KeptBytes {
 public:
  std::size_t size() const { return bytes_.size() - offset_; }
  std::size_t capacity() const { return bytes_.capacity(); }

  // Sends `data` at once as far as the socket takes it and keeps the rest; while bytes are kept,
  // `data` is only appended (order). Returns the socket's error, if any (nothing kept then).
  std::error_code SendOrKeep(int fd, std::span<const std::byte> data, bool more_follows);
  // Sends as much of what is kept as the socket takes now; the buffer is freed once drained or
  // after an error.
  std::error_code SendKept(int fd);
  // Sends everything kept, waiting for room. `closed` is the owner's flag: once set (Close() from
  // either side or from outside), it ends with operation_aborted. A send error is stored in
  // `write_error` (sticky for the owner) and returned.
  awaitable<std::error_code> Flush(asio::ip::tcp::socket& socket, const bool& closed,
                                   std::error_code& write_error);
  void Clear();

 private:
  std::vector<std::byte> bytes_;
  std::size_t offset_ = 0;
};

}  // namespace derpkit::net
