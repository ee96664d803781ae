// RoutingClock: the time a shard stamps on the packets it queues in one pass (one read chunk of a
// connection, one drain of the shard's inbox), read once per pass instead of once per packet.
//
// Why: the stamp only feeds derp_queue_duration_seconds, and a per-packet clock read was ~1.8% of
// the relay's CPU at 2 Gbit/s of TLS on a VM (vDSO clock_gettime, ~60 ns a call there). A pass
// takes microseconds (at most a 64 KiB chunk of frames), so a packet's queue time now counts
// from when the relay read the chunk that held it: its time in the relay rather than in the
// queue alone, which is no less than before and never more by longer than the pass.
//
// Outside a pass (a fence's held packets released by a timer, say) Now() reads the clock.
//
// Thread affinity: the shard's thread; passes nest (the inner one restores the outer's time).
#pragma once

#include <chrono>
#include <optional>

namespace derpkit::relay {

class RoutingClock {
 public:
  using Clock = std::chrono::steady_clock;

  Clock::time_point Now() const { return pass_ ? *pass_ : Clock::now(); }

  // While it lives, Now() is the time it was made.
  class Pass {
   public:
    explicit Pass(RoutingClock& clock) : clock_(clock), outer_(clock.pass_) {
      clock_.pass_ = Clock::now();
    }
    ~Pass() { clock_.pass_ = outer_; }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

   private:
    RoutingClock& clock_;
    std::optional<Clock::time_point> outer_;
  };

 private:
  std::optional<Clock::time_point> pass_;
};

}  // namespace derpkit::relay
