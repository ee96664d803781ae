// A connected byte stream for the relay and the DERP client: plain TCP or TLS (and, later, a
// WebSocket wrapper), behind one small interface so that DERP code is written once.
//
// Thread affinity: a Stream belongs to the io_context (shard) it was created on; every call must
// come from that context's thread. Operations return error codes, never throw for network errors.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

#include "lib/net/as_tuple.h"

namespace derpkit::net {

using asio::awaitable;

struct IoResult {
  std::error_code ec;
  std::size_t bytes = 0;
};

class Stream {
 public:
  virtual ~Stream() = default;

  // Reads at least one byte into `buf` (fewer than its size is normal).
  virtual awaitable<IoResult> ReadSome(std::span<std::byte> buf) = 0;
  // Writes every byte of every buffer, in order. The spans must stay valid until it completes.
  virtual awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) = 0;
  // Readiness-based reading, so that an idle connection holds no read buffer: WaitReadable()
  // completes once TryRead() can make progress (bytes, EOF or an error are there); TryRead()
  // never blocks and returns asio::error::would_block when nothing is there yet. A stream that
  // cannot do this (WebSocket, prefixed) says so in supports_try_read() and is read with
  // ReadSome() into a buffer of the caller's.
  virtual bool supports_try_read() const { return false; }
  // True when the socket being readable is all WaitReadable() waits for (plain TCP): a caller
  // may then wait on tcp() itself and save a coroutine frame per idle connection.
  virtual bool socket_readiness_suffices() const { return false; }
  virtual awaitable<std::error_code> WaitReadable() {
    co_return std::make_error_code(std::errc::operation_not_supported);
  }
  virtual IoResult TryRead(std::span<std::byte> /*buf*/) {
    return {std::make_error_code(std::errc::operation_not_supported), 0};
  }
  // One write attempt that never blocks: some prefix of `bufs` (possibly none: would_block) is
  // written. A stream that cannot (TLS records must be retried whole) says so, and its caller
  // uses WriteAll().
  virtual bool supports_try_write() const { return false; }
  // True while bytes a TryWrite() accepted still wait inside the stream (a TLS record the socket
  // did not take whole); WriteAll() with no buffers sends them, waiting for room.
  virtual bool has_pending_output() const { return false; }
  virtual IoResult TryWrite(std::span<const asio::const_buffer> /*bufs*/) {
    return {std::make_error_code(std::errc::operation_not_supported), 0};
  }
  // Sends a TLS close_notify where there is one; plain TCP does nothing. Bounded by the caller.
  virtual awaitable<void> ShutdownGracefully() { co_return; }
  // Cancels pending operations and closes the socket. Safe to call more than once.
  virtual void Close() = 0;
  // Moving to another event loop (the relay moves a connection to the shard of the peer it
  // talks to). A stream that can (plain TCP, the TLS 1.3 record layer: their whole state is the
  // socket and plain members) says so. LeaveLoop() runs on the old loop's thread with nothing in
  // progress (no read or write waiting, nothing unsent) and takes the socket off that loop;
  // JoinLoop() runs on `io`'s thread and puts it on `io`. Between the two the stream is unused.
  virtual bool can_change_loop() const { return false; }
  virtual void LeaveLoop() {}
  virtual void JoinLoop(asio::io_context& /*io*/) {}
  // The TCP socket underneath (for addresses and socket options).
  virtual asio::ip::tcp::socket& tcp() = 0;
  virtual bool is_tls() const = 0;
  // "tcp" or "tls", for logs.
  virtual const char* kind() const = 0;
};

// A socket on its way between two event loops: released from the first (its file descriptor
// kept, its epoll registration dropped) and re-created on the second, as the relay's acceptor
// hands sockets to shards. Closes the descriptor if it never arrives.
class SocketInTransit {
 public:
  SocketInTransit() = default;
  SocketInTransit(const SocketInTransit&) = delete;
  SocketInTransit& operator=(const SocketInTransit&) = delete;
  ~SocketInTransit();
  // On the old loop's thread: `socket` is left closed, without an operation pending.
  void Leave(asio::ip::tcp::socket& socket);
  // On `io`'s thread: `socket` owns the descriptor again, registered with io's reactor.
  void Join(asio::ip::tcp::socket& socket, asio::io_context& io);

 private:
  asio::ip::tcp protocol_ = asio::ip::tcp::v4();
  int fd_ = -1;
};

// Plain TCP. Gather writes go to the kernel as one writev.
class TcpStream final : public Stream {
 public:
  explicit TcpStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override;
  bool supports_try_read() const override { return true; }
  bool socket_readiness_suffices() const override { return true; }
  awaitable<std::error_code> WaitReadable() override;
  IoResult TryRead(std::span<std::byte> buf) override;
  bool supports_try_write() const override { return true; }
  IoResult TryWrite(std::span<const asio::const_buffer> bufs) override;
  void Close() override;
  bool can_change_loop() const override { return true; }
  void LeaveLoop() override { transit_.Leave(socket_); }
  void JoinLoop(asio::io_context& io) override { transit_.Join(socket_, io); }
  asio::ip::tcp::socket& tcp() override { return socket_; }
  bool is_tls() const override { return false; }
  const char* kind() const override { return "tcp"; }

 private:
  asio::ip::tcp::socket socket_;
  SocketInTransit transit_;
};

// TLS over TCP. Asio's SSL stream encrypts only the first buffer of a gather write per record, so
// WriteAll copies small frames into one contiguous buffer first: a few frames become one TLS
// record instead of one record per frame (the copy is cheaper than the extra records).
class TlsStream final : public Stream {
 public:
  using SslStream = asio::ssl::stream<asio::ip::tcp::socket>;
  explicit TlsStream(std::unique_ptr<SslStream> ssl) : ssl_(std::move(ssl)) {}
  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override;
  awaitable<void> ShutdownGracefully() override;
  void Close() override;
  asio::ip::tcp::socket& tcp() override { return ssl_->next_layer(); }
  bool is_tls() const override { return true; }
  const char* kind() const override { return "tls"; }
  SslStream& ssl() { return *ssl_; }

 private:
  std::unique_ptr<SslStream> ssl_;
  std::vector<std::byte> coalesce_;  // only holds capacity while a write is in flight
};

// A Stream that first replays bytes already read from `inner` (an HTTP parser's read-ahead),
// then reads from `inner`. Writes go straight through.
class PrefixedStream final : public Stream {
 public:
  PrefixedStream(std::unique_ptr<Stream> inner, std::vector<std::byte> prefix)
      : inner_(std::move(inner)), prefix_(std::move(prefix)) {}
  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override {
    return inner_->WriteAll(bufs);
  }
  awaitable<void> ShutdownGracefully() override { return inner_->ShutdownGracefully(); }
  void Close() override { inner_->Close(); }
  asio::ip::tcp::socket& tcp() override { return inner_->tcp(); }
  bool is_tls() const override { return inner_->is_tls(); }
  const char* kind() const override { return inner_->kind(); }

 private:
  std::unique_ptr<Stream> inner_;
  std::vector<std::byte> prefix_;
  std::size_t prefix_offset_ = 0;
};

}  // namespace derpkit::net
