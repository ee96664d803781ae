// Folding probe answers into a Report (see report_builder.h). Pure; no thread affinity.
#include "netcheck/report_builder.h"

#include <algorithm>

namespace derpkit::netcheck {
namespace {

void KeepBest(LatencyMap& m, RegionId region, std::chrono::nanoseconds d) {
  auto [it, inserted] = m.emplace(region, d);
  if (!inserted && d < it->second) it->second = d;
}

}  // namespace

std::string EndpointString(const netaddr::IpAddress& ip, std::uint16_t port) {
  return netaddr::JoinHostPort(ip.ToString(), port);
}

void ReportBuilder::AddStunAnswer(RegionId region, Family family,
                                  const netaddr::IpAddress& server_ip, std::uint16_t server_port,
                                  const netaddr::IpAddress& mapped_ip, std::uint16_t mapped_port,
                                  std::chrono::nanoseconds latency) {
  Report& r = report_;
  r.udp = true;
  KeepBest(r.region_latency, region, latency);
  const netaddr::IpAddress mapped = mapped_ip.Unmap();
  const std::string endpoint = EndpointString(mapped, mapped_port);
  if (family == Family::kIpv6) {
    KeepBest(r.region_v6_latency, region, latency);
    r.ipv6 = true;
    r.ipv6_can_send = true;
    r.global_v6 = endpoint;
    ++r.global_v6_counters[endpoint];
    return;
  }
  KeepBest(r.region_v4_latency, region, latency);
  r.ipv4 = true;
  r.ipv4_can_send = true;
  ++r.global_v4_counters[endpoint];
  if (r.global_v4.empty()) r.global_v4 = endpoint;
  v4_servers_.insert(EndpointString(server_ip.Unmap(), server_port));
  v4_endpoints_.insert(endpoint);
  if (v4_servers_.size() >= 2) r.mapping_varies_by_dest_ip = v4_endpoints_.size() > 1;
}

void ReportBuilder::AddHttpsLatency(RegionId region, std::chrono::nanoseconds latency,
                                    bool via_ipv4) {
  KeepBest(report_.region_latency, region, latency);
  // Tailscale sets these from the address the TLS connection used; they are "not really used".
  if (via_ipv4) {
    report_.ipv4 = true;
  } else {
    report_.ipv6 = true;
  }
}

void ReportBuilder::SetCanSend(Family family) {
  if (family == Family::kIpv4) {
    report_.ipv4_can_send = true;
  } else {
    report_.ipv6_can_send = true;
  }
}

bool ReportBuilder::ProbeWouldHelp(RegionId region, Family family) const {
  if (!report_.region_latency.contains(region)) return true;
  if (family == Family::kIpv6) return report_.region_v6_latency.empty();
  return !report_.mapping_varies_by_dest_ip.has_value();
}

std::chrono::nanoseconds ReportBuilder::MaxLatency() const {
  std::chrono::nanoseconds max{0};
  for (const auto& [id, d] : report_.region_latency) max = std::max(max, d);
  return max;
}

std::chrono::nanoseconds EarlyStopDelay(std::chrono::nanoseconds max_latency, bool full_report) {
  return full_report ? 2 * max_latency : max_latency;
}

}  // namespace derpkit::netcheck
