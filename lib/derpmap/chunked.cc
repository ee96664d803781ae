// The chunked transfer-coding decoder (see chunked.h for the grammar and the limits). Pure; one
// decoder per response, used by one thread.
#include "lib/derpmap/chunked.h"

#include <algorithm>
#include <cstdint>

namespace derpkit::derpmap {
namespace {

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Visible ASCII, SP and HTAB, and bytes >= 0x80 (obs-text): what a field value may hold.
bool IsTextByte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// RFC 9110 token characters, for trailer field names.
bool IsTokenChar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

std::string_view Describe(ChunkedError e) {
  switch (e) {
    case ChunkedError::kBadChunkSize:
      return "malformed chunk size";
    case ChunkedError::kBadChunkExtension:
      return "malformed chunk extension";
    case ChunkedError::kMissingCrlf:
      return "chunked body line not ended by CRLF";
    case ChunkedError::kLineTooLong:
      return "chunk size or trailer line too long";
    case ChunkedError::kBadTrailer:
      return "malformed trailer field";
    case ChunkedError::kBodyTooLarge:
      return "chunked body larger than the limit";
  }
  return "chunked body error";
}

std::optional<ChunkedError> ChunkedDecoder::EndOfLine() {
  const std::string_view line = line_;
  if (state_ == State::kTrailerLine) {
    if (line.empty()) {
      state_ = State::kDone;
      return std::nullopt;
    }
    if (++trailer_lines_ > kMaxTrailerLines) return ChunkedError::kBadTrailer;
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return ChunkedError::kBadTrailer;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar) ||
        !std::all_of(value.begin(), value.end(), IsTextByte)) {
      return ChunkedError::kBadTrailer;
    }
    return std::nullopt;
  }

  std::size_t digits = 0;
  while (digits < line.size() && IsHexDigit(line[digits])) ++digits;
  if (digits == 0 || digits > 16) return ChunkedError::kBadChunkSize;
  std::uint64_t size = 0;
  for (std::size_t i = 0; i < digits; ++i) size = (size << 4) | HexValue(line[i]);

  std::string_view ext = line.substr(digits);
  while (!ext.empty() && (ext.front() == ' ' || ext.front() == '\t')) ext.remove_prefix(1);
  if (!ext.empty() && ext.front() != ';') return ChunkedError::kBadChunkExtension;
  if (!std::all_of(ext.begin(), ext.end(), IsTextByte)) return ChunkedError::kBadChunkExtension;

  if (size == 0) {
    state_ = State::kTrailerLine;
    return std::nullopt;
  }
  // Refuse before reading the data: the peer announced more than we will hold.
  if (size > max_body_bytes_ - decoded_bytes_) return ChunkedError::kBodyTooLarge;
  data_left_ = static_cast<std::size_t>(size);
  state_ = State::kData;
  return std::nullopt;
}

Expected<std::size_t, ChunkedError> ChunkedDecoder::Feed(std::string_view in, std::string& body) {
  std::size_t i = 0;
  while (i < in.size()) {
    switch (state_) {
      case State::kFailed:
        return Unexpected(error_);
      case State::kDone:
        return i;
      case State::kData: {
        const std::size_t n = std::min(data_left_, in.size() - i);
        body.append(in.substr(i, n));
        decoded_bytes_ += n;
        data_left_ -= n;
        i += n;
        if (data_left_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (in[i++] != '\r') return Fail(ChunkedError::kMissingCrlf);
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (in[i++] != '\n') return Fail(ChunkedError::kMissingCrlf);
        state_ = State::kSizeLine;
        break;
      case State::kSizeLine:
      case State::kTrailerLine: {
        const char c = in[i++];
        if (line_has_cr_) {
          if (c != '\n') return Fail(ChunkedError::kMissingCrlf);
          if (auto err = EndOfLine()) return Fail(*err);
          line_.clear();
          line_has_cr_ = false;
        } else if (c == '\r') {
          line_has_cr_ = true;
        } else if (c == '\n') {
          return Fail(ChunkedError::kMissingCrlf);  // a bare LF
        } else {
          if (line_.size() == kMaxLineBytes) return Fail(ChunkedError::kLineTooLong);
          line_.push_back(c);
        }
        break;
      }
    }
  }
  if (state_ == State::kFailed) return Unexpected(error_);
  return i;
}

}  // namespace derpkit::derpmap
