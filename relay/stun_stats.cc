// StunStats: the STUN responder's counters (see stun_stats.h for the threading).
#include "relay/stun_stats.h"

namespace derpkit::relay {

void StunStats::ObserveResponses(std::chrono::nanoseconds latency, std::uint64_t n) {
  if (n == 0) return;
  const double seconds = std::chrono::duration<double>(latency).count();
  std::size_t i = 0;
  while (i < kStunResponseBounds.size() && seconds > kStunResponseBounds[i]) ++i;
  response_buckets_[i].fetch_add(n, std::memory_order_relaxed);
  response_nanoseconds_sum_.fetch_add(static_cast<std::uint64_t>(latency.count()) * n,
                                      std::memory_order_relaxed);
}

StunStatsSnapshot StunStats::Snapshot() const {
  StunStatsSnapshot s;
  for (std::size_t i = 0; i < s.response_buckets.size(); ++i) {
    s.response_buckets[i] = response_buckets_[i].load(std::memory_order_relaxed);
  }
  s.response_seconds_sum =
      static_cast<double>(response_nanoseconds_sum_.load(std::memory_order_relaxed)) / 1e9;
  for (std::size_t i = 0; i < kStunDispositionCount; ++i) {
    s.requests[i] = requests_[i].load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < kStunAddrFamilyCount; ++i) {
    s.addr_family[i] = addr_family_[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace derpkit::relay
