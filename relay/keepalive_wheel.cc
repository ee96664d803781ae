// KeepAliveWheel (see keepalive_wheel.h). Runs on its shard's thread.
#include "relay/keepalive_wheel.h"

#include <algorithm>

namespace derpkit::relay {

KeepAliveWheel::KeepAliveWheel(Clock::duration tick, Clock::duration span, Clock::time_point start)
    : tick_(std::max(tick, Clock::duration(1))), start_(start) {
  // One slot per tick of the span, and two more so that an entry due at the end of the span
  // never shares a slot with the one being taken.
  slots_.resize(static_cast<std::size_t>(std::max<Clock::rep>(span / tick_, 0)) + 2);
}

std::int64_t KeepAliveWheel::TickAtOrAfter(Clock::time_point t) const {
  const Clock::duration since = t - start_;
  if (since <= Clock::duration::zero()) return 0;
  return static_cast<std::int64_t>((since + tick_ - Clock::duration(1)) / tick_);
}

void KeepAliveWheel::Schedule(std::uint64_t conn_id, Clock::time_point due) {
  const std::int64_t tick = std::max(TickAtOrAfter(due), taken_through_ + 1);
  slots_[static_cast<std::size_t>(tick) % slots_.size()].push_back(conn_id);
  ++size_;
}

void KeepAliveWheel::TakeDue(Clock::time_point now, std::vector<std::uint64_t>& out) {
  if (now < start_) return;
  const std::int64_t now_tick = static_cast<std::int64_t>((now - start_) / tick_);
  // After a long stall every slot is due once: no need to go round more than one turn.
  const std::int64_t first =
      std::max(taken_through_ + 1, now_tick - static_cast<std::int64_t>(slots_.size()) + 1);
  for (std::int64_t tick = first; tick <= now_tick; ++tick) {
    auto& slot = slots_[static_cast<std::size_t>(tick) % slots_.size()];
    out.insert(out.end(), slot.begin(), slot.end());
    size_ -= slot.size();
    slot.clear();  // keeps its capacity: the next turn fills it about as much
  }
  taken_through_ = std::max(taken_through_, now_tick);
}

}  // namespace derpkit::relay
