// Which STUN probes a netcheck report sends, and when (tools-reference.md §4.4, Tailscale's
// makeProbePlan / makeProbePlanInitial):
//
//   full report: every region except NoMeasureNoHome, 3 tries per family, try i to the region's
//     i-th STUN node (cycling), sent at i × 100 ms.
//   incremental: the 3 regions that were fastest last time, plus the current home; 1 try each,
//     2 for the fastest two, 4 for the home; try i at i × (last latency × 1.2, or 200 ms) plus
//     i × 50 ms for i > 1. Avoid regions are left out unless they are home; on dual-stack hosts
//     the 3rd and later regions alternate IPv4-only / IPv6-only; IPv6 retries only when IPv6
//     answered last time.
//
// A probe set (one region, one family) ends at its first answer; the runner skips a probe whose
// answer would add nothing (ProbeWouldHelp in report_builder.h).
//
// Pure: the DERP map, the host's address families, the last report and times come in as values.
// Thread affinity: none.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

enum class Family { kIpv4, kIpv6 };
const char* FamilyName(Family f);  // "v4" / "v6", as in Tailscale's probe set names

// Which families this host can use: a non-loopback, non-link-local address of that family on an
// interface that is up (Tailscale's netmon HaveV4/HaveV6). Test nodes (STUNTestIP set, or IPv4
// "127.0.0.1") are probed whatever these say, so loopback tests do not depend on the host.
struct HostFamilies {
  bool have_v4 = false;
  bool have_v6 = false;
  friend bool operator==(const HostFamilies&, const HostFamilies&) = default;
};

struct Probe {
  std::chrono::nanoseconds delay{0};  // after the start of the report
  std::string node;                   // DERPNode Name (unique across the map)
  Family family = Family::kIpv4;
  friend bool operator==(const Probe&, const Probe&) = default;
};

struct ProbeSet {
  RegionId region_id = 0;
  Family family = Family::kIpv4;
  std::vector<Probe> probes;  // in send order (ascending delay)
  std::string Name() const;   // "region-900-v4", as Tailscale names its probe sets
  friend bool operator==(const ProbeSet&, const ProbeSet&) = default;
};

// Probe sets in ascending region id, the IPv4 set before the IPv6 set of a region.
using ProbePlan = std::vector<ProbeSet>;

// Full plan (first report, every 5 minutes, and whenever the incremental plan has nothing to go
// on).
ProbePlan MakeFullPlan(const derpmap::DerpMap& map, HostFamilies host);

// Incremental plan from the last report; the full plan when `last` measured no region.
ProbePlan MakeIncrementalPlan(const derpmap::DerpMap& map, HostFamilies host, const Report& last);

// A node answers STUN on `family` as far as the map tells: it has STUN (STUNPort ≥ 0), and either
// its STUNTestIP is of that family, or (no STUNTestIP) the family's address field is empty (DNS)
// or a literal of that family. Says nothing about whether the host can reach it.
bool NodeMightStun(const derpmap::Node& node, Family family);

// Tailscale's DERPNode.IsTestNode: STUNTestIP set, or IPv4 "127.0.0.1".
bool IsTestNode(const derpmap::Node& node);

// When the next report must be full: the first one, when 5 minutes have passed since the last
// full one, when asked to, or when the last report saw a captive portal and no UDP (the portal
// may have been in the way).
inline constexpr std::chrono::minutes kFullReportInterval{5};
bool WantFullReport(const Report* last,
                    std::optional<std::chrono::steady_clock::time_point> last_full,
                    std::chrono::steady_clock::time_point now, bool forced);

// STUN answers from this many regions end the STUN phase early (after EarlyStopDelay); 100 with
// --verbose, so that every region's latency is shown.
inline constexpr int kEnoughRegions = 3;
inline constexpr int kEnoughRegionsVerbose = 100;

}  // namespace derpkit::netcheck
