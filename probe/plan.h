// Which probes a DERP map calls for, and when each runs. Pure: the scheduler (probe/prober.h)
// calls Plan after every map fetch and adds or removes probes by name to match.
//
// Thread affinity: none; pure functions of their arguments.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "probe/model.h"

namespace derpkit::probe {

struct PlanOptions {
  // Intervals per class; 0 disables the class (as derpprobe's flags).
  std::chrono::milliseconds tls_interval{15000};
  std::chrono::milliseconds stun_interval{15000};
  std::chrono::milliseconds mesh_interval{15000};
  std::chrono::milliseconds bw_interval{0};
  std::uint64_t bw_size_bytes = 1000000;
  int qd_packets_per_second = 0;  // > 0 adds continuous qd probes
  // --regions: region codes or numeric ids; empty = every region.
  std::vector<std::string> regions{};
};

// The reference's pause after a failed continuous run (its interval of -10 s).
inline constexpr std::chrono::milliseconds kContinuousRestartDelay{10000};

// Returns the node probes for `map`, sorted by name. For every selected region and node: tls
// (interval > 0); udp and udp6 (stun interval > 0, a literal address of that family, STUNPort not
// -1); for every ordered pair of the region's nodes, itself included: mesh, bw (bw_interval > 0
// and a size), qd (qd_packets_per_second > 0). STUNOnly nodes are probed like the others, as
// derpprobe does. Labels as derpprobe's: region, region_id, hostname (the first node's),
// address_family (udp), derp_path (mesh/bw/qd), tcp_in_tcp="false" (bw).
std::vector<ProbeSpec> Plan(const derpmap::DerpMap& map, const PlanOptions& options);

// Regions named in options.regions that the map does not have (for a warning; not an error,
// since the map may gain them later).
std::vector<std::string> UnknownRegions(const derpmap::DerpMap& map, const PlanOptions& options);

// The spec of the map probe itself (name "derpmap-probe", class "derp_map").
ProbeSpec MapProbeSpec(std::chrono::milliseconds map_interval);

// The delay before a probe's first run: deterministic per name (FNV-1a of the name) in
// [0, interval), so restarts keep the schedule and probes of one node do not all start at once.
// 0 for continuous probes and when interval <= 0.
std::chrono::milliseconds SpreadDelay(const std::string& name, std::chrono::milliseconds interval);

// A run's deadline: 80% of the interval, as derpprobe (so a run ends before the next is due);
// for continuous probes, none (0).
std::chrono::milliseconds RunTimeout(const ProbeSpec& spec);

}  // namespace derpkit::probe
