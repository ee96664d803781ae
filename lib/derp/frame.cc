#include "lib/derp/frame.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace derpkit::derp {

std::string_view Describe(FrameError e) {
  switch (e) {
    case FrameError::kShort:
      return "fewer than 5 bytes available for a frame header";
    case FrameError::kTooLarge:
      return "frame length exceeds the limit for this connection";
  }
  return "unknown frame error";
}

Expected<FrameHeader, FrameError> ParseFrameHeader(ByteSpan in, std::uint32_t max_length) {
  if (in.size() < kFrameHeaderSize) return Unexpected{FrameError::kShort};
  const std::uint32_t length = LoadBigEndian32(in.subspan<1, 4>());
  if (length > max_length) return Unexpected{FrameError::kTooLarge};
  return FrameHeader{static_cast<FrameType>(in[0]), length};
}

void AppendFrameHeader(Bytes& out, FrameType type, std::uint32_t length) {
  out.push_back(static_cast<std::byte>(type));
  AppendBigEndian32(out, length);
}

void StoreFrameHeader(std::span<std::byte, kFrameHeaderSize> out, FrameType type,
                      std::uint32_t length) {
  out[0] = static_cast<std::byte>(type);
  StoreBigEndian32(out.subspan<1, 4>(), length);
}

FrameReader::FrameReader(std::uint32_t max_length) : max_length_(max_length) {}

std::span<std::byte> FrameReader::PrepareWrite(std::size_t at_least) {
  const std::size_t limit = kFrameHeaderSize + std::size_t{max_length_};
  if (start_ == end_) start_ = end_ = 0;  // empty: rewinding is free
  const std::size_t want = std::min(at_least, limit - buffered());
  if (buffer_.size() - end_ < want) {
    // Compact only when the tail is too small, so a large frame arriving in small reads is not
    // moved on every read.
    if (start_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + start_, buffered());
      end_ -= start_;
      start_ = 0;
    }
    if (buffer_.size() - end_ < want) {
      // Grow geometrically (amortised), never past the limit.
      buffer_.resize(std::min(limit, std::max(end_ + want, 2 * buffer_.size())));
    }
  }
  // buffer_.size() - start_ <= limit, so the returned room never lets buffered() pass the limit.
  return std::span<std::byte>(buffer_).subspan(end_);
}

void FrameReader::CommitWrite(std::size_t n) {
  assert(n <= buffer_.size() - end_);
  end_ += n;
}

Expected<FrameReader::Frame, FrameReader::Status> FrameReader::Next() {
  const ByteSpan data = ByteSpan(buffer_).subspan(start_, buffered());
  const auto header = ParseFrameHeader(data, max_length_);
  if (!header) {
    return Unexpected{header.error() == FrameError::kShort ? Status::kNeedMore : Status::kTooLarge};
  }
  const std::size_t frame_size = kFrameHeaderSize + header->length;
  if (data.size() < frame_size) return Unexpected{Status::kNeedMore};
  start_ += frame_size;
  return Frame{header->type, data.subspan(kFrameHeaderSize, header->length)};
}

}  // namespace derpkit::derp
