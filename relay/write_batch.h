// A writer's batch: the packets, frame headers and buffers of one gather write to one client.
// Batches belong to the shard's pool and a connection holds one only while it writes, so an idle
// connection holds no write buffers and a busy one reuses the pool's grown vectors.
//
// Thread affinity: the owning shard.
#pragma once

#include <array>
#include <asio/buffer.hpp>
#include <cstddef>
#include <memory>
#include <vector>

#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"
#include "relay/packet.h"

namespace derpkit::relay {

struct WriteBatch {
  std::vector<Packet> packets;
  std::vector<std::array<std::byte, derp::kFrameHeaderSize + derp::kKeySize>> headers;
  std::vector<asio::const_buffer> iov;
  Bytes control;             // whole control frames (PeerGone, Pong, KeepAlive...)
  std::size_t iov_done = 0;  // buffers of iov written whole
  std::size_t payload_bytes = 0;
  bool restarting = false;  // carries the Restarting frame
  bool pong = false;        // carries a Pong

  void Clear() {
    packets.clear();
    headers.clear();
    iov.clear();
    control.clear();
    iov_done = 0;
    payload_bytes = 0;
    restarting = false;
    pong = false;
  }
};

// The shard's spare batches. Bounded, and a batch grown by a burst is shrunk before it is kept.
class WriteBatchPool {
 public:
  std::unique_ptr<WriteBatch> Take() {
    if (free_.empty()) return std::make_unique<WriteBatch>();
    std::unique_ptr<WriteBatch> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void Give(std::unique_ptr<WriteBatch> b) {
    if (b == nullptr || free_.size() >= kMaxFree) return;
    b->Clear();
    if (b->packets.capacity() > kKeptPackets) {
      b->packets.shrink_to_fit();
      b->headers.shrink_to_fit();
      b->iov.shrink_to_fit();
    }
    if (b->control.capacity() > 4096) b->control.shrink_to_fit();
    free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kMaxFree = 64;
  static constexpr std::size_t kKeptPackets = 256;
  std::vector<std::unique_ptr<WriteBatch>> free_;
};

}  // namespace derpkit::relay
