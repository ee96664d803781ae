// Choosing the preferred ("home") DERP region the way Tailscale's netcheck does
// (tools-reference.md §4.5, addReportHistoryAndSetPreferredDERP):
//
//   1. Remember each report's region latencies for 5 min 5 s.
//   2. For every region measured in the current report, take its best latency over the remembered
//      reports, times the map's HomeParams.RegionScore for it (when > 0); the smallest wins.
//   3. Hysteresis: if that is not the previous home and the previous home answered in this report,
//      keep the previous home unless the winner is at least 10 ms better *and* at least a third
//      faster (winner ≤ 2/3 of the old home's current, scored latency).
//
// The CLI has no DERP connection, so Tailscale's "heard a DERP frame from the old home recently"
// signal never applies here. Ties go to the lowest region id (Go's map order is random).
//
// Pure: times come in as values. Thread affinity: one selector per Runner, on its thread.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

inline constexpr std::chrono::seconds kHomeHistoryAge{5 * 60 + 5};
inline constexpr std::chrono::milliseconds kHomeAbsoluteDiff{10};

class HomeSelector {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Records `latency` (this report's RegionLatency, taken at `now`), forgets reports older than
  // kHomeHistoryAge, and returns the home region for this report (0 when nothing was measured).
  // `previous_home` is the last report's choice (0 for none); `never_home` are regions that must
  // not be chosen (NoMeasureNoHome).
  RegionId Choose(TimePoint now, const LatencyMap& latency, RegionId previous_home,
                  const std::optional<derpmap::HomeParams>& params,
                  const std::set<RegionId>& never_home = {});

  std::size_t remembered_reports() const { return history_.size(); }

 private:
  std::vector<std::pair<TimePoint, LatencyMap>> history_;  // oldest first
};

}  // namespace derpkit::netcheck
