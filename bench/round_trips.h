// Round-trip samples and how the latency tools report them: derp-load --mode latency (through a
// relay) and forward-floor --mode latency (through a bare forwarder, the floor it is read
// against) print the same JSON object and the same table rows, so run-benchmarks.sh and
// report.py read both alike.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/report.h"

namespace derpkit::bench {

// Pings sent inside the window and the round trips of those answered, sorted ascending.
struct RoundTrips {
  std::uint64_t sent = 0;
  std::vector<std::int64_t> sorted_ns;
};

// {"packet_size_bytes", "interval_us", "sent", "answered", "lost", and with any answer
// "p50_us", "p90_us", "p99_us", "p999_us", "min_us", "max_us"}.
nlohmann::json RoundTripsJson(const RoundTrips& trips, std::size_t packet_size,
                              std::chrono::nanoseconds interval);

// "round trips", "rtt p50" .. "rtt p99.9", "rtt min / max".
void AddRoundTripRows(Table& table, const RoundTrips& trips);

// "rtt p50 X us, p99 Y us, p99.9 Z us", or "" with no answer.
std::string RoundTripSummary(const RoundTrips& trips);

}  // namespace derpkit::bench
