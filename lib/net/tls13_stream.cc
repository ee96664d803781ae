// Tls13Stream (see tls13_stream.h). Owned by the shard thread of its socket.
//
// Why the record layer is ours after the handshake: OpenSSL's SSL object is ~14 KB per
// connection for its whole life (keys, session, certificate copies, handshake leftovers), more
// than the whole budget for an idle TLS connection. After a TLS 1.3 handshake all that a
// connection needs is two traffic secrets with their keys, IVs and sequence numbers.
//
// Reading: bytes are received into the caller's buffer (the relay's 64 KiB shard buffer), each
// whole record is opened in place and its plaintext moved down over the header (a memmove of hot
// bytes; the AEAD pass is the only crypto). Only the tail record a read cut off is copied into
// partial_, with capacity for exactly that record, and freed when it completes.
//
// Writing: SealRecord encrypts in place in a per-thread scratch of kBatchRecords records, sent
// with one send(); the scratch is free again when WriteAll suspends, since what the socket did
// not take is copied into unsent_ first. A control record (alert, KeyUpdate) from the read side
// is sealed and sent at once, or queued behind unsent_: records leave in sequence-number order
// because sealing and queueing never suspend.

#include "lib/net/tls13_stream.h"

#include <openssl/crypto.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <asio/ssl/error.hpp>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace derpkit::net {

namespace {

// Records sealed per send(): 4 × 16 KiB covers the relay's usual gather batch in one syscall.
constexpr std::size_t kBatchRecords = 4;
constexpr std::size_t kScratchBytes = kBatchRecords * kMaxSealedRecordBytes;

// Alert descriptions we send (RFC 8446 §6).
constexpr int kAlertCloseNotify = 0;
constexpr int kAlertUnexpectedMessage = 10;
constexpr int kAlertBadRecordMac = 20;
constexpr int kAlertRecordOverflow = 22;
constexpr int kAlertDecodeError = 50;
constexpr int kAlertInternalError = 80;
constexpr int kAlertUserCanceled = 90;

constexpr std::uint8_t kHandshakeKeyUpdate = 24;
// KeyUpdates in a row without application data between them above which the peer is abusing
// them (each costs an HKDF pass, and as many as it likes fit in one read): BoringSSL's limit.
constexpr int kMaxKeyUpdatesInARow = 32;

std::byte* SealScratch() {
  thread_local std::unique_ptr<std::byte[]> scratch;
  if (!scratch) scratch.reset(new std::byte[kScratchBytes]);
  return scratch.get();
}

class Tls13ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tls13"; }
  std::string message(int value) const override {
    if (value >= static_cast<int>(Tls13Error::kBadRecordHeader) &&
        value <= static_cast<int>(Tls13Error::kCipherFailure)) {
      return RecordErrorText(static_cast<RecordError>(value - 1));
    }
    switch (static_cast<Tls13Error>(value)) {
      case Tls13Error::kUnexpectedMessage:
        return "TLS: unexpected message after the handshake (only KeyUpdate is accepted)";
      case Tls13Error::kDecodeError:
        return "TLS: malformed alert or handshake message";
      case Tls13Error::kPeerAlert:
        return "TLS: the peer sent a fatal alert";
      default:  // the record layer's, above
        break;
    }
    return "TLS 1.3 record layer error";
  }
};

std::error_code Tls13ErrorFor(RecordError e) {
  return MakeTls13Error(static_cast<Tls13Error>(static_cast<int>(e) + 1));
}

int AlertForRecordError(RecordError e) {
  switch (e) {
    case RecordError::kBadHeader:
    case RecordError::kNoContentType:
      return kAlertUnexpectedMessage;
    case RecordError::kOverflow:
      return kAlertRecordOverflow;
    case RecordError::kBadRecordMac:
      return kAlertBadRecordMac;
    case RecordError::kInternal:
      break;
  }
  return kAlertInternalError;
}

}  // namespace

const std::error_category& Tls13Category() {
  static const Tls13ErrorCategory category;
  return category;
}

std::error_code MakeTls13Error(Tls13Error e) { return {static_cast<int>(e), Tls13Category()}; }

Tls13Stream::Tls13Stream(asio::ip::tcp::socket socket, const TrafficKeys& read,
                         const TrafficKeys& write)
    : socket_(std::move(socket)), read_(read), write_(write) {}

Tls13Stream::~Tls13Stream() {
  OPENSSL_cleanse(&read_, sizeof read_);
  OPENSSL_cleanse(&write_, sizeof write_);
}

// ---- reading ------------------------------------------------------------------------------

bool Tls13Stream::ReadableNow() const { return read_error_ || held_offset_ < held_.size(); }

awaitable<std::error_code> Tls13Stream::WaitReadable() {
  if (closed_) co_return asio::error::operation_aborted;
  if (ReadableNow()) co_return std::error_code{};
  // Unless the last recv found the socket empty, bytes may be there already: TryRead will say.
  if (!socket_empty_) co_return std::error_code{};
  if (reactor_ == nullptr) reactor_ = &ReactorOf(socket_);
  auto [ec] = co_await AsyncWaitReadableDrained(*reactor_, socket_, kAsTuple);
  socket_empty_ = false;
  if (closed_) co_return asio::error::operation_aborted;
  co_return ec;
}

awaitable<IoResult> Tls13Stream::ReadSome(std::span<std::byte> buf) {
  for (;;) {
    const IoResult r = TryRead(buf);
    if (r.ec != asio::error::would_block) co_return r;
    const std::error_code ec = co_await WaitReadable();
    if (ec) co_return IoResult{ec, 0};
  }
}

IoResult Tls13Stream::TryRead(std::span<std::byte> buf) {
  if (closed_) return {asio::error::operation_aborted, 0};
  std::size_t total = 0;
  if (held_offset_ < held_.size()) {
    const std::size_t n = std::min(buf.size(), held_.size() - held_offset_);
    if (n > 0) std::memcpy(buf.data(), held_.data() + held_offset_, n);
    held_offset_ += n;
    total = n;
    if (held_offset_ == held_.size()) {
      std::vector<std::byte>().swap(held_);
      held_offset_ = 0;
    }
  }
  while (total < buf.size() && !read_error_ && held_.empty()) {
    const Step step = partial_.empty() ? ReadDirect(buf, total) : ReadIntoPartial(buf, total);
    if (step == Step::kStop) break;
  }
  if (total > 0) return {{}, total};  // an error waits for the next call
  if (read_error_) return {read_error_, 0};
  if (buf.empty()) return {{}, 0};
  return {asio::error::would_block, 0};
}

Tls13Stream::Step Tls13Stream::ReadIntoPartial(std::span<std::byte> buf, std::size_t& total) {
  // partial_ holds the start of one record: first complete its header, then its body.
  std::size_t want = kRecordHeaderBytes;
  if (partial_.size() >= kRecordHeaderBytes) {
    auto size = RecordSize(std::span(partial_).first<kRecordHeaderBytes>());
    if (!size) {
      FailRead(Tls13ErrorFor(size.error()), AlertForRecordError(size.error()));
      return Step::kStop;
    }
    want = *size;
  }
  const std::size_t had = partial_.size();
  if (had < want) {
    if (partial_.capacity() < want) partial_.reserve(want);
    partial_.resize(want);
    const IoResult r =
        RecvNow(socket_.native_handle(), std::span(partial_).subspan(had, want - had));
    if (r.ec) {
      partial_.resize(had);
      socket_empty_ = r.ec == asio::error::would_block;
      if (r.ec == asio::error::eof) {
        read_error_ = asio::ssl::error::stream_truncated;  // a FIN in the middle of a record
      } else if (r.ec != asio::error::would_block) {
        read_error_ = r.ec;
      }
      return Step::kStop;
    }
    partial_.resize(had + r.bytes);
    socket_empty_ = partial_.size() < want;
    if (socket_empty_) return Step::kStop;               // a short recv: the socket is empty
    if (want == kRecordHeaderBytes) return Step::kMore;  // now the body
  }
  // A whole record: open it where it is and hand over what fits.
  const std::size_t app_bytes = ProcessRecord(partial_);
  if (read_error_ && app_bytes == 0) {
    std::vector<std::byte>().swap(partial_);
    return Step::kStop;
  }
  const std::size_t n = std::min(app_bytes, buf.size() - total);
  if (n > 0) std::memcpy(buf.data() + total, partial_.data() + kRecordHeaderBytes, n);
  total += n;
  if (n < app_bytes) {
    // The caller's buffer is full: the rest waits in held_ (the same allocation).
    partial_.resize(kRecordHeaderBytes + app_bytes);
    held_ = std::move(partial_);
    held_offset_ = kRecordHeaderBytes + n;
    partial_ = {};
    return Step::kStop;
  }
  std::vector<std::byte>().swap(partial_);
  return Step::kMore;
}

Tls13Stream::Step Tls13Stream::ReadDirect(std::span<std::byte> buf, std::size_t& total) {
  // Raw bytes are at buf[raw_begin, raw_end); plaintext collects at buf[0, total) in front of
  // them. A record's plaintext is shorter than the record, so moving it down never overtakes
  // the raw bytes still to be opened.
  std::size_t raw_begin = total;
  std::size_t raw_end = total;
  Step step = Step::kStop;
  for (;;) {
    const std::size_t room = buf.size() - raw_end;
    const IoResult r = RecvNow(socket_.native_handle(), buf.subspan(raw_end, room));
    if (r.ec == asio::error::eof) {
      // A FIN without close_notify (after close_notify read_error_ is already eof).
      read_error_ = asio::ssl::error::stream_truncated;
      break;
    }
    socket_empty_ = r.ec == asio::error::would_block || (!r.ec && r.bytes < room);
    if (r.ec) {
      if (r.ec != asio::error::would_block) read_error_ = r.ec;
      break;
    }
    raw_end += r.bytes;
    while (!read_error_ && raw_end - raw_begin >= kRecordHeaderBytes) {
      auto size = RecordSize(
          std::span(buf.data() + raw_begin, kRecordHeaderBytes).first<kRecordHeaderBytes>());
      if (!size) {
        FailRead(Tls13ErrorFor(size.error()), AlertForRecordError(size.error()));
        break;
      }
      if (raw_end - raw_begin < *size) break;
      const std::size_t app_bytes = ProcessRecord(buf.subspan(raw_begin, *size));
      if (app_bytes > 0) {
        std::memmove(buf.data() + total, buf.data() + raw_begin + kRecordHeaderBytes, app_bytes);
        total += app_bytes;
      }
      raw_begin += *size;
    }
    if (read_error_) break;
    if (r.bytes < room) break;  // a short recv: the socket is empty
    // The buffer is full: make room by moving the cut-off record down behind the plaintext.
    if (raw_begin == total) {
      step = raw_begin < raw_end ? Step::kMore : Step::kStop;  // partial_ takes over
      break;
    }
    std::memmove(buf.data() + total, buf.data() + raw_begin, raw_end - raw_begin);
    raw_end -= raw_begin - total;
    raw_begin = total;
    if (raw_end == buf.size()) {
      step = Step::kMore;
      break;
    }
  }
  if (raw_begin < raw_end && !read_error_) {
    // A record cut off by the end of what arrived: keep its bytes until the rest comes.
    std::size_t capacity = kRecordHeaderBytes;
    if (raw_end - raw_begin >= kRecordHeaderBytes) {
      auto size = RecordSize(
          std::span(buf.data() + raw_begin, kRecordHeaderBytes).first<kRecordHeaderBytes>());
      if (size) capacity = *size;
    }
    partial_.reserve(capacity);
    partial_.assign(buf.begin() + static_cast<std::ptrdiff_t>(raw_begin),
                    buf.begin() + static_cast<std::ptrdiff_t>(raw_end));
  }
  return read_error_ ? Step::kStop : step;
}

std::size_t Tls13Stream::ProcessRecord(std::span<std::byte> record) {
  if (read_error_) return 0;  // nothing after close_notify or a failure counts
  auto opened = OpenRecord(read_, record);
  if (!opened) {
    FailRead(Tls13ErrorFor(opened.error()), AlertForRecordError(opened.error()));
    return 0;
  }
  const auto body =
      std::span<const std::byte>(record.data() + kRecordHeaderBytes, opened->plaintext_bytes);
  switch (opened->type) {
    case ContentType::kApplicationData:
      key_updates_in_a_row_ = 0;
      return opened->plaintext_bytes;
    case ContentType::kHandshake:
      HandleHandshake(body);
      return 0;
    case ContentType::kAlert:
      HandleAlert(body);
      return 0;
    case ContentType::kChangeCipherSpec:
    default:
      FailRead(MakeTls13Error(Tls13Error::kUnexpectedMessage), kAlertUnexpectedMessage);
      return 0;
  }
}

void Tls13Stream::HandleHandshake(std::span<const std::byte> body) {
  // Only KeyUpdate (4-byte header + 1 byte) is accepted; RFC 8446 §5.1: it must end its record,
  // since the next record is under the new key.
  if (body.size() < 4) {
    FailRead(MakeTls13Error(Tls13Error::kDecodeError), kAlertDecodeError);
    return;
  }
  const auto type = std::to_integer<std::uint8_t>(body[0]);
  const std::size_t length = (std::to_integer<std::size_t>(body[1]) << 16) |
                             (std::to_integer<std::size_t>(body[2]) << 8) |
                             std::to_integer<std::size_t>(body[3]);
  if (type != kHandshakeKeyUpdate) {
    FailRead(MakeTls13Error(Tls13Error::kUnexpectedMessage), kAlertUnexpectedMessage);
    return;
  }
  if (length != 1 || body.size() != 5) {
    FailRead(MakeTls13Error(Tls13Error::kDecodeError), kAlertDecodeError);
    return;
  }
  const auto request = std::to_integer<std::uint8_t>(body[4]);
  if (request > 1) {
    FailRead(MakeTls13Error(Tls13Error::kDecodeError), kAlertDecodeError);
    return;
  }
  if (++key_updates_in_a_row_ > kMaxKeyUpdatesInARow) {
    FailRead(MakeTls13Error(Tls13Error::kUnexpectedMessage), kAlertUnexpectedMessage);
    return;
  }
  if (auto r = UpdateTrafficKeys(read_); !r) {
    FailRead(MakeTls13Error(Tls13Error::kCipherFailure), kAlertInternalError);
    return;
  }
  ++key_updates_received_;
  if (request == 1) {
    // RFC 8446 §4.6.3: our answer must precede our next application data, and requests that
    // arrive while we are silent get one answer. So it goes out now only when the socket has
    // taken everything else; a peer that does not read cannot make us queue one per request.
    key_update_owed_ = true;
    if (unsent_bytes() == 0) SendOwedKeyUpdate();
  }
}

void Tls13Stream::SendOwedKeyUpdate() {
  if (!key_update_owed_ || shutdown_sent_ || write_error_ || closed_) return;
  key_update_owed_ = false;
  // Our KeyUpdate(update_not_requested) under the old key, then the new write key.
  const std::array<std::byte, 5> update{std::byte{kHandshakeKeyUpdate}, std::byte{0}, std::byte{0},
                                        std::byte{1}, std::byte{0}};
  if (SendControl(ContentType::kHandshake, update)) {
    if (auto r = UpdateTrafficKeys(write_); !r) {
      write_error_ = MakeTls13Error(Tls13Error::kCipherFailure);
    }
  }
}

void Tls13Stream::HandleAlert(std::span<const std::byte> body) {
  if (body.size() != 2) {
    FailRead(MakeTls13Error(Tls13Error::kDecodeError), kAlertDecodeError);
    return;
  }
  const int description = std::to_integer<int>(body[1]);
  if (description == kAlertCloseNotify) {
    read_error_ = asio::error::eof;
    return;
  }
  if (description == kAlertUserCanceled) return;  // a warning; close_notify follows
  // Every other alert is fatal in TLS 1.3 (RFC 8446 §6.2); no alert goes back.
  read_error_ = MakeTls13Error(Tls13Error::kPeerAlert);
  if (!write_error_) write_error_ = read_error_;
}

void Tls13Stream::FailRead(std::error_code ec, int alert_description) {
  read_error_ = ec;
  if (!shutdown_sent_ && !write_error_) {
    const std::array<std::byte, 2> alert{std::byte{2}, static_cast<std::byte>(alert_description)};
    SendControl(ContentType::kAlert, alert);
  }
  // After a fatal alert nothing more may be written.
  if (!write_error_) write_error_ = ec;
}

// ---- writing ------------------------------------------------------------------------------

bool Tls13Stream::SendControl(ContentType type, std::span<const std::byte> body) {
  std::array<std::byte, kRecordHeaderBytes + 8 + 1 + kRecordTagBytes> record{};
  std::memcpy(record.data() + kRecordHeaderBytes, body.data(), body.size());
  auto sealed = SealRecord(write_, type, record, body.size());
  if (!sealed) {
    write_error_ = MakeTls13Error(Tls13Error::kCipherFailure);
    return false;
  }
  SendOrKeep(std::span(record.data(), *sealed), false);
  return !write_error_;
}

void Tls13Stream::SendOrKeep(std::span<const std::byte> bytes, bool more_follows) {
  if (closed_ || write_error_) return;
  if (auto ec = unsent_.SendOrKeep(socket_.native_handle(), bytes, more_follows)) write_error_ = ec;
}

void Tls13Stream::SendUnsent() {
  if (write_error_ || closed_) {
    unsent_.Clear();
  } else if (auto ec = unsent_.SendKept(socket_.native_handle())) {
    write_error_ = ec;
  }
}

awaitable<std::error_code> Tls13Stream::FlushUnsent() {
  return unsent_.Flush(socket_, closed_, write_error_);
}

std::size_t Tls13Stream::SealAndSend(GatherCursor& cursor) {
  SendOwedKeyUpdate();
  if (write_error_) return 0;
  // No suspension between sealing into the scratch and SendOrKeep, which sends or copies it into
  // unsent_: no other connection of this thread can reuse the scratch meanwhile.
  std::byte* scratch = SealScratch();
  std::size_t batch_bytes = 0;
  std::size_t sealed_plaintext = 0;
  for (std::size_t r = 0; r < kBatchRecords && !cursor.done(); ++r) {
    const std::size_t filled = cursor.CopyTo(
        std::span(scratch + batch_bytes + kRecordHeaderBytes, kMaxRecordPlaintextBytes));
    auto sealed = SealRecord(write_, ContentType::kApplicationData,
                             std::span(scratch + batch_bytes, kMaxSealedRecordBytes), filled);
    if (!sealed) {
      write_error_ = MakeTls13Error(Tls13Error::kCipherFailure);
      return sealed_plaintext;
    }
    batch_bytes += *sealed;
    sealed_plaintext += filled;
  }
  if (batch_bytes > 0) SendOrKeep(std::span(scratch, batch_bytes), !cursor.done());
  return sealed_plaintext;
}

awaitable<IoResult> Tls13Stream::WriteAll(std::span<const asio::const_buffer> bufs) {
  if (closed_) co_return IoResult{asio::error::operation_aborted, 0};
  if (write_error_) co_return IoResult{write_error_, 0};
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  std::error_code ec;
  if (unsent_bytes() > 0) ec = co_await FlushUnsent();  // a control record, say
  GatherCursor cursor(bufs);
  while (!ec && !cursor.done()) {
    SealAndSend(cursor);
    if (write_error_) {
      ec = write_error_;
    } else if (unsent_bytes() > 0) {
      // A full socket: wait until it took this batch before sealing the next (back-pressure).
      ec = co_await FlushUnsent();
    }
  }
  co_return IoResult{ec, ec ? 0 : total};
}

IoResult Tls13Stream::TryWrite(std::span<const asio::const_buffer> bufs) {
  if (closed_) return {asio::error::operation_aborted, 0};
  if (write_error_) return {write_error_, 0};
  if (unsent_bytes() > 0) {
    SendUnsent();
    if (write_error_) return {write_error_, 0};
    if (unsent_bytes() > 0) return {asio::error::would_block, 0};
  }
  GatherCursor cursor(bufs);
  const std::size_t done = SealAndSend(cursor);
  if (write_error_) return {write_error_, 0};
  return {{}, done};
}

awaitable<void> Tls13Stream::ShutdownGracefully() {
  if (closed_ || shutdown_sent_ || write_error_) co_return;
  const std::array<std::byte, 2> alert{std::byte{1}, std::byte{kAlertCloseNotify}};
  SendControl(ContentType::kAlert, alert);
  shutdown_sent_ = true;
  const std::error_code ec = co_await FlushUnsent();
  (void)ec;
}

void Tls13Stream::LeaveLoop() {
  transit_.Leave(socket_);
  reactor_ = nullptr;
}

void Tls13Stream::JoinLoop(asio::io_context& io) {
  transit_.Join(socket_, io);
  // The new loop has not seen the socket empty: the first wait must not skip what is there.
  socket_empty_ = false;
}

void Tls13Stream::Close() {
  closed_ = true;
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  std::vector<std::byte>().swap(partial_);
  std::vector<std::byte>().swap(held_);
  held_offset_ = 0;
  unsent_.Clear();
}

}  // namespace derpkit::net
