#include "lib/net/ws_stream.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include "lib/net/log.h"

namespace derpkit::net {
namespace {

using http::WsOpcode;

// Headers, control frames and runs of small frames are read through this buffer.
constexpr std::size_t kReadBufferSize = 16 * 1024;
// When the caller wants at least this much of a payload, it is read straight into the caller's
// buffer (no copy). Smaller reads go through the read buffer, so that a caller reading a few
// bytes at a time, or many small frames, costs one read(2) per 16 KiB rather than per call.
constexpr std::size_t kDirectReadSize = 8 * 1024;
// A peer that pings faster than we can write gets Pongs only for some of its Pings, which
// RFC 6455 §5.5.3 allows; this caps what is queued.
constexpr std::size_t kMaxQueuedControlSize = 1024;
// Scratch space above this is given back after each write, as TlsStream does.
constexpr std::size_t kKeepScratchSize = 64 * 1024;

std::error_code ProtocolError() { return std::make_error_code(std::errc::protocol_error); }

}  // namespace

// The turn to write to inner_, held for the duration of one write. The destructor hands the turn
// on, also when a coroutine holding it is cancelled or throws.
class WsStream::WriterTurn {
 public:
  explicit WriterTurn(WsStream& stream) : stream_(stream) {
    assert(!stream_.writing_);
    stream_.writing_ = true;
  }
  ~WriterTurn() {
    stream_.writing_ = false;
    stream_.wake_.cancel();
  }
  WriterTurn(const WriterTurn&) = delete;
  WriterTurn& operator=(const WriterTurn&) = delete;

 private:
  WsStream& stream_;
};

WsStream::WsStream(std::unique_ptr<Stream> inner, Role role, Bytes read_ahead)
    : inner_(std::move(inner)),
      role_(role),
      rbuf_(std::move(read_ahead)),
      wake_(inner_->tcp().get_executor(), asio::steady_timer::time_point::max()) {
  rend_ = rbuf_.size();
  rbuf_.resize(std::max(rbuf_.size(), kReadBufferSize));
}

WsStream::~WsStream() = default;

awaitable<std::error_code> WsStream::Fill() {
  if (rpos_ > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + rpos_, buffered());
    rend_ -= rpos_;
    rpos_ = 0;
  }
  // Only called for less than a header plus a control payload, far below the buffer's size.
  assert(rend_ < rbuf_.size());
  const IoResult r = co_await inner_->ReadSome(std::span(rbuf_).subspan(rend_));
  if (r.ec) co_return r.ec;
  rend_ += r.bytes;
  co_return std::error_code{};
}

awaitable<IoResult> WsStream::ReadSome(std::span<std::byte> buf) {
  if (buf.empty()) co_return IoResult{};
  for (;;) {
    if (!protocol_error_.empty()) co_return IoResult{ProtocolError(), 0};
    if (eof_) co_return IoResult{asio::error::eof, 0};

    if (payload_remaining_ > 0) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), payload_remaining_));
      std::size_t n = 0;
      if (buffered() > 0) {
        n = std::min(want, buffered());
        std::memcpy(buf.data(), rbuf_.data() + rpos_, n);
        rpos_ += n;
      } else if (want >= kDirectReadSize) {
        const IoResult r = co_await inner_->ReadSome(buf.first(want));
        if (r.ec) co_return IoResult{r.ec, 0};
        n = r.bytes;
      } else {
        if (const std::error_code ec = co_await Fill()) co_return IoResult{ec, 0};
        continue;
      }
      if (read_masked_) http::ApplyWsMask(buf.first(n), read_mask_, payload_offset_);
      payload_offset_ += n;
      payload_remaining_ -= n;
      co_return IoResult{{}, n};
    }

    const auto h = http::ParseWsFrameHeader(buffered_bytes(), kWsMaxReadFramePayloadSize,
                                            /*expect_masked=*/role_ == Role::kServer);
    if (!h.has_value()) {
      if (h.error() == http::WsError::kShort) {
        if (const std::error_code ec = co_await Fill()) co_return IoResult{ec, 0};
        continue;
      }
      const std::uint16_t code = h.error() == http::WsError::kTooLarge
                                     ? http::kWsCloseMessageTooBig
                                     : http::kWsCloseProtocolError;
      co_return co_await Fail(code, http::Describe(h.error()));
    }

    if (http::IsWsControl(h->opcode)) {
      if (buffered() < h->header_size + h->payload_size) {
        if (const std::error_code ec = co_await Fill()) co_return IoResult{ec, 0};
        continue;
      }
      if (h->opcode == WsOpcode::kClose) {
        const ByteSpan payload =
            buffered_bytes().subspan(h->header_size, static_cast<std::size_t>(h->payload_size));
        std::array<std::byte, http::kWsMaxControlPayloadSize> unmasked;
        std::copy(payload.begin(), payload.end(), unmasked.begin());
        const auto body = std::span(unmasked).first(payload.size());
        if (h->masked) http::ApplyWsMask(body, h->mask, 0);
        const auto close = http::ParseWsClosePayload(body);
        if (!close.has_value()) {
          co_return co_await Fail(http::kWsCloseProtocolError, http::Describe(close.error()));
        }
        rpos_ += h->header_size + payload.size();
        peer_close_code_ = close->code;
        eof_ = true;
        if (!close_queued_) {
          // Echo the code (§5.5.1); an empty Close is answered with an empty one.
          QueueClose(close->code);
          if (co_await AwaitWriterTurn()) {
            WriterTurn turn(*this);
            (void)co_await FlushControl();  // the connection ends either way
          }
        }
        co_return IoResult{asio::error::eof, 0};
      }
      if (const std::error_code ec = co_await HandleControl(*h)) co_return IoResult{ec, 0};
      continue;
    }

    if (h->opcode == WsOpcode::kText) {
      co_return co_await Fail(http::kWsCloseUnsupportedData,
                              "WebSocket text frame (DERP is carried in binary frames)");
    }
    if (h->opcode == WsOpcode::kContinuation && !in_message_) {
      co_return co_await Fail(http::kWsCloseProtocolError,
                              "WebSocket continuation frame without a message to continue");
    }
    if (h->opcode == WsOpcode::kBinary && in_message_) {
      co_return co_await Fail(http::kWsCloseProtocolError,
                              "WebSocket binary frame inside a fragmented message");
    }
    in_message_ = !h->fin;
    rpos_ += h->header_size;
    payload_remaining_ = h->payload_size;
    payload_offset_ = 0;
    read_masked_ = h->masked;
    read_mask_ = h->mask;
    // An empty frame yields nothing: loop on to the next one rather than return 0 bytes.
  }
}

// Handles a buffered Ping or Pong (Close is handled in ReadSome, where it ends the stream).
awaitable<std::error_code> WsStream::HandleControl(const http::WsFrameHeader& h) {
  const ByteSpan payload =
      buffered_bytes().subspan(h.header_size, static_cast<std::size_t>(h.payload_size));
  rpos_ += h.header_size + payload.size();
  if (h.opcode != WsOpcode::kPing || close_queued_) co_return std::error_code{};
  if (control_out_.size() > kMaxQueuedControlSize) co_return std::error_code{};

  std::array<std::byte, http::kWsMaxControlPayloadSize> unmasked;
  std::copy(payload.begin(), payload.end(), unmasked.begin());
  const auto body = std::span(unmasked).first(payload.size());
  if (h.masked) http::ApplyWsMask(body, h.mask, 0);
  QueueControl(WsOpcode::kPong, body);
  if (writing_) co_return std::error_code{};  // the write in flight sends it when it is done
  WriterTurn turn(*this);
  co_return co_await FlushControl();
}

awaitable<IoResult> WsStream::Fail(std::uint16_t close_code, std::string_view why) {
  protocol_error_ = why;
  if (!close_queued_) {
    QueueClose(close_code);
    // Best effort and without waiting: the caller closes the connection next anyway.
    if (!writing_) {
      WriterTurn turn(*this);
      (void)co_await FlushControl();
    }
  }
  co_return IoResult{ProtocolError(), 0};
}

void WsStream::QueueControl(WsOpcode opcode, ByteSpan payload) {
  if (role_ == Role::kServer) {
    http::AppendWsFrameHeader(control_out_, true, opcode, payload.size(), nullptr);
    AppendBytes(control_out_, payload);
    return;
  }
  const http::WsMask mask = NextMask();
  http::AppendWsFrameHeader(control_out_, true, opcode, payload.size(), &mask);
  const std::size_t at = control_out_.size();
  AppendBytes(control_out_, payload);
  http::ApplyWsMask(std::span(control_out_).subspan(at), mask, 0);
}

void WsStream::QueueClose(std::uint16_t code) {
  close_queued_ = true;
  if (role_ == Role::kServer) {
    http::AppendWsClose(control_out_, code, "", nullptr);
  } else {
    const http::WsMask mask = NextMask();
    http::AppendWsClose(control_out_, code, "", &mask);
  }
}

awaitable<bool> WsStream::AwaitWriterTurn() {
  while (writing_ && !closed_) {
    // WriterTurn's destructor cancels the timer; so does a cancellation of this coroutine,
    // which is told apart by the cancellation state.
    auto [ec] = co_await wake_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    (void)ec;
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) co_return false;
  }
  co_return !closed_;
}

awaitable<std::error_code> WsStream::FlushControl() {
  while (!control_out_.empty()) {
    // Swap, so that a Pong queued by the reader during this write does not touch the bytes in
    // flight.
    Bytes in_flight;
    in_flight.swap(control_out_);
    const asio::const_buffer b = asio::buffer(in_flight);
    const IoResult r = co_await inner_->WriteAll(std::span(&b, 1));
    if (r.ec) co_return r.ec;
  }
  co_return std::error_code{};
}

http::WsMask WsStream::NextMask() {
  // RFC 6455 §5.3 wants masks an attacker cannot predict; OpenSSL's CSPRNG, 64 masks per call.
  if (mask_pool_used_ == mask_pool_.size()) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(mask_pool_.data()),
                   static_cast<int>(mask_pool_.size())) != 1) {
      LOG_ERROR("RAND_bytes failed while making WebSocket masks");
      std::abort();
    }
    mask_pool_used_ = 0;
  }
  http::WsMask mask;
  std::copy_n(mask_pool_.begin() + static_cast<std::ptrdiff_t>(mask_pool_used_), 4, mask.begin());
  mask_pool_used_ += 4;
  return mask;
}

awaitable<IoResult> WsStream::WriteAll(std::span<const asio::const_buffer> bufs) {
  if (!co_await AwaitWriterTurn()) co_return IoResult{asio::error::operation_aborted, 0};
  WriterTurn turn(*this);
  if (close_queued_) {
    (void)co_await FlushControl();
    co_return IoResult{asio::error::broken_pipe, 0};
  }
  std::size_t total = 0;
  for (const asio::const_buffer& b : bufs) total += b.size();
  if (total == 0) {
    const std::error_code ec = co_await FlushControl();
    co_return IoResult{ec, 0};
  }

  // Walks the caller's buffers frame by frame: `take(size, fn)` passes the next `size` bytes to
  // fn(pointer, size) in as many pieces as they span.
  std::size_t index = 0;
  std::size_t offset = 0;
  auto take = [&](std::size_t size, auto&& fn) {
    while (size > 0) {
      const asio::const_buffer& b = bufs[index];
      const std::size_t piece = std::min(size, b.size() - offset);
      if (piece > 0) fn(static_cast<const std::byte*>(b.data()) + offset, piece);
      offset += piece;
      size -= piece;
      if (offset == b.size()) {
        ++index;
        offset = 0;
      }
    }
  };
  const std::size_t frames =
      (total + kWsMaxWriteFramePayloadSize - 1) / kWsMaxWriteFramePayloadSize;

  // Queued control frames go first in the same write; the reader may queue more meanwhile,
  // which FlushControl sends afterwards.
  Bytes control;
  control.swap(control_out_);
  gather_.clear();
  if (role_ == Role::kServer) {
    headers_.clear();
    headers_.reserve(frames * http::kWsMaxFrameHeaderSize);  // no reallocation: gather_ points in
    if (!control.empty()) gather_.push_back(asio::buffer(control));
    for (std::size_t left = total; left > 0;) {
      const std::size_t size = std::min(left, kWsMaxWriteFramePayloadSize);
      const std::size_t at = headers_.size();
      http::AppendWsFrameHeader(headers_, true, WsOpcode::kBinary, size, nullptr);
      gather_.push_back(asio::buffer(headers_.data() + at, headers_.size() - at));
      take(size, [&](const std::byte* p, std::size_t n) { gather_.push_back(asio::buffer(p, n)); });
      left -= size;
    }
  } else {
    scratch_.clear();
    scratch_.reserve(control.size() + total + frames * http::kWsMaxFrameHeaderSize);
    AppendBytes(scratch_, control);
    for (std::size_t left = total; left > 0;) {
      const std::size_t size = std::min(left, kWsMaxWriteFramePayloadSize);
      const http::WsMask mask = NextMask();
      http::AppendWsFrameHeader(scratch_, true, WsOpcode::kBinary, size, &mask);
      const std::size_t at = scratch_.size();
      take(size,
           [&](const std::byte* p, std::size_t n) { scratch_.insert(scratch_.end(), p, p + n); });
      http::ApplyWsMask(std::span(scratch_).subspan(at), mask, 0);
      left -= size;
    }
    gather_.push_back(asio::buffer(scratch_));
  }

  IoResult r = co_await inner_->WriteAll(gather_);
  if (scratch_.capacity() > kKeepScratchSize) Bytes().swap(scratch_);
  if (!r.ec) r.ec = co_await FlushControl();
  co_return IoResult{r.ec, r.ec ? 0 : total};
}

awaitable<void> WsStream::ShutdownGracefully() {
  if (!close_queued_ && !closed_) {
    QueueClose(http::kWsCloseNormal);
    if (co_await AwaitWriterTurn()) {
      WriterTurn turn(*this);
      (void)co_await FlushControl();
    }
  }
  co_await inner_->ShutdownGracefully();
}

void WsStream::Close() {
  closed_ = true;
  wake_.cancel();
  inner_->Close();
}

}  // namespace derpkit::net
