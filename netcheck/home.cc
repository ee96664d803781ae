// Home region selection with hysteresis (see home.h). Pure; no thread affinity.
#include "netcheck/home.h"

#include <algorithm>

namespace derpkit::netcheck {
namespace {

using std::chrono::nanoseconds;

nanoseconds Scored(nanoseconds d, RegionId region, const std::optional<derpmap::HomeParams>& p) {
  if (!p) return d;
  auto it = p->region_score.find(region);
  if (it == p->region_score.end() || !(it->second > 0)) return d;  // missing or ≤ 0: ignored
  return nanoseconds(static_cast<nanoseconds::rep>(static_cast<double>(d.count()) * it->second));
}

}  // namespace

RegionId HomeSelector::Choose(TimePoint now, const LatencyMap& latency, RegionId previous_home,
                              const std::optional<derpmap::HomeParams>& params,
                              const std::set<RegionId>& never_home) {
  history_.emplace_back(now, latency);
  std::erase_if(history_, [&](const auto& entry) { return now - entry.first > kHomeHistoryAge; });

  LatencyMap best_recent;
  for (const auto& [when, report] : history_) {
    for (const auto& [region, d] : report) {
      auto [it, inserted] = best_recent.emplace(region, d);
      if (!inserted && d < it->second) it->second = d;
    }
  }

  RegionId chosen = 0;
  nanoseconds best_any{0};
  nanoseconds old_home_current{0};
  for (const auto& [region, d] : latency) {  // ascending ids: the lowest id wins a tie
    if (never_home.contains(region)) continue;
    if (region == previous_home) old_home_current = Scored(d, region, params);
    const nanoseconds best = Scored(best_recent[region], region, params);
    if (chosen == 0 || best < best_any) {
      best_any = best;
      chosen = region;
    }
  }

  const bool changing = previous_home != 0 && chosen != previous_home;
  if (changing && old_home_current.count() != 0) {
    // Both conditions as Tailscale writes them, including Go's integer division order.
    const bool small_gain = old_home_current - best_any < kHomeAbsoluteDiff;
    const bool similar = best_any > old_home_current / 3 * 2;
    if (small_gain || similar) return previous_home;
  }
  return chosen;
}

}  // namespace derpkit::netcheck
