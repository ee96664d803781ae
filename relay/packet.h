// A packet on its way through the relay: who sent it and the datagram itself. Move-only; the
// payload is copied exactly once, out of the sender's read buffer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/util/bytes.h"

namespace derpkit::relay {

struct Packet {
  derp::PublicKey src;
  Bytes payload;
  std::chrono::steady_clock::time_point enqueued;
  bool disco = false;

  Packet() = default;
  Packet(Packet&&) noexcept = default;
  Packet& operator=(Packet&&) noexcept = default;
  Packet(const Packet&) = delete;
  Packet& operator=(const Packet&) = delete;
};

// The connection a packet was read from, so that a congested receiver can ask it to pause.
struct PacketSource {
  int shard = -1;
  std::uint64_t conn_id = 0;  // 0: nobody to pause (mesh links, tests)
};

// A packet addressed to a key, crossing from one shard to another.
struct Delivery {
  derp::PublicKey dst;
  std::uint64_t dst_id = 0;  // connection id, or mesh link id when `mesh`
  bool mesh = false;
  // Sent on by the shard the connection moved away from (Shard::NoteMovedAway), not routed here.
  bool forwarded = false;
  // No packet: a move's fence from shard from.shard (relay/move_fences.h).
  bool fence = false;
  PacketSource from;
  Packet packet;
};

// A small per-shard free list of payload buffers, so that steady traffic does not allocate.
// Buffers keep their capacity; the list is bounded so a burst does not pin memory forever.
class BufferPool {
 public:
  Bytes Take(std::size_t size) {
    Bytes b;
    if (!free_.empty()) {
      b = std::move(free_.back());
      free_.pop_back();
    }
    b.resize(size);
    return b;
  }
  void Give(Bytes&& b) {
    if (free_.size() < kMaxFree && b.capacity() <= kMaxKeptCapacity) free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kMaxFree = 1024;
  static constexpr std::size_t kMaxKeptCapacity = 2048;
  std::vector<Bytes> free_;
};

}  // namespace derpkit::relay
