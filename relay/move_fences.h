// MoveFences: keeps a moved connection's packets in order while the shards' routes catch up with
// the move (relay/client_conn.h, "Moving").
//
// Until a shard applies the moved route it sends the connection's packets to the old shard,
// which forwards them; afterwards it sends them straight to the new one. A packet sent the old
// way could then arrive after a later one sent the new way. So every shard, when it applies the
// moved route, sends a fence the old way, behind what it sent there; the old shard forwards the
// fence behind those packets; and the new shard holds the packets that came the new way from a
// shard until that shard's fence is back, then delivers them. The old shard's own packets need
// no fence: they go both ways through its one mailbox to the new shard. A fence that never
// comes (a shard whose route had changed otherwise meanwhile) is given up after kFenceTimeout,
// and what was held is delivered then. Held packets count for back-pressure as a queue does: a
// sender whose packets wait here past a sixteenth of --send-queue-bytes is paused until they go
// out (else it would fill the held list unchecked and the connection's queue would drop the
// surplus once they are let go).
//
// Thread affinity: the new shard's thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <unordered_map>
#include <utility>
#include <vector>

#include "relay/packet.h"

namespace derpkit::relay {

class MoveFences {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kFenceTimeout = std::chrono::seconds(1);

  // Connection `conn_id` arrived from `old_shard`: a fence is awaited from every other shard.
  void Expect(std::uint64_t conn_id, int shard_count, int old_shard, Clock::time_point now) {
    Entry& e = entries_[conn_id];
    e.pending.assign(static_cast<std::size_t>(shard_count), true);
    e.pending[static_cast<std::size_t>(old_shard)] = false;
    e.deadline = now + kFenceTimeout;
  }

  // Nothing is awaited anywhere: the one test on the delivery path in steady state.
  bool empty() const { return entries_.empty(); }

  // Whether a delivery to `conn_id` from shard `origin` must wait for origin's fence (packets
  // forwarded by the old shard never wait: they are the ones the fence follows).
  bool MustHold(std::uint64_t conn_id, int origin, bool forwarded) const {
    if (forwarded || origin < 0) return false;
    auto it = entries_.find(conn_id);
    return it != entries_.end() && static_cast<std::size_t>(origin) < it->second.pending.size() &&
           it->second.pending[static_cast<std::size_t>(origin)];
  }
  // Keeps `d` until its origin's fence is back. True when its sender should pause now: more
  // than `pause_above` bytes are held for the connection and the sender is not paused yet (it
  // is resumed when the held packets go out: `resume` of FenceArrived and Expire).
  bool Hold(Delivery&& d, std::size_t pause_above) {
    Entry& e = entries_[d.dst_id];
    e.held_bytes += d.packet.payload.size();
    const PacketSource from = d.from;
    e.held.push_back(std::move(d));
    if (from.conn_id == 0 || e.held_bytes <= pause_above) return false;
    for (const PacketSource& p : e.paused) {
      if (p.conn_id == from.conn_id && p.shard == from.shard) return false;
    }
    e.paused.push_back(from);
    return true;
  }

  // Whether a fence for `conn_id` is awaited here (else the fence is on its way out: forward).
  bool Awaits(std::uint64_t conn_id) const { return entries_.contains(conn_id); }

  // origin's fence for `conn_id` came back: what origin sent the new way goes out, in order.
  // Once no fence is awaited, the senders it paused go into `resume`.
  void FenceArrived(std::uint64_t conn_id, int origin, std::vector<Delivery>& release,
                    std::vector<PacketSource>& resume) {
    auto it = entries_.find(conn_id);
    if (it == entries_.end() || origin < 0 ||
        static_cast<std::size_t>(origin) >= it->second.pending.size()) {
      return;
    }
    Entry& e = it->second;
    e.pending[static_cast<std::size_t>(origin)] = false;
    auto from_origin = std::stable_partition(
        e.held.begin(), e.held.end(), [&](const Delivery& d) { return d.from.shard != origin; });
    for (auto d = from_origin; d != e.held.end(); ++d) e.held_bytes -= d->packet.payload.size();
    std::move(from_origin, e.held.end(), std::back_inserter(release));
    e.held.erase(from_origin, e.held.end());
    if (std::none_of(e.pending.begin(), e.pending.end(), [](bool p) { return p; })) {
      resume.insert(resume.end(), e.paused.begin(), e.paused.end());
      entries_.erase(it);
    }
  }

  // Gives up the fences not back by their deadline: everything they held goes out, and the
  // senders they paused go on.
  void Expire(Clock::time_point now, std::vector<Delivery>& release,
              std::vector<PacketSource>& resume) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (now < it->second.deadline) {
        ++it;
        continue;
      }
      for (Delivery& d : it->second.held) release.push_back(std::move(d));
      resume.insert(resume.end(), it->second.paused.begin(), it->second.paused.end());
      it = entries_.erase(it);
    }
  }

 private:
  struct Entry {
    std::vector<bool> pending;  // by shard: its fence has not come back yet
    std::vector<Delivery> held;
    std::size_t held_bytes = 0;
    std::vector<PacketSource> paused;  // senders paused for what is held
    Clock::time_point deadline;
  };
  std::unordered_map<std::uint64_t, Entry> entries_;
};

}  // namespace derpkit::relay
