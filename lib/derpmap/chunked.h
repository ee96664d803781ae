// A strict, bounded decoder for HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), for reading
// tailscaled's LocalAPI answers: Go's net/http server chunks any body it has not buffered whole
// (more than about 2 KiB), which a DERP map usually is.
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   last-chunk   = 1*("0") [ chunk-ext ] CRLF
//
// Strict where Go is lenient: lines end in CRLF (no bare LF), chunk sizes are 1..16 hex digits,
// extensions are accepted but must start with ';' and hold no control characters, trailer lines
// must be "name: value". Bounded: the decoded body may not exceed max_body_bytes (refused as soon
// as a chunk header announces more), and a size or trailer line may not exceed kMaxLineBytes.
//
// Pure: bytes in, bytes out, no I/O. Not thread-safe: one decoder per response, one thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit::derpmap {

enum class ChunkedError {
  kBadChunkSize,       // the size line does not start with 1..16 hex digits
  kBadChunkExtension,  // something other than ";ext" after the size, or a control character
  kMissingCrlf,        // a line or chunk data not followed by CRLF (a bare LF included)
  kLineTooLong,        // a size or trailer line longer than kMaxLineBytes
  kBadTrailer,         // a trailer line that is not "name: value", or too many of them
  kBodyTooLarge,       // the decoded body would exceed max_body_bytes
};

// Returns a one-line description of `e`.
std::string_view Describe(ChunkedError e);

class ChunkedDecoder {
 public:
  static constexpr std::size_t kMaxLineBytes = 4096;
  static constexpr std::size_t kMaxTrailerLines = 64;

  explicit ChunkedDecoder(std::size_t max_body_bytes) : max_body_bytes_(max_body_bytes) {}

  // Decodes the next bytes of the body (any split is fine), appending chunk data to `body`.
  // Returns how many bytes of `in` belong to the chunked body: all of them, unless the body ended
  // inside `in` (whatever follows is not ours). After an error the decoder stays failed.
  Expected<std::size_t, ChunkedError> Feed(std::string_view in, std::string& body);

  // True once the last chunk and the trailer section have been read.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kSizeLine, kData, kDataCr, kDataLf, kTrailerLine, kDone, kFailed };

  Expected<std::size_t, ChunkedError> Fail(ChunkedError e) {
    state_ = State::kFailed;
    error_ = e;
    return Unexpected(e);
  }
  // Handles one complete line (CRLF removed) in kSizeLine or kTrailerLine.
  std::optional<ChunkedError> EndOfLine();

  std::size_t max_body_bytes_;
  State state_ = State::kSizeLine;
  ChunkedError error_ = ChunkedError::kBadChunkSize;
  std::string line_;               // the line being collected, without its CRLF
  bool line_has_cr_ = false;       // line_ ended with CR: the next byte must be LF
  std::size_t data_left_ = 0;      // chunk-data bytes still to come in this chunk
  std::size_t decoded_bytes_ = 0;  // chunk data delivered so far, against max_body_bytes_
  std::size_t trailer_lines_ = 0;
};

}  // namespace derpkit::derpmap
