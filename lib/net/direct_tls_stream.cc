// DirectTlsStream (see direct_tls_stream.h). Owned by the shard thread of its socket.
//
// Why the BIO accepts every write rather than report a blocked one (as a socket BIO would):
// - OpenSSL keeps a blocked record in its write buffer and insists that the next SSL_write
//   repeats the same bytes, so the plaintext of a suspended write would have to live in a
//   per-connection buffer until it completes. Here SSL_write always completes: the plaintext
//   can come from one per-thread scratch buffer, and OpenSSL's own write buffer is released
//   (SSL_MODE_RELEASE_BUFFERS) after every call, also while the peer is not reading.
// - Anything written between the writer's records (a close_notify from ShutdownGracefully, an
//   alert from a failed read) simply queues behind them, in order; OpenSSL's rule of "finish the
//   pending record first" never comes into play.
// - The writer decides when the kernel may send (MSG_MORE between the records of one WriteAll).
// The price is one copy of the part of a record a full socket did not take, where
// asio::ssl::stream copies every byte twice (into and out of its BIO pair).
//
// Reads never need to wait for writability: OpenSSL 3 answers a KeyUpdate request with the next
// SSL_write (TLS 1.3), and the only bytes a read writes itself are alerts, which TryRead pushes
// to the socket when no writer is there to do it.

#include "lib/net/direct_tls_stream.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/ssl/error.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

#include "lib/net/gather.h"

namespace derpkit::net {

namespace {

// The largest TLS record payload (RFC 8446 §5.1): WriteAll cuts the caller's bytes into records
// of this size, so a hundred small frames cost a few records rather than a hundred.
constexpr std::size_t kRecordBytes = 16384;
// OpenSSL's read-ahead buffer while bytes flow (released when empty): one recv() takes up to this
// much, i.e. a few full records or dozens of the one-record-per-frame kind Tailscale's client
// writes. OpenSSL's default (one record plus overhead) is the lower bound it applies anyway.
constexpr std::size_t kReadAheadBytes = 64 * 1024;

// The per-thread plaintext scratch WriteAll coalesces small buffers into. It is free again as
// soon as SSL_write returns, since our BIO never makes a write wait; the rare write that must wait
// (not expected after the handshake) copies its bytes out first.
std::byte* RecordScratch() {
  thread_local std::unique_ptr<std::byte[]> scratch;
  if (!scratch) scratch.reset(new std::byte[kRecordBytes]);
  return scratch.get();
}

// The SSL's ex_data slot that points back at its DirectTlsStream, for the keylog callback: a
// secret is matched to its connection by the SSL*, never by client randoms across connections.
int StreamIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the hex secret of a keylog line into `out`; returns its length, 0 if malformed.
std::size_t DecodeSecret(std::string_view hex, std::array<std::uint8_t, 48>& out) {
  if (hex.empty() || hex.size() % 2 != 0 || hex.size() / 2 > out.size()) return 0;
  for (std::size_t i = 0; i < hex.size() / 2; ++i) {
    const int hi = HexDigit(hex[2 * i]);
    const int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return hex.size() / 2;
}

}  // namespace

void DirectTlsStream::EnableTls13Handover(SSL_CTX* context) {
  SSL_CTX_set_keylog_callback(context, &DirectTlsStream::OnKeylog);
  SSL_CTX_set_num_tickets(context, 0);
}

void DirectTlsStream::OnKeylog(const SSL* ssl, const char* line) {
  // "<LABEL> <client random hex> <secret hex>"; only the application traffic secrets matter.
  auto* stream = static_cast<DirectTlsStream*>(SSL_get_ex_data(ssl, StreamIndex()));
  if (stream == nullptr || line == nullptr) return;
  const std::string_view text(line);
  const std::size_t first_space = text.find(' ');
  const std::size_t second_space =
      first_space == std::string_view::npos ? first_space : text.find(' ', first_space + 1);
  if (second_space == std::string_view::npos) return;
  const std::string_view label = text.substr(0, first_space);
  std::string_view secret = text.substr(second_space + 1);
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
    secret.remove_suffix(1);
  }
  const bool client = label == "CLIENT_TRAFFIC_SECRET_0";
  if (!client && label != "SERVER_TRAFFIC_SECRET_0") return;
  if (!stream->secrets_) stream->secrets_ = std::make_unique<CapturedSecrets>();
  CapturedSecrets& s = *stream->secrets_;
  if (client) {
    s.client_bytes = DecodeSecret(secret, s.client);
  } else {
    s.server_bytes = DecodeSecret(secret, s.server);
  }
}

// The BIO under the SSL: recv()/send() on the stream's socket (see the top of this file).
struct DirectTlsBio {
  static DirectTlsStream& Stream(BIO* bio) {
    return *static_cast<DirectTlsStream*>(BIO_get_data(bio));
  }
  static int Read(BIO* bio, char* data, std::size_t size, std::size_t* read) {
    BIO_clear_retry_flags(bio);
    const int r = Stream(bio).BioRead(data, size, read);
    if (r < 0) {
      BIO_set_retry_read(bio);
      return 0;
    }
    return r;
  }
  static int Write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
    BIO_clear_retry_flags(bio);
    Stream(bio).BioWrite(data, size);
    *written = size;
    return 1;
  }
  static long Ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;  // every write already went to the socket or to unsent_
      case BIO_CTRL_EOF:
        // OpenSSL asks this to tell a peer that hung up (EOF without close_notify) from a
        // socket error.
        return Stream(bio).peer_eof_ ? 1 : 0;
      default:
        return 0;
    }
  }
  static int Create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }
  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "derpkit socket");
      if (m == nullptr) return m;
      BIO_meth_set_read_ex(m, Read);
      BIO_meth_set_write_ex(m, Write);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_create(m, Create);
      return m;
    }();
    return method;
  }
};

DirectTlsStream::DirectTlsStream(asio::ip::tcp::socket socket, SSL_CTX* context, Role role)
    : socket_(std::move(socket)) {
  BIO_METHOD* method = DirectTlsBio::Method();
  ssl_ = method == nullptr ? nullptr : SSL_new(context);
  BIO* bio = ssl_ == nullptr ? nullptr : BIO_new(method);
  if (bio == nullptr) {
    // Handshake() reports it; there is no connection without an SSL.
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
    return;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by the SSL
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_default_read_buffer_len(ssl_, kReadAheadBytes);
  // A hand-over needs OpenSSL to hold no byte past the client's Finished, so read-ahead waits
  // until TakeTls13() has decided.
  handover_possible_ = role == Role::kServer &&
                       SSL_CTX_get_keylog_callback(context) == &DirectTlsStream::OnKeylog &&
                       SSL_set_ex_data(ssl_, StreamIndex(), this) == 1;
  SSL_set_read_ahead(ssl_, handover_possible_ ? 0 : 1);
  if (role == Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

DirectTlsStream::~DirectTlsStream() {
  SSL_free(ssl_);
  if (secrets_) OPENSSL_cleanse(secrets_.get(), sizeof *secrets_);
}

std::optional<DirectTlsStream::Tls13Handover> DirectTlsStream::TakeTls13() {
  if (!handover_possible_) return std::nullopt;
  handover_possible_ = false;
  std::optional<Tls13Handover> handover = BuildHandover();
  if (secrets_) {
    OPENSSL_cleanse(secrets_.get(), sizeof *secrets_);
    secrets_.reset();
  }
  if (!handover) {
    if (ssl_ != nullptr) SSL_set_read_ahead(ssl_, 1);  // as a stream that was never offered one
    return std::nullopt;
  }
  return handover;
}

std::optional<DirectTlsStream::Tls13Handover> DirectTlsStream::BuildHandover() {
  if (ssl_ == nullptr || closed_ || !handshake_done_ || !secrets_) return std::nullopt;
  if (SSL_version(ssl_) != TLS1_3_VERSION || SSL_get_shutdown(ssl_) != 0) return std::nullopt;
  // Sequence numbers are exact only if nothing was read or written under the application keys
  // and OpenSSL buffers nothing: no plaintext, no raw record bytes, no unsent ciphertext.
  if (SSL_pending(ssl_) != 0 || SSL_has_pending(ssl_) != 0 || unsent_bytes() != 0) {
    return std::nullopt;
  }
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  if (cipher == nullptr) return std::nullopt;
  const std::optional<Tls13Suite> suite = Tls13SuiteFromId(SSL_CIPHER_get_protocol_id(cipher));
  if (!suite) return std::nullopt;
  auto client = MakeTrafficKeys(*suite, std::span(secrets_->client).first(secrets_->client_bytes));
  auto server = MakeTrafficKeys(*suite, std::span(secrets_->server).first(secrets_->server_bytes));
  if (!client || !server) return std::nullopt;
  SSL_free(ssl_);
  ssl_ = nullptr;
  closed_ = true;  // this stream is an empty shell from now on
  return Tls13Handover{std::move(socket_), *client, *server};
}

int DirectTlsStream::BioRead(char* data, std::size_t size, std::size_t* read) {
  if (closed_) {
    socket_errno_ = EBADF;
    return 0;
  }
  // A short recv() emptied the socket: asking again would only cost a syscall that says EAGAIN.
  // Bytes that arrive meanwhile make the socket readable, which WaitReadable sees.
  if (socket_drained_) return -1;
  const IoResult r =
      RecvNow(socket_.native_handle(), std::span(reinterpret_cast<std::byte*>(data), size));
  if (!r.ec) {
    *read = r.bytes;
    socket_drained_ = r.bytes < size;
    return 1;
  }
  if (r.ec == asio::error::eof) {
    peer_eof_ = true;
    return 0;
  }
  if (r.ec == asio::error::would_block) return -1;
  socket_errno_ = r.ec.value();
  return 0;
}

void DirectTlsStream::BioWrite(const char* data, std::size_t size) {
  // After a failure the bytes go nowhere: the writer reports write_error_, and a read that wrote
  // (an alert) must not fail because of it.
  if (closed_ || write_error_) return;
  const std::span bytes(reinterpret_cast<const std::byte*>(data), size);
  if (auto ec = unsent_.SendOrKeep(socket_.native_handle(), bytes, more_follows_)) {
    write_error_ = ec;
  }
}

void DirectTlsStream::SendUnsent() {
  if (write_error_ || closed_) {
    unsent_.Clear();
  } else if (auto ec = unsent_.SendKept(socket_.native_handle())) {
    write_error_ = ec;
  }
}

awaitable<std::error_code> DirectTlsStream::FlushUnsent() {
  return unsent_.Flush(socket_, closed_, write_error_);
}

std::error_code DirectTlsStream::ErrorFor(int ssl_error) {
  switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
      return asio::error::eof;  // close_notify
    case SSL_ERROR_SYSCALL: {
      const unsigned long err = ERR_get_error();
      ERR_clear_error();
      if (err != 0) return {static_cast<int>(err), asio::error::get_ssl_category()};
      if (socket_errno_ != 0) return {socket_errno_, std::system_category()};
      return asio::ssl::error::stream_truncated;
    }
    case SSL_ERROR_SSL: {
      const unsigned long err = ERR_get_error();
      ERR_clear_error();
      if (ERR_GET_LIB(err) == ERR_LIB_SSL &&
          ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return asio::ssl::error::stream_truncated;  // the peer hung up without close_notify
      }
      if (err == 0) return std::make_error_code(std::errc::protocol_error);
      return {static_cast<int>(err), asio::error::get_ssl_category()};
    }
    default:
      ERR_clear_error();
      return std::make_error_code(std::errc::protocol_error);
  }
}

awaitable<std::error_code> DirectTlsStream::Handshake() {
  if (ssl_ == nullptr) co_return std::make_error_code(std::errc::not_enough_memory);
  for (;;) {
    if (closed_) co_return asio::error::operation_aborted;
    ERR_clear_error();
    socket_drained_ = false;
    const int r = SSL_do_handshake(ssl_);
    const int status = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    if (status != SSL_ERROR_NONE && status != SSL_ERROR_WANT_READ &&
        status != SSL_ERROR_WANT_WRITE) {
      const std::error_code failure = ErrorFor(status);
      SendUnsent();  // the alert, if the socket takes it now; never wait for a failed peer
      co_return failure;
    }
    // This step's flight (ServerHello .. Finished, the session tickets) leaves before we wait.
    if (unsent_bytes() > 0) {
      const std::error_code ec = co_await FlushUnsent();
      if (ec) co_return ec;
    }
    if (write_error_) co_return write_error_;
    if (status == SSL_ERROR_NONE) {
      handshake_done_ = true;
      need_socket_ = false;  // read-ahead may already hold the peer's first bytes
      co_return std::error_code{};
    }
    const auto what = status == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                                    : asio::socket_base::wait_write;
    auto [ec] = co_await socket_.async_wait(what, kAsTuple);
    if (closed_) co_return asio::error::operation_aborted;
    if (ec) co_return ec;
  }
}

bool DirectTlsStream::ReadableNow() const {
  if (read_error_) return true;
  if (ssl_ == nullptr) return true;  // TryRead reports it
  if (SSL_pending(ssl_) > 0) return true;
  // Undecoded bytes: a whole record TryRead can use, unless the last read found them incomplete.
  return !need_socket_ && SSL_has_pending(ssl_) == 1;
}

IoResult DirectTlsStream::TryRead(std::span<std::byte> buf) {
  if (closed_) return {asio::error::operation_aborted, 0};
  if (read_error_) return {read_error_, 0};
  if (ssl_ == nullptr) return {std::make_error_code(std::errc::not_enough_memory), 0};
  need_socket_ = false;
  socket_drained_ = false;
  std::size_t total = 0;
  while (total < buf.size()) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, buf.data() + total, buf.size() - total, &n);
    if (r == 1) {
      total += n;
      continue;
    }
    const int status = SSL_get_error(ssl_, r);
    if (status == SSL_ERROR_WANT_READ || status == SSL_ERROR_WANT_WRITE) {
      // WANT_WRITE cannot come from our BIO (it takes every write); both mean "wait".
      need_socket_ = true;
      break;
    }
    read_error_ = ErrorFor(status);
    break;
  }
  // A read may have written an alert; with no writer to push it, give it to the socket now.
  if (unsent_bytes() > 0 && !writer_active_) SendUnsent();
  if (total > 0) return {{}, total};  // an error waits for the next call
  if (read_error_) return {read_error_, 0};
  if (buf.empty()) return {{}, 0};
  return {asio::error::would_block, 0};
}

awaitable<std::error_code> DirectTlsStream::WaitReadable() {
  if (closed_) co_return asio::error::operation_aborted;
  if (ReadableNow()) co_return std::error_code{};
  auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, kAsTuple);
  if (closed_) co_return asio::error::operation_aborted;
  need_socket_ = false;
  co_return ec;
}

awaitable<IoResult> DirectTlsStream::ReadSome(std::span<std::byte> buf) {
  for (;;) {
    const IoResult r = TryRead(buf);
    if (r.ec != asio::error::would_block) co_return r;
    const std::error_code ec = co_await WaitReadable();
    if (ec) co_return IoResult{ec, 0};
  }
}

int DirectTlsStream::EncryptRecord(std::span<const std::byte>& bytes, bool more_follows) {
  while (!bytes.empty()) {
    ERR_clear_error();
    std::size_t n = 0;
    more_follows_ = more_follows;
    const int r = SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n);
    more_follows_ = false;
    if (r != 1) return SSL_get_error(ssl_, r);
    bytes = bytes.subspan(n);  // partial-write mode hands back one record at a time
  }
  return SSL_ERROR_NONE;
}

std::error_code DirectTlsStream::WriteFailure(int ssl_error) {
  // After the peer's close or a fatal read error, say that rather than OpenSSL's "shut down".
  const std::error_code ec = ErrorFor(ssl_error);
  return read_error_ ? read_error_ : ec;
}

awaitable<std::error_code> DirectTlsStream::FinishRecord(std::vector<std::byte> kept, int status,
                                                         bool more_follows) {
  std::span<const std::byte> bytes = kept;
  for (;;) {
    if (unsent_bytes() > 0) {
      const std::error_code ec = co_await FlushUnsent();
      if (ec) co_return ec;
    }
    const auto what = status == SSL_ERROR_WANT_READ ? asio::socket_base::wait_read
                                                    : asio::socket_base::wait_write;
    auto [ec] = co_await socket_.async_wait(what, kAsTuple);
    if (closed_) co_return asio::error::operation_aborted;
    if (ec) co_return ec;
    status = EncryptRecord(bytes, more_follows);
    if (write_error_) co_return write_error_;
    if (status == SSL_ERROR_NONE) co_return std::error_code{};
    if (status != SSL_ERROR_WANT_READ && status != SSL_ERROR_WANT_WRITE) {
      co_return WriteFailure(status);
    }
  }
}

awaitable<IoResult> DirectTlsStream::WriteAll(std::span<const asio::const_buffer> bufs) {
  if (closed_) co_return IoResult{asio::error::operation_aborted, 0};
  if (write_error_) co_return IoResult{write_error_, 0};
  if (ssl_ == nullptr) co_return IoResult{std::make_error_code(std::errc::not_enough_memory), 0};
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  writer_active_ = true;
  std::error_code ec;
  if (unsent_bytes() > 0) ec = co_await FlushUnsent();  // a read's alert, say

  std::size_t done = 0;  // bytes handed to OpenSSL
  GatherCursor cursor(bufs);
  while (!ec && !cursor.done()) {
    std::span<const std::byte> record = cursor.Contiguous();
    if (record.size() >= kRecordBytes) {
      record = record.first(kRecordBytes);  // a whole record from one buffer: no copy
      cursor.Skip(kRecordBytes);
    } else {
      std::byte* scratch = RecordScratch();
      record = std::span<const std::byte>(scratch, cursor.CopyTo(std::span(scratch, kRecordBytes)));
    }
    done += record.size();
    const bool more_follows = done < total;
    // No suspension between filling the scratch and this call, so no other connection of this
    // thread can overwrite it; SSL_write consumes all of it before returning.
    const int status = EncryptRecord(record, more_follows);
    if (write_error_) {
      ec = write_error_;
    } else if (status == SSL_ERROR_WANT_READ || status == SSL_ERROR_WANT_WRITE) {
      // OpenSSL must wait mid-record (not expected after the handshake: the BIO takes every
      // write). The retry needs the same bytes, and the scratch is the thread's: keep a copy.
      std::vector<std::byte> kept(record.begin(), record.end());
      ec = co_await FinishRecord(std::move(kept), status, more_follows);
    } else if (status != SSL_ERROR_NONE) {
      ec = WriteFailure(status);
    } else if (unsent_bytes() > 0) {
      // A full socket: wait until it took this record before making the next (back-pressure).
      ec = co_await FlushUnsent();
    }
  }
  writer_active_ = false;
  co_return IoResult{ec, ec ? 0 : total};
}

awaitable<void> DirectTlsStream::ShutdownGracefully() {
  if (closed_ || !handshake_done_ || shutdown_sent_ || ssl_ == nullptr) co_return;
  shutdown_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // writes close_notify through the BIO; we do not wait for the peer's
  ERR_clear_error();
  const std::error_code ec = co_await FlushUnsent();
  (void)ec;
}

void DirectTlsStream::Close() {
  closed_ = true;
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  unsent_.Clear();
}

}  // namespace derpkit::net
