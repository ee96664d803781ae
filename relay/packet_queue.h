// A client's send queue: packets in arrival order, counted in packets and payload bytes. Slots
// grow by doubling while a burst lasts and are given back once the queue empties, so an idle
// connection holds no slots (memory only while used). The caller decides what "full" means.
//
// Thread affinity: the owning connection's shard.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "relay/packet.h"

namespace derpkit::relay {

class PacketQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return bytes_; }

  void Push(Packet&& p) {
    if (size_ == slots_.size()) Grow();
    bytes_ += p.payload.size();
    slots_[(head_ + size_) % slots_.size()] = std::move(p);
    ++size_;
  }

  Packet Pop() {
    Packet p = std::move(slots_[head_]);
    head_ = (head_ + 1) % slots_.size();
    --size_;
    bytes_ -= p.payload.size();
    return p;
  }

  // Gives back the slots of an empty queue, unless they are few (a client that gets a packet now
  // and then keeps its handful instead of allocating for each).
  void ReleaseIfEmpty() {
    if (size_ == 0 && slots_.size() > kKeptSlots) {
      std::vector<Packet>().swap(slots_);
      head_ = 0;
    }
  }

 private:
  static constexpr std::size_t kKeptSlots = 8;

  void Grow() {
    std::vector<Packet> bigger(slots_.empty() ? 4 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    }
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<Packet> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace derpkit::relay
