// ReportBuilder: folds the answers of one netcheck run into a Report, the way Tailscale's
// reportState.addNodeLatency does: best latency per region and family, the public endpoints
// (GlobalV4 from the first IPv4 answer, GlobalV6 from the last IPv6 one, counters of both), and
// MappingVariesByDestIP. It also answers the runner's two questions: would another probe add
// information, and when may the STUN phase stop early.
//
// Pure: answers come in as values with their measured latencies. Thread affinity: none (the
// runner uses one builder per report, on its io_context thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>

#include "lib/util/netaddr.h"
#include "netcheck/plan.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

class ReportBuilder {
 public:
  ReportBuilder() = default;
  explicit ReportBuilder(Report start) : report_(std::move(start)) {}

  // A STUN answer: `region` answered a request sent over `family` to server_ip:server_port after
  // `latency`, and saw us at mapped_ip:mapped_port. MappingVariesByDestIP is decided, as
  // Tailscale's addNodeLatency decides it, once a second IPv4 STUN server (another ip:port) has
  // answered: true if the servers saw different endpoints, else false (an endpoint-independent
  // NAT, or none).
  void AddStunAnswer(RegionId region, Family family, const netaddr::IpAddress& server_ip,
                     std::uint16_t server_port, const netaddr::IpAddress& mapped_ip,
                     std::uint16_t mapped_port, std::chrono::nanoseconds latency);

  // An HTTPS latency measurement (the fallback when no STUN answer came back): only the overall
  // region latency and the IPv4/IPv6 flag of the address the TLS connection went to.
  void AddHttpsLatency(RegionId region, std::chrono::nanoseconds latency, bool via_ipv4);

  void SetCanSend(Family family);

  // Whether sending a probe for `region` over `family` could still teach us anything: the region
  // is unmeasured; or it is the first IPv6 answer; or (IPv4) MappingVariesByDestIP is undecided.
  bool ProbeWouldHelp(RegionId region, Family family) const;

  std::size_t regions_measured() const { return report_.region_latency.size(); }
  // The slowest region's latency so far (0 when none).
  std::chrono::nanoseconds MaxLatency() const;

  const Report& report() const { return report_; }
  Report& mutable_report() { return report_; }

 private:
  Report report_;
  std::set<std::string> v4_servers_;    // addresses of the IPv4 STUN servers that answered
  std::set<std::string> v4_endpoints_;  // the distinct endpoints they saw us at
};

// The wait before ending the STUN phase once `enough_regions` regions have answered: the slowest
// latency so far, doubled for a full report (Tailscale's addNodeLatency timer).
std::chrono::nanoseconds EarlyStopDelay(std::chrono::nanoseconds max_latency, bool full_report);

// "ip:port" for IPv4, "[ip]:port" for IPv6 (Go's netip.AddrPort text form).
std::string EndpointString(const netaddr::IpAddress& ip, std::uint16_t port);

}  // namespace derpkit::netcheck
