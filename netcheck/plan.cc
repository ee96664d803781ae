// Probe plans for a netcheck report (see plan.h). Pure; no thread affinity.
#include "netcheck/plan.h"

#include <algorithm>

#include "lib/util/netaddr.h"

namespace derpkit::netcheck {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Retry spacing of a full report (Tailscale's defaultInitialRetransmitTime).
constexpr milliseconds kFullRetransmit{100};
// Retry spacing of an incremental report for a region with no latency from last time
// (defaultActiveRetransmitTime): likely far away, so be patient.
constexpr milliseconds kActiveRetransmit{200};
constexpr milliseconds kExtraPerLateTry{50};
constexpr int kFullTries = 3;
constexpr std::size_t kIncrementalRegions = 3;

// The region's nodes that have STUN, in map order: tries cycle through these, so a node without
// STUN (STUNPort -1) never takes a try that another node could answer.
std::vector<const derpmap::Node*> StunNodes(const derpmap::Region& region) {
  std::vector<const derpmap::Node*> out;
  for (const auto& node : region.nodes) {
    if (node.EffectiveStunPort()) out.push_back(&node);
  }
  return out;
}

bool HostMayProbe(const derpmap::Node& node, Family family, bool host_has_family) {
  return NodeMightStun(node, family) && (host_has_family || IsTestNode(node));
}

void AppendIfAny(ProbePlan& plan, ProbeSet set) {
  if (!set.probes.empty()) plan.push_back(std::move(set));
}

}  // namespace

const char* FamilyName(Family f) { return f == Family::kIpv4 ? "v4" : "v6"; }

std::string ProbeSet::Name() const {
  return "region-" + std::to_string(region_id) + "-" + FamilyName(family);
}

bool IsTestNode(const derpmap::Node& node) {
  return !node.stun_test_ip.empty() || node.ipv4 == "127.0.0.1";
}

bool NodeMightStun(const derpmap::Node& node, Family family) {
  if (!node.EffectiveStunPort()) return false;
  if (!node.stun_test_ip.empty()) {
    auto ip = netaddr::ParseIp(node.stun_test_ip);
    return ip && ip->is_v4() == (family == Family::kIpv4);
  }
  const auto use = family == Family::kIpv4 ? node.Ipv4Use() : node.Ipv6Use();
  return use != derpmap::Node::AddrUse::kDisabled;
}

ProbePlan MakeFullPlan(const derpmap::DerpMap& map, HostFamilies host) {
  ProbePlan plan;
  for (const auto& [id, region] : map.regions) {
    if (region.no_measure_no_home) continue;  // never measured, never home
    const auto nodes = StunNodes(region);
    if (nodes.empty()) continue;
    ProbeSet v4{id, Family::kIpv4, {}};
    ProbeSet v6{id, Family::kIpv6, {}};
    for (int attempt = 0; attempt < kFullTries; ++attempt) {
      const derpmap::Node& node = *nodes[static_cast<std::size_t>(attempt) % nodes.size()];
      const nanoseconds delay = attempt * kFullRetransmit;
      if (HostMayProbe(node, Family::kIpv4, host.have_v4)) {
        v4.probes.push_back({delay, node.name, Family::kIpv4});
      }
      if (HostMayProbe(node, Family::kIpv6, host.have_v6)) {
        v6.probes.push_back({delay, node.name, Family::kIpv6});
      }
    }
    AppendIfAny(plan, std::move(v4));
    AppendIfAny(plan, std::move(v6));
  }
  return plan;
}

ProbePlan MakeIncrementalPlan(const derpmap::DerpMap& map, HostFamilies host, const Report& last) {
  if (last.region_latency.empty()) return MakeFullPlan(map, host);
  const RegionId home = last.preferred_derp;
  const bool had4 = !last.region_v4_latency.empty();
  const bool had6 = !last.region_v6_latency.empty();
  const bool had_both = host.have_v6 && had4 && had6;

  // Regions worth re-measuring, fastest last time first; unmeasured ones last, by id (Tailscale's
  // order among equals is random; ids make runs repeatable).
  std::vector<const derpmap::Region*> sorted;
  for (const auto& [id, region] : map.regions) {
    if (region.no_measure_no_home) continue;
    if (region.avoid && id != home) continue;
    if (StunNodes(region).empty()) continue;
    sorted.push_back(&region);
  }
  auto latency_of = [&](const derpmap::Region* r) -> std::optional<nanoseconds> {
    auto it = last.region_latency.find(r->region_id);
    if (it == last.region_latency.end() || it->second.count() == 0) return std::nullopt;
    return it->second;
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const auto* a, const auto* b) {
    const auto la = latency_of(a);
    const auto lb = latency_of(b);
    if (la && lb) return *la < *lb;
    return la.has_value() && !lb.has_value();  // measured before unmeasured; else keep id order
  });
  std::vector<const derpmap::Region*> chosen(
      sorted.begin(),
      sorted.begin() + static_cast<std::ptrdiff_t>(std::min(kIncrementalRegions, sorted.size())));
  // The home region is always re-measured, even when it has slipped out of the fastest three:
  // losing it by accident would flip the home.
  for (std::size_t i = kIncrementalRegions; i < sorted.size(); ++i) {
    if (sorted[i]->region_id == home) chosen.push_back(sorted[i]);
  }

  ProbePlan plan;
  for (std::size_t ri = 0; ri < chosen.size(); ++ri) {
    const derpmap::Region& region = *chosen[ri];
    const bool is_home = region.region_id == home;
    const bool fastest_two = ri < 2;
    bool do4 = host.have_v4;
    bool do6 = host.have_v6;
    int tries = 1;
    if (fastest_two) {
      tries = 2;
    } else if (had_both && !is_home) {
      // Dual-stack hosts: slower regions alternate between the families to save packets. (The
      // home keeps both: it is probed hardest so that it does not flap.)
      do4 = ri % 2 == 0;
      do6 = !do4;
    }
    if (!fastest_two && !had6) do6 = false;
    if (is_home) tries = 4;

    const auto nodes = StunNodes(region);
    const auto last_latency = latency_of(&region);
    const nanoseconds spacing = last_latency ? nanoseconds(last_latency->count() * 120 / 100)
                                             : nanoseconds(kActiveRetransmit);
    ProbeSet v4{region.region_id, Family::kIpv4, {}};
    ProbeSet v6{region.region_id, Family::kIpv6, {}};
    for (int attempt = 0; attempt < tries; ++attempt) {
      if (attempt != 0 && !had6) do6 = false;  // no IPv6 retries when IPv6 never answered
      const derpmap::Node& node = *nodes[static_cast<std::size_t>(attempt) % nodes.size()];
      nanoseconds delay = attempt * spacing;
      if (attempt > 1) delay += attempt * kExtraPerLateTry;
      if (NodeMightStun(node, Family::kIpv4) && (do4 || IsTestNode(node))) {
        v4.probes.push_back({delay, node.name, Family::kIpv4});
      }
      if (NodeMightStun(node, Family::kIpv6) && (do6 || IsTestNode(node))) {
        v6.probes.push_back({delay, node.name, Family::kIpv6});
      }
    }
    AppendIfAny(plan, std::move(v4));
    AppendIfAny(plan, std::move(v6));
  }
  std::stable_sort(plan.begin(), plan.end(), [](const ProbeSet& a, const ProbeSet& b) {
    return a.region_id != b.region_id ? a.region_id < b.region_id : a.family < b.family;
  });
  return plan;
}

bool WantFullReport(const Report* last,
                    std::optional<std::chrono::steady_clock::time_point> last_full,
                    std::chrono::steady_clock::time_point now, bool forced) {
  if (forced || last == nullptr || !last_full) return true;
  if (now - *last_full > kFullReportInterval) return true;
  return !last->udp && last->captive_portal == true;
}

}  // namespace derpkit::netcheck
