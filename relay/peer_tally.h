// PeerTally: which peer one direction of a connection's traffic mostly went to (or came from),
// judged over windows of kWindow packets, for the decision to move a connection to its peer's
// shard (relay/conn_runner.h).
//
// The first packet of a window names a candidate and the rest of the window is counted against
// it: exact, a compare and two increments per packet, and a clock read once per window. A window
// whose first packet was not the dominant peer decides nothing; the next one will. The
// candidate's shard is the one its last packet went to (it may have moved within the window).
//
// Thread affinity: the connection's shard thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace derpkit::relay {

// A connection somewhere in the relay: the shard that owns it and its id.
struct PeerRef {
  int shard = -1;
  std::uint64_t conn_id = 0;
};

class PeerTally {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::uint16_t kWindow = 256;
  // A window's candidate dominates with three quarters of it.
  static constexpr std::uint16_t kDominantShare = kWindow * 3 / 4;

  // Counts one packet to or from `peer`. True when it completed a window.
  bool Count(int shard, std::uint64_t conn_id) {
    if (seen_ == 0) {
      candidate_ = conn_id;
      candidate_shard_ = static_cast<std::int16_t>(shard);
      matches_ = 0;
    }
    if (conn_id == candidate_) {
      ++matches_;
      candidate_shard_ = static_cast<std::int16_t>(shard);
    }
    if (++seen_ < kWindow) return false;
    seen_ = 0;
    if (matches_ >= kDominantShare) {
      dominant_ = candidate_;
      dominant_shard_ = candidate_shard_;
      completed_at_ = Clock::now();
    } else {
      dominant_ = 0;
    }
    return true;
  }

  // The peer that had three quarters of the last window, if that window ended within `fresh`.
  std::optional<PeerRef> Dominant(Clock::time_point now, Clock::duration fresh) const {
    if (dominant_ == 0 || now - completed_at_ > fresh) return std::nullopt;
    return PeerRef{dominant_shard_, dominant_};
  }

  // Forgets everything (after a move: the peers' shards have changed).
  void Reset() { *this = PeerTally{}; }

 private:
  // 32 bytes, two per connection.
  std::uint64_t candidate_ = 0;
  std::uint64_t dominant_ = 0;  // 0: no peer dominated the last window
  Clock::time_point completed_at_{};
  std::int16_t candidate_shard_ = -1;
  std::int16_t dominant_shard_ = -1;
  std::uint16_t seen_ = 0;
  std::uint16_t matches_ = 0;
};

}  // namespace derpkit::relay
