// Walking a gather list (the buffers one WriteAll hands over), written once for every stream and
// the relay's writer: copying it into records, and dropping what a partial write took.
// Empty buffers may have no storage at all and are skipped, never dereferenced.
//
// Thread affinity: none (plain data).
#pragma once

#include <algorithm>
#include <asio/buffer.hpp>
#include <cstddef>
#include <cstring>
#include <span>

namespace derpkit::net {

// A read position in a gather list.
class GatherCursor {
 public:
  explicit GatherCursor(std::span<const asio::const_buffer> bufs) : bufs_(bufs) { SkipEmpty(); }
  bool done() const { return index_ == bufs_.size(); }
  // The bytes left in the current buffer.
  std::span<const std::byte> Contiguous() const {
    if (done()) return {};
    return std::span(static_cast<const std::byte*>(bufs_[index_].data()) + offset_,
                     bufs_[index_].size() - offset_);
  }
  void Skip(std::size_t n) {
    while (n > 0 && !done()) {
      const std::size_t here = std::min(n, bufs_[index_].size() - offset_);
      offset_ += here;
      n -= here;
      SkipEmpty();
    }
  }
  // Copies up to dst.size() bytes, across buffers; returns how many.
  std::size_t CopyTo(std::span<std::byte> dst) {
    std::size_t filled = 0;
    while (filled < dst.size() && !done()) {
      const std::span<const std::byte> here = Contiguous();
      const std::size_t take = std::min(dst.size() - filled, here.size());
      std::memcpy(dst.data() + filled, here.data(), take);
      filled += take;
      Skip(take);
    }
    return filled;
  }

 private:
  void SkipEmpty() {
    while (index_ < bufs_.size() && offset_ == bufs_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }
  std::span<const asio::const_buffer> bufs_;
  std::size_t index_ = 0;
  std::size_t offset_ = 0;
};

// Drops the first `n` bytes of the gather list bufs[first ..] after a partial write: whole
// buffers are passed (first advances), a partly written one is shortened in place.
inline void ConsumeWritten(std::span<asio::const_buffer> bufs, std::size_t& first, std::size_t n) {
  while (first < bufs.size() && (n > 0 || bufs[first].size() == 0)) {
    const std::size_t here = std::min(n, bufs[first].size());
    bufs[first] += here;
    n -= here;
    if (bufs[first].size() == 0) ++first;
  }
}

}  // namespace derpkit::net
