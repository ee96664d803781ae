// Plan: DERP map -> probe specs, named and labelled as derpprobe names and labels them.
#include "probe/plan.h"

#include <algorithm>

#include "lib/util/netaddr.h"

namespace derpkit::probe {
namespace {

bool Selected(const derpmap::Region& region, const PlanOptions& options) {
  if (options.regions.empty()) return true;
  for (const std::string& want : options.regions) {
    if (want == region.region_code || want == std::to_string(region.region_id)) return true;
  }
  return false;
}

bool IsLiteralOf(const std::string& text, bool v4) {
  auto ip = netaddr::ParseIp(text);
  return ip && ip->is_v4() == v4;
}

Labels NodeLabels(const derpmap::Region& region, const derpmap::Node& node) {
  return {{"hostname", node.host_name},
          {"region", region.region_code},
          {"region_id", std::to_string(region.region_id)}};
}

ProbeSpec Base(const derpmap::Region& region, const derpmap::Node& node, ProbeKind kind,
               std::chrono::milliseconds interval) {
  ProbeSpec s;
  s.kind = kind;
  s.labels = NodeLabels(region, node);
  s.interval = interval;
  s.region_id = region.region_id;
  s.region_code = region.region_code;
  s.from = node;
  s.from.stun_only = false;  // as derpprobe: STUN-only nodes get DERP probes too
  return s;
}

void AddLabel(ProbeSpec& s, std::string name, std::string value) {
  s.labels.emplace_back(std::move(name), std::move(value));
  std::sort(s.labels.begin(), s.labels.end());
}

}  // namespace

std::vector<ProbeSpec> Plan(const derpmap::DerpMap& map, const PlanOptions& options) {
  std::vector<ProbeSpec> out;
  for (const auto& [id, region] : map.regions) {
    if (!Selected(region, options)) continue;
    const std::string prefix = "derp/" + region.region_code + "/";
    for (const derpmap::Node& node : region.nodes) {
      if (options.tls_interval.count() > 0) {
        ProbeSpec s = Base(region, node, ProbeKind::kTls, options.tls_interval);
        s.name = prefix + node.name + "/tls";
        out.push_back(std::move(s));
      }
      if (options.stun_interval.count() > 0 && node.stun_port != -1) {
        if (IsLiteralOf(node.ipv4, true)) {
          ProbeSpec s = Base(region, node, ProbeKind::kUdp, options.stun_interval);
          s.name = prefix + node.name + "/udp";
          AddLabel(s, "address_family", "ipv4");
          out.push_back(std::move(s));
        }
        if (IsLiteralOf(node.ipv6, false)) {
          ProbeSpec s = Base(region, node, ProbeKind::kUdp6, options.stun_interval);
          s.name = prefix + node.name + "/udp6";
          AddLabel(s, "address_family", "ipv6");
          out.push_back(std::move(s));
        }
      }
      for (const derpmap::Node& to : region.nodes) {
        const std::string pair = prefix + node.name + "/" + to.name;
        const std::string path = node.name == to.name ? "single" : "mesh";
        auto add_pair = [&](ProbeKind kind, std::chrono::milliseconds interval,
                            const std::string& suffix) {
          ProbeSpec s = Base(region, node, kind, interval);
          s.name = pair + suffix;
          s.to = to;
          s.to->stun_only = false;
          AddLabel(s, "derp_path", path);
          if (kind == ProbeKind::kBw) AddLabel(s, "tcp_in_tcp", "false");
          out.push_back(std::move(s));
        };
        if (options.mesh_interval.count() > 0) {
          add_pair(ProbeKind::kMesh, options.mesh_interval, "/mesh");
        }
        if (options.bw_interval.count() > 0 && options.bw_size_bytes > 0) {
          add_pair(ProbeKind::kBw, options.bw_interval, "/bw");
        }
        if (options.qd_packets_per_second > 0) {
          add_pair(ProbeKind::kQd, -kContinuousRestartDelay, "/qd");
        }
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ProbeSpec& a, const ProbeSpec& b) { return a.name < b.name; });
  return out;
}

std::vector<std::string> UnknownRegions(const derpmap::DerpMap& map, const PlanOptions& options) {
  std::vector<std::string> unknown;
  for (const std::string& want : options.regions) {
    if (map.FindRegion(want) == nullptr) unknown.push_back(want);
  }
  return unknown;
}

ProbeSpec MapProbeSpec(std::chrono::milliseconds map_interval) {
  ProbeSpec s;
  s.name = std::string(kDerpMapProbeName);
  s.kind = ProbeKind::kDerpMap;
  s.interval = map_interval;
  return s;
}

std::chrono::milliseconds SpreadDelay(const std::string& name, std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return std::chrono::milliseconds{0};
  // FNV-1a: stable across runs and platforms, which std::hash is not promised to be.
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return std::chrono::milliseconds{
      static_cast<std::int64_t>(h % static_cast<std::uint64_t>(interval.count()))};
}

std::chrono::milliseconds RunTimeout(const ProbeSpec& spec) {
  if (spec.interval.count() <= 0) return std::chrono::milliseconds{0};
  return spec.interval * 8 / 10;
}

}  // namespace derpkit::probe
