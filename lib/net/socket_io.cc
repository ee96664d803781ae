#include "lib/net/socket_io.h"

#include <sys/socket.h>

#include <cerrno>

namespace derpkit::net {

IoResult RecvNow(int fd, std::span<std::byte> buf) {
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) return {{}, static_cast<std::size_t>(n)};
    if (n == 0) return {asio::error::eof, 0};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {asio::error::would_block, 0};
    return {std::error_code(errno, std::system_category()), 0};
  }
}

IoResult SendNow(int fd, std::span<const iovec> iov, bool more_follows) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov.data());
  msg.msg_iovlen = iov.size();
  const int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (more_follows ? MSG_MORE : 0);
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, flags);
    if (n >= 0) return {{}, static_cast<std::size_t>(n)};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {asio::error::would_block, 0};
    return {std::error_code(errno, std::system_category()), 0};
  }
}

std::error_code KeptBytes::SendOrKeep(int fd, std::span<const std::byte> data, bool more_follows) {
  std::size_t sent = 0;
  if (size() == 0 && !data.empty()) {
    const iovec one{const_cast<std::byte*>(data.data()), data.size()};
    const IoResult r = SendNow(fd, std::span(&one, 1), more_follows);
    if (r.ec && r.ec != asio::error::would_block) return r.ec;
    sent = r.bytes;
  }
  if (sent < data.size()) bytes_.insert(bytes_.end(), data.begin() + sent, data.end());
  return {};
}

std::error_code KeptBytes::SendKept(int fd) {
  std::error_code ec;
  while (size() > 0) {
    const iovec one{bytes_.data() + offset_, size()};
    const IoResult r = SendNow(fd, std::span(&one, 1));
    if (r.ec == asio::error::would_block) return {};
    if (r.ec) {
      ec = r.ec;
      break;
    }
    offset_ += r.bytes;
  }
  Clear();  // drained (or dead): an idle connection keeps no buffer
  return ec;
}

awaitable<std::error_code> KeptBytes::Flush(asio::ip::tcp::socket& socket, const bool& closed,
                                            std::error_code& write_error) {
  for (;;) {
    if (closed) co_return asio::error::operation_aborted;
    if (!write_error) write_error = SendKept(socket.native_handle());
    if (write_error) co_return write_error;
    if (size() == 0) co_return std::error_code{};
    std::error_code ec;
    co_await socket.async_wait(asio::socket_base::wait_write,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (closed) co_return asio::error::operation_aborted;
    if (ec) co_return ec;
  }
}

void KeptBytes::Clear() {
  std::vector<std::byte>().swap(bytes_);
  offset_ = 0;
}

}  // namespace derpkit::net
