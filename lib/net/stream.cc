#include "lib/net/stream.h"

#include <algorithm>
#include <cstring>

namespace derpkit::net {

awaitable<IoResult> TcpStream::ReadSome(std::span<std::byte> buf) {
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()), kAsTuple);
  co_return IoResult{ec, n};
}

awaitable<IoResult> TcpStream::WriteAll(std::span<const asio::const_buffer> bufs) {
  auto [ec, n] = co_await asio::async_write(socket_, bufs, kAsTuple);
  co_return IoResult{ec, n};
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
