// Where talking pairs live when the relay has several shards (--workers above 1): gathered on
// one thread while the threads are lightly loaded, spread once one is busy.
//
// Why: a packet between two shards costs a hand-over and a wake-up of the other thread. While
// one thread carries the whole load with room to spare, a second thread only adds wake-ups (on a
// small machine it also takes a core from everything else), so pairs gather on the lower-index
// shard. Once a thread is busy, pairs spread so that more cores carry the load.
//
// Busy is a shard thread's CPU time per second of wall time, in thousandths of a core, as its
// ticker measures it (relay/thread_cpu_clock.h): each period's figure averaged half and half with
// the figure before, so one period's scheduling noise moves it only half way. Pure functions of
// what the shards report: no thread affinity.
#pragma once

#include <span>

namespace derpkit::relay {

// One shard as the decisions see it.
struct ShardLoadView {
  int index = 0;
  int connections = 0;    // Shard::load(): counting moves decided as done
  int busy_permille = 0;  // thousandths of a core, over the last ticker periods
};

struct PlacementPolicy {
  // A pair split across two shards meets on the lower-index one while the two threads together
  // use less than this; above it, on the less busy one.
  int gather_below_permille = 700;
  // A shard busier than this hands a pair that talks within it to the least busy shard, when that
  // one is less busy by more than a third of this (spreading).
  int spread_above_permille = 850;

  // Busy figures closer than this count as equal (then connections decide): two threads'
  // figures over one period differ by this much without any change in load.
  static constexpr int kSameBusyPermille = 150;
};

// The shard a pair with one member on `a` and the other on `b` should meet on: a.index or
// b.index. Both members decide with the same figures, so they choose the same shard. Gathering:
// the lower index. Balancing: the less busy shard; when about as busy, the one with fewer
// connections (ties: the lower index).
int MeetingShard(const PlacementPolicy& policy, const ShardLoadView& a, const ShardLoadView& b);

// Whether shard `here` is busy enough to spread pairs to other shards (busier than
// spread_above); otherwise ShedTarget can only gather.
bool Spreading(const PlacementPolicy& policy, const ShardLoadView& here);

// Where shard `here` should hand one pair that talks within it, or -1 for nowhere.
// Spreading: `here` is busier than spread_above and another shard is busier by less than a third
// of that (the least busy). Gathering: `here` is not shard 0 and it and a lower-index shard
// together use less than gather_below (the lowest such). Neither undoes the other: a move keeps
// the two figures' sum, which is above spread_above after a spread and below gather_below
// (at most spread_above) after a gather. `all` holds every shard, `here` included, indexed by
// shard.
int ShedTarget(const PlacementPolicy& policy, const ShardLoadView& here,
               std::span<const ShardLoadView> all);

}  // namespace derpkit::relay
