// A TLS Stream that drives an OpenSSL SSL directly on the non-blocking socket: OpenSSL reads with
// recv() into its own record buffer and writes with send() from it, and asio is used only to wait
// for readiness (socket.async_wait). Compared with asio::ssl::stream (TlsStream) it holds no
// engine buffers and copies nothing through BIO pairs: with SSL_MODE_RELEASE_BUFFERS an idle
// connection holds the SSL object (keys, session) and this struct, no record buffers at all.
//
// Design (the why is in direct_tls_stream.cc):
// - Every byte OpenSSL writes is accepted at once: sent to the socket, and whatever the socket does
//   not take is kept in `unsent_` (the only copy, made only when the socket is full) until the
//   socket drains. So OpenSSL never sees a blocked write and never holds a half-written record.
// - WriteAll coalesces the caller's gather list into records of up to 16 KB through a per-thread
//   scratch buffer (free again as soon as SSL_write returns, because writes never block), and
//   waits for writability only while `unsent_` holds bytes.
// - Reads use read-ahead (one recv for many small records); TryRead fills the caller's buffer
//   across records until it is full or the socket is empty.
//
// Memory of an idle server connection after a TLS 1.3 handshake (OpenSSL 3.0, measured): about
// 14 KB, nearly all of it OpenSSL's own SSL object (the 7.6 KB ssl_st, two AES-GCM contexts,
// the session, the CERT copy, handshake leftovers); this class adds ~100 bytes and the BIO ~200.
//
// Hand-over (TLS 1.3 servers): with a context prepared by EnableTls13Handover, the stream
// captures the traffic secrets during the handshake (keylog callback, per SSL via ex_data) and
// keeps read-ahead off until then, so that OpenSSL holds no byte past the client's Finished.
// TakeTls13() then gives the socket and keys to a Tls13Stream and frees the SSL; when it cannot
// (TLS 1.2, another suite, a missing secret, bytes buffered), the stream goes on as before.
//
// Thread affinity: the io_context (shard) thread that owns the socket; every call from there. One
// read (ReadSome, or WaitReadable + TryRead) and one WriteAll may be in progress at the same time;
// Close() from either side or from outside ends both.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <asio.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include "lib/net/socket_io.h"
#include "lib/net/stream.h"
#include "lib/net/tls13_records.h"

namespace derpkit::net {

class DirectTlsStream final : public Stream {
 public:
  enum class Role { kServer, kClient };

  // Makes the SSL from `context` (SSL_new takes its own reference: the caller may drop its copy
  // of the context, e.g. when a certificate reload publishes a new one). A client caller
  // configures native_handle() (SNI, verification: PrepareClientSsl) before Handshake().
  DirectTlsStream(asio::ip::tcp::socket socket, SSL_CTX* context, Role role);
  ~DirectTlsStream() override;
  DirectTlsStream(const DirectTlsStream&) = delete;
  DirectTlsStream& operator=(const DirectTlsStream&) = delete;

  // Runs the handshake for the role. Errors carry OpenSSL's reason (asio's ssl category, as
  // asio::ssl::stream reports them); a peer that hangs up mid-handshake gives eof or
  // stream_truncated. Bounded by the caller (close the stream to end it).
  awaitable<std::error_code> Handshake();

  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override;
  bool supports_try_read() const override { return true; }
  awaitable<std::error_code> WaitReadable() override;
  IoResult TryRead(std::span<std::byte> buf) override;
  // Queues a close_notify and waits until the socket took it; never waits for the peer's.
  awaitable<void> ShutdownGracefully() override;
  void Close() override;
  asio::ip::tcp::socket& tcp() override { return socket_; }
  bool is_tls() const override { return true; }
  const char* kind() const override { return "tls"; }

  // Prepares a server context for TakeTls13: a keylog callback that captures each connection's
  // traffic secrets, and no TLS 1.3 session tickets (they would be application-key records
  // OpenSSL writes after the handshake, moving the sequence numbers). Call while the context is
  // being built, before any SSL is made from it.
  static void EnableTls13Handover(SSL_CTX* context);

  struct Tls13Handover {
    asio::ip::tcp::socket socket;
    TrafficKeys read;   // what the peer sends
    TrafficKeys write;  // what we send
  };
  // After a successful Handshake(): the socket and keys for a Tls13Stream, the SSL freed and
  // this stream left closed; nullopt when the hand-over is not possible, and this stream stays
  // usable (read-ahead switched on). Call before any application byte is read or written.
  std::optional<Tls13Handover> TakeTls13();

  SSL* native_handle() { return ssl_; }
  // Ciphertext the socket has not taken yet (a full socket); 0 when idle.
  std::size_t unsent_bytes() const { return unsent_.size(); }

 private:
  friend struct DirectTlsBio;

  // Whether TryRead can make progress without the socket: decrypted bytes, undecoded read-ahead
  // bytes OpenSSL has not yet found incomplete, or a stored error.
  bool ReadableNow() const;
  // Sends as much of unsent_ as the socket takes, without waiting.
  void SendUnsent();
  // Sends all of unsent_, waiting for writability as needed.
  awaitable<std::error_code> FlushUnsent();
  // Hands `bytes` to SSL_write (our BIO sends the records or keeps them in unsent_) and returns
  // SSL_ERROR_NONE, or the status of the call that stopped, with `bytes` left as what remains.
  int EncryptRecord(std::span<const std::byte>& bytes, bool more_follows);
  // Retries a record OpenSSL could not take at once (WANT_READ / WANT_WRITE) after waiting.
  awaitable<std::error_code> FinishRecord(std::vector<std::byte> kept, int status,
                                          bool more_follows);
  // The error for a failed SSL_write: the read side's error when there is one.
  std::error_code WriteFailure(int ssl_error);
  // The error for a failed SSL call: eof, stream_truncated, a socket errno or OpenSSL's reason.
  std::error_code ErrorFor(int ssl_error);

  // Called by the BIO.
  int BioRead(char* data, std::size_t size, std::size_t* read);
  void BioWrite(const char* data, std::size_t size);

  // The traffic secrets the keylog callback captured (hand-over contexts only).
  struct CapturedSecrets {
    std::array<std::uint8_t, 48> client{};
    std::array<std::uint8_t, 48> server{};
    std::size_t client_bytes = 0;
    std::size_t server_bytes = 0;
  };
  static void OnKeylog(const SSL* ssl, const char* line);
  std::optional<Tls13Handover> BuildHandover();

  asio::ip::tcp::socket socket_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<CapturedSecrets> secrets_;  // only during a hand-over context's handshake
  bool handover_possible_ = false;            // a hand-over context: read-ahead off so far
  KeptBytes unsent_;                          // capacity only while the socket is full
  std::error_code read_error_;                // sticky: returned by every later read
  std::error_code write_error_;               // sticky: the socket refused a write
  int socket_errno_ = 0;                      // the last recv() failure, for SSL_ERROR_SYSCALL
  bool closed_ = false;
  bool handshake_done_ = false;
  bool shutdown_sent_ = false;
  bool writer_active_ = false;
  bool peer_eof_ = false;        // recv() returned 0
  bool need_socket_ = false;     // the last read wanted bytes the socket did not have
  bool socket_drained_ = false;  // this read's last recv() came back short
  bool more_follows_ = false;    // WriteAll has more records right behind this one (MSG_MORE)
};

}  // namespace derpkit::net
