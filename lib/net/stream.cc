#include "lib/net/stream.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "lib/net/gather.h"
#include "lib/net/socket_io.h"

namespace derpkit::net {

awaitable<IoResult> TcpStream::ReadSome(std::span<std::byte> buf) {
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), kAsTuple);
  co_return IoResult{ec, n};
}

IoResult TcpStream::TryWrite(std::span<const asio::const_buffer> bufs) {
  // The iovec array is per thread and filled right here, so nothing large lives in a coroutine
  // frame; IOV_MAX buffers per call (asio's own writes hand the kernel at most 64, and a relay
  // batch is often hundreds: a header and a payload per packet).
  thread_local std::vector<iovec> iov;
  if (!socket_.is_open()) return {asio::error::operation_aborted, 0};
  iov.clear();
  for (const auto& b : bufs) {
    if (iov.size() == IOV_MAX) break;
    if (b.size() == 0) continue;
    iov.push_back(iovec{const_cast<void*>(b.data()), b.size()});
  }
  if (iov.empty()) return {{}, 0};
  return SendNow(socket_.native_handle(), iov);
}

awaitable<IoResult> TcpStream::WriteAll(std::span<const asio::const_buffer> bufs) {
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  IoResult r = TryWrite(bufs);
  if (r.ec && r.ec != asio::error::would_block) co_return r;
  std::size_t written = r.bytes;
  if (written == total) co_return IoResult{{}, written};
  // A partial write (a full socket, or more than IOV_MAX buffers): the rest, in a list of our
  // own that the writes below shorten in place.
  std::vector<asio::const_buffer> rest(bufs.begin(), bufs.end());
  std::size_t first = 0;
  ConsumeWritten(rest, first, written);
  while (written < total) {
    if (r.ec == asio::error::would_block) {
      // No structured binding here: GCC 12 mis-compiles one in a branch of a coroutine.
      std::error_code ec;
      co_await socket_.async_wait(asio::socket_base::wait_write,
                                  asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return IoResult{ec, written};
    }
    r = TryWrite(std::span(rest).subspan(first));
    if (r.ec && r.ec != asio::error::would_block) co_return IoResult{r.ec, written};
    written += r.bytes;
    ConsumeWritten(rest, first, r.bytes);
  }
  co_return IoResult{{}, written};
}

awaitable<std::error_code> TcpStream::WaitReadable() {
  auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, kAsTuple);
  co_return ec;
}

IoResult TcpStream::TryRead(std::span<std::byte> buf) {
  if (!socket_.non_blocking()) {
    std::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return {ec, 0};
  }
  std::error_code ec;
  const std::size_t n = socket_.read_some(asio::buffer(buf.data(), buf.size()), ec);
  return {ec, n};
}

SocketInTransit::~SocketInTransit() {
  if (fd_ >= 0) ::close(fd_);
}

void SocketInTransit::Leave(asio::ip::tcp::socket& socket) {
  std::error_code ec;
  const auto local = socket.local_endpoint(ec);
  protocol_ = !ec && local.address().is_v6() ? asio::ip::tcp::v6() : asio::ip::tcp::v4();
  fd_ = socket.release(ec);
  if (ec) fd_ = -1;  // already closed: the socket arrives closed and its reads say so
}

void SocketInTransit::Join(asio::ip::tcp::socket& socket, asio::io_context& io) {
  // Move assignment across io_contexts: asio's socket service hands the descriptor's reactor
  // registration over with it (the released socket has none left).
  socket = asio::ip::tcp::socket(io);
  if (fd_ < 0) return;
  std::error_code ec;
  socket.assign(protocol_, fd_, ec);
  if (ec) ::close(fd_);
  fd_ = -1;
}

void TcpStream::Close() {
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

awaitable<IoResult> TlsStream::ReadSome(std::span<std::byte> buf) {
  auto [ec, n] = co_await ssl_->async_read_some(asio::buffer(buf.data(), buf.size()), kAsTuple);
  co_return IoResult{ec, n};
}

awaitable<IoResult> TlsStream::WriteAll(std::span<const asio::const_buffer> bufs) {
  if (bufs.size() == 1) {
    auto [ec, n] = co_await asio::async_write(*ssl_, bufs[0], kAsTuple);
    co_return IoResult{ec, n};
  }
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  coalesce_.resize(total);
  std::size_t at = 0;
  for (const auto& b : bufs) {
    std::memcpy(coalesce_.data() + at, b.data(), b.size());
    at += b.size();
  }
  auto [ec, n] = co_await asio::async_write(*ssl_, asio::buffer(coalesce_), kAsTuple);
  // Idle connections should not keep a large buffer around.
  if (coalesce_.capacity() > 64 * 1024) {
    std::vector<std::byte>().swap(coalesce_);
  } else {
    coalesce_.clear();
  }
  co_return IoResult{ec, n};
}

awaitable<void> TlsStream::ShutdownGracefully() {
  auto [ec] = co_await ssl_->async_shutdown(kAsTuple);
  (void)ec;
}

void TlsStream::Close() {
  std::error_code ignored;
  ssl_->next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  ssl_->next_layer().close(ignored);
}

awaitable<IoResult> PrefixedStream::ReadSome(std::span<std::byte> buf) {
  if (prefix_offset_ < prefix_.size()) {
    const std::size_t n = std::min(buf.size(), prefix_.size() - prefix_offset_);
    std::memcpy(buf.data(), prefix_.data() + prefix_offset_, n);
    prefix_offset_ += n;
    if (prefix_offset_ == prefix_.size()) {
      std::vector<std::byte>().swap(prefix_);
      prefix_offset_ = 0;
    }
    co_return IoResult{{}, n};
  }
  co_return co_await inner_->ReadSome(buf);
}

}  // namespace derpkit::net
