// Text form of a Report (see report_text.h). Pure; no thread affinity.
#include "netcheck/report_text.h"

#include <algorithm>
#include <vector>

#include "lib/util/go_format.h"

namespace derpkit::netcheck {
namespace {

// Go prints an opt.Bool with %v as its string: "", "true" or "false".
std::string OptBool(const std::optional<bool>& b) {
  if (!b) return "";
  return *b ? "true" : "false";
}

void AppendLatencyBlock(std::string& out, const Report& r, const derpmap::DerpMap& map,
                        const TextOptions& options) {
  if (r.region_latency.empty()) {
    out += "\t* Nearest DERP: unknown (no response to latency probes)\n";
    return;
  }
  if (r.preferred_derp == 0) {
    out += "\t* Nearest DERP: [none]\n";
  } else if (auto it = map.regions.find(r.preferred_derp); it != map.regions.end()) {
    out += "\t* Nearest DERP: " + it->second.region_name + "\n";
  } else {
    out += "\t* Nearest DERP: " + std::to_string(r.preferred_derp) + " (region not found in map)\n";
  }
  out += "\t* DERP latency:\n";
  std::vector<RegionId> ids;
  for (const auto& [id, region] : map.regions) ids.push_back(id);
  // Measured regions by latency, then the rest by id.
  std::stable_sort(ids.begin(), ids.end(), [&](RegionId a, RegionId b) {
    auto la = r.region_latency.find(a);
    auto lb = r.region_latency.find(b);
    const bool ka = la != r.region_latency.end();
    const bool kb = lb != r.region_latency.end();
    if (ka != kb) return ka;
    if (!ka) return a < b;
    return la->second < lb->second;
  });
  for (RegionId id : ids) {
    const derpmap::Region& region = map.regions.at(id);
    std::string latency;
    if (auto it = r.region_latency.find(id); it != r.region_latency.end()) {
      latency = GoDurationString(GoRound(it->second, std::chrono::microseconds(100)));
    }
    const std::string derp_num = options.verbose ? "derp" + std::to_string(id) + ", " : "";
    // "\t\t- %3s: %-7s (%s%s)\n"
    out += "\t\t- " + PadRunes(region.region_code, 3, false) + ": " + PadRunes(latency, 7, true) +
           " (" + derp_num + region.region_name + ")\n";
  }
}

void AppendConnect(std::string& out, const std::vector<ConnectEntry>& entries) {
  out += "\t* DERP connect:\n";
  if (entries.empty()) out += "\t\t(no region to connect to)\n";
  for (const ConnectEntry& e : entries) {
    out += "\t\t- " + PadRunes(e.region_code, 3, false) + ": ";
    if (e.ok) {
      out += "ok, " + GoDurationString(GoRound(e.round_trip, std::chrono::microseconds(100))) +
             " round trip via " + e.node_name + " (" + e.transport + ")\n";
    } else {
      out += "FAILED" + (e.node_name.empty() ? "" : " at " + e.node_name) + ": " + e.error + "\n";
    }
    for (const std::string& w : e.warnings) out += "\t\t  warning: " + w + "\n";
  }
}

}  // namespace

std::string PortMappingSummary(const Report& r) {
  if (!r.AnyPortMappingChecked()) return "not checked";
  std::string out;
  auto add = [&](const std::optional<bool>& b, const char* name) {
    if (b != true) return;
    if (!out.empty()) out += ", ";
    out += name;
  };
  add(r.upnp, "UPnP");
  add(r.pmp, "NAT-PMP");
  add(r.pcp, "PCP");
  return out;
}

std::string RenderText(const Report& r, const derpmap::DerpMap& map, const TextOptions& options) {
  std::string out = "\nReport:\n";
  out += "\t* Time: " + GoRfc3339Nano(r.now, options.utc_offset_seconds) + "\n";
  out += std::string("\t* UDP: ") + (r.udp ? "true" : "false") + "\n";
  out +=
      r.global_v4.empty() ? "\t* IPv4: (no addr found)\n" : "\t* IPv4: yes, " + r.global_v4 + "\n";
  if (!r.global_v6.empty()) {
    out += "\t* IPv6: yes, " + r.global_v6 + "\n";
  } else if (r.ipv6) {
    out += "\t* IPv6: (no addr found)\n";
  } else if (r.os_has_ipv6) {
    out += "\t* IPv6: no, but OS has support\n";
  } else {
    out += "\t* IPv6: no, unavailable in OS\n";
  }
  out += "\t* MappingVariesByDestIP: " + OptBool(r.mapping_varies_by_dest_ip) + "\n";
  out += "\t* PortMapping: " + PortMappingSummary(r) + "\n";
  if (r.captive_portal) out += "\t* CaptivePortal: " + OptBool(r.captive_portal) + "\n";
  AppendLatencyBlock(out, r, map, options);
  // derpkit's extras come after everything the reference prints.
  if (r.hair_pinning) out += "\t* HairPinning: " + OptBool(r.hair_pinning) + "\n";
  if (r.connect) AppendConnect(out, *r.connect);
  return out;
}

}  // namespace derpkit::netcheck
