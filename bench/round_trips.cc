// Round-trip reporting shared by derp-load and forward-floor (see round_trips.h).
#include "bench/round_trips.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "bench/percentiles.h"

namespace derpkit::bench {
namespace {

double Us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

double PercentileUs(const RoundTrips& trips, double p) {
  return Us(NearestRankPercentile(trips.sorted_ns, p));
}

}  // namespace

nlohmann::json RoundTripsJson(const RoundTrips& trips, std::size_t packet_size,
                              std::chrono::nanoseconds interval) {
  nlohmann::json l;
  l["packet_size_bytes"] = packet_size;
  l["interval_us"] = static_cast<double>(interval.count()) / 1000.0;
  l["sent"] = trips.sent;
  l["answered"] = trips.sorted_ns.size();
  l["lost"] = trips.sent - std::min<std::uint64_t>(trips.sent, trips.sorted_ns.size());
  if (!trips.sorted_ns.empty()) {
    l["p50_us"] = PercentileUs(trips, 50);
    l["p90_us"] = PercentileUs(trips, 90);
    l["p99_us"] = PercentileUs(trips, 99);
    l["p999_us"] = PercentileUs(trips, 99.9);
    l["min_us"] = Us(trips.sorted_ns.front());
    l["max_us"] = Us(trips.sorted_ns.back());
  }
  return l;
}

void AddRoundTripRows(Table& table, const RoundTrips& trips) {
  table.AddRow({"round trips", std::to_string(trips.sorted_ns.size()) + " of " +
                                   std::to_string(trips.sent) + " answered"});
  if (trips.sorted_ns.empty()) return;
  table.AddRow({"rtt p50", Fixed(PercentileUs(trips, 50), 1) + " us"});
  table.AddRow({"rtt p90", Fixed(PercentileUs(trips, 90), 1) + " us"});
  table.AddRow({"rtt p99", Fixed(PercentileUs(trips, 99), 1) + " us"});
  table.AddRow({"rtt p99.9", Fixed(PercentileUs(trips, 99.9), 1) + " us"});
  table.AddRow({"rtt min / max", Fixed(Us(trips.sorted_ns.front()), 1) + " / " +
                                     Fixed(Us(trips.sorted_ns.back()), 1) + " us"});
}

std::string RoundTripSummary(const RoundTrips& trips) {
  if (trips.sorted_ns.empty()) return "";
  char text[128];
  std::snprintf(text, sizeof text, "rtt p50 %.1f us, p99 %.1f us, p99.9 %.1f us",
                PercentileUs(trips, 50), PercentileUs(trips, 99), PercentileUs(trips, 99.9));
  return text;
}

}  // namespace derpkit::bench
