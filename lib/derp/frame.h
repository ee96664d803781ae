// DERP framing (protocol.h, "Framing"): the 5-byte header, and an incremental reader that cuts a
// byte stream into frames without ever sizing a buffer from an unchecked peer length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::derp {

struct FrameHeader {
  FrameType type;        // may be a type this build doesn't know: skipping is caller policy
  std::uint32_t length;  // payload bytes that follow the header
};

enum class FrameError {
  kShort,     // fewer than kFrameHeaderSize bytes: read more, then call again
  kTooLarge,  // length exceeds the caller's limit: close the connection
};
std::string_view Describe(FrameError e);

// Parses the frame header at the front of `in`. Never allocates, never consumes input; the
// payload need not be present yet.
Expected<FrameHeader, FrameError> ParseFrameHeader(ByteSpan in, std::uint32_t max_length);

// Appends a 5-byte frame header to `out`.
void AppendFrameHeader(Bytes& out, FrameType type, std::uint32_t length);

// Writes a 5-byte frame header into `out` (for gather-writes with a header array per frame).
void StoreFrameHeader(std::span<std::byte, kFrameHeaderSize> out, FrameType type,
                      std::uint32_t length);

// Cuts a byte stream into frames, for clients, tools and tests. Owns its buffer, which never
// holds more than kFrameHeaderSize + max_length bytes: a peer's length is checked against
// max_length before any of its payload is buffered. Not thread-safe; one owner.
//
// Usage:
//   auto room = reader.PrepareWrite(4096);   // read into room, then:
//   reader.CommitWrite(n);
//   while (auto frame = reader.Next()) Handle(frame->type, frame->payload);
//   // frame.error() == kNeedMore: read again; kTooLarge: close the connection.
class FrameReader {
 public:
  // `max_length` is the largest payload accepted for any frame type.
  explicit FrameReader(std::uint32_t max_length);

  // Returns writable space after the buffered bytes, compacting away consumed frames first.
  // The span has at least min(at_least, kFrameHeaderSize + max_length - buffered()) bytes and
  // never more than that limit allows; it is empty only when the buffer is full, which happens
  // only when Next() has a complete frame (or kTooLarge) to return. Invalidates earlier spans
  // and frame payloads.
  std::span<std::byte> PrepareWrite(std::size_t at_least);

  // Marks `n` bytes of the last PrepareWrite() span as received (asserted n <= its size).
  void CommitWrite(std::size_t n);

  struct Frame {
    FrameType type;
    ByteSpan payload;  // aliases the reader's buffer; valid until the next PrepareWrite/Next
  };
  enum class Status {
    kNeedMore,  // no complete frame is buffered: read more
    kTooLarge,  // the next frame's length exceeds max_length: the stream cannot continue
  };

  // Returns the next complete buffered frame and consumes it. Call repeatedly to drain every
  // complete frame. kTooLarge is sticky: the offending header stays buffered.
  Expected<Frame, Status> Next();

  // Bytes received but not yet returned by Next(), including a partial frame.
  std::size_t buffered() const { return end_ - start_; }

 private:
  std::uint32_t max_length_;
  Bytes buffer_;           // size() is the allocated room, at most kFrameHeaderSize + max_length_
  std::size_t start_ = 0;  // first byte not yet returned by Next()
  std::size_t end_ = 0;    // one past the last committed byte
};

}  // namespace derpkit::derp
