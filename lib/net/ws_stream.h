// DERP over WebSocket (derp-protocol.md §3.4): a Stream that carries its bytes in RFC 6455
// binary messages over another Stream (TCP or TLS), after the HTTP upgrade is done.
//
// Reading: the payloads of binary and continuation frames form one byte stream; message and
// frame boundaries carry no meaning. Payload bytes are streamed straight into the caller's
// buffer as they arrive (unmasked in place), so memory stays bounded whatever the frame size:
// the stream keeps a 16 KiB read buffer for headers, control frames and small frames, and large
// payloads bypass it. Ping is answered with Pong, Pong is ignored. A Close is answered with a
// Close (echoing its status code) and then reads return asio::error::eof. Text frames and
// protocol violations make ReadSome return std::errc::protocol_error (sticky); the stream then
// tries to tell the peer with a Close (1003 for text, 1009 for an oversized frame, 1002 otherwise)
// and the caller should Close(). The inner stream's errors, including a bare TCP EOF without a
// Close frame (what Tailscale's Go client does on exit), are returned unchanged.
//
// Writing: each WriteAll sends its buffers as one binary frame with FIN set (split into several
// frames only beyond kWsMaxWriteFramePayloadSize, which DERP never reaches in practice; any
// reader must accept that, since boundaries mean nothing). The server role writes unmasked and
// gathers the caller's buffers without copying; the client role must mask, so it copies into a
// scratch buffer with a fresh random mask per frame.
//
// Control frames the reader owes (Pong, Close) never interleave with a data frame: if a WriteAll
// is in flight, the reader hands them over and that WriteAll sends them right after its data.
//
// Thread affinity: like every Stream, one io_context thread. One ReadSome and one WriteAll may be
// pending at the same time (a ReadLoop and a WriteLoop), not two of the same kind.
#pragma once

// <asio.hpp> comes before any standard header, as in stream.h: Asio picks its allocator for
// coroutine frames (aligned_alloc or operator new) by whether libstdc++'s config was already
// seen, and every translation unit that runs coroutines must pick the same one.
#include <asio.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "lib/http/websocket.h"
#include "lib/net/stream.h"
#include "lib/util/bytes.h"

namespace derpkit::net {

// The largest frame payload WsStream accepts. DERP needs 256 KiB for a ClientInfo and 64 KiB for
// a packet; payloads are streamed, so this bounds nonsense rather than memory.
inline constexpr std::uint64_t kWsMaxReadFramePayloadSize = (1u << 20) + (64u << 10);
// WriteAll splits larger writes into frames of at most this many payload bytes, so that a
// WsStream peer (with the limit above) accepts everything a WsStream writes.
inline constexpr std::size_t kWsMaxWriteFramePayloadSize = 1u << 20;

class WsStream final : public Stream {
 public:
  enum class Role {
    kServer,  // reads masked frames, writes unmasked ones
    kClient,  // reads unmasked frames, writes masked ones (random masks)
  };

  // Takes over `inner` after the HTTP upgrade (101 sent or received). `read_ahead` holds bytes
  // already read from `inner` past the end of the HTTP head: they are the start of the frame
  // stream and are consumed before anything is read from `inner`.
  WsStream(std::unique_ptr<Stream> inner, Role role, Bytes read_ahead = {});
  ~WsStream() override;

  // Returns payload bytes of binary data frames (at least one, unless an error). Errors:
  // asio::error::eof after a Close frame (answered) or when `inner` hit EOF; protocol_error for
  // a text frame or a framing violation (see protocol_error()); anything `inner` returns.
  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  // Sends all of `bufs` as one binary frame. On success `bytes` is the payload size (the sum of
  // the buffer sizes). Fails with asio::error::broken_pipe once a Close has been sent or queued.
  // An empty write sends nothing.
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override;
  // Sends a Close (1000) if none was sent yet, then shuts `inner` down gracefully (TLS
  // close_notify). Does not wait for the peer's Close: a ReadSome still running sees it and
  // returns eof. Bounded by the caller, like every Stream's.
  awaitable<void> ShutdownGracefully() override;
  void Close() override;
  asio::ip::tcp::socket& tcp() override { return inner_->tcp(); }
  bool is_tls() const override { return inner_->is_tls(); }
  const char* kind() const override { return "websocket"; }

  // Why ReadSome returned protocol_error, for logs; empty while there was none.
  std::string_view protocol_error() const { return protocol_error_; }
  // The status code of the peer's Close frame (http::kWsCloseNoStatus for an empty one), once
  // one arrived.
  std::optional<std::uint16_t> peer_close_code() const { return peer_close_code_; }

  // Writes `bytes` to the inner stream as they are, bypassing the framing (tests send malformed
  // frames with it). Not while a WriteAll is in flight.
  awaitable<std::error_code> WriteRawForTest(ByteSpan bytes) {
    const asio::const_buffer b(bytes.data(), bytes.size());
    auto r = co_await inner_->WriteAll(std::span(&b, 1));
    co_return r.ec;
  }

 private:
  class WriterTurn;

  std::size_t buffered() const { return rend_ - rpos_; }
  ByteSpan buffered_bytes() const { return ByteSpan(rbuf_).subspan(rpos_, buffered()); }
  awaitable<std::error_code> Fill();
  awaitable<IoResult> Fail(std::uint16_t close_code, std::string_view why);
  awaitable<std::error_code> HandleControl(const http::WsFrameHeader& h);
  // Queues a control frame (masked in the client role) for the next write.
  void QueueControl(http::WsOpcode opcode, ByteSpan payload);
  void QueueClose(std::uint16_t code);
  // Waits until no write is in flight; false when the stream was closed or the wait cancelled.
  awaitable<bool> AwaitWriterTurn();
  // Writes the queued control frames; the caller holds the writer's turn.
  awaitable<std::error_code> FlushControl();
  http::WsMask NextMask();

  std::unique_ptr<Stream> inner_;
  const Role role_;

  // Read side. rbuf_[rpos_, rend_) holds bytes read from inner_ but not consumed yet.
  Bytes rbuf_;
  std::size_t rpos_ = 0;
  std::size_t rend_ = 0;
  std::uint64_t payload_remaining_ = 0;  // of the data frame being read
  std::uint64_t payload_offset_ = 0;     // position within it, for unmasking
  http::WsMask read_mask_{};
  bool read_masked_ = false;
  bool in_message_ = false;  // a data message began without FIN: continuations are expected
  bool eof_ = false;         // a Close arrived
  std::string_view protocol_error_;
  std::optional<std::uint16_t> peer_close_code_;

  // Write side. writing_ is the turn to write to inner_; wake_ (expiring never) is cancelled to
  // wake a coroutine waiting for the turn.
  bool writing_ = false;
  bool close_queued_ = false;
  bool closed_ = false;
  asio::steady_timer wake_;
  Bytes control_out_;  // encoded Pong/Close frames not written yet
  Bytes headers_;      // frame headers of the write in flight (server role)
  Bytes scratch_;      // the whole masked write in flight (client role)
  std::vector<asio::const_buffer> gather_;
  std::array<std::byte, 256> mask_pool_{};  // random bytes, 4 per mask
  std::size_t mask_pool_used_ = sizeof(mask_pool_);
};

}  // namespace derpkit::net
