// Runner: one netcheck report after another (see runner.h). Everything runs on one io_context;
// the side checks run as their own coroutines and report back through shared state, so a check
// that overruns the report's deadline is left behind without touching a finished report.
#include "netcheck/runner.h"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <memory>
#include <set>

#include "lib/net/as_tuple.h"
#include "netcheck/captive.h"
#include "netcheck/connect_check.h"
#include "netcheck/host_state.h"
#include "netcheck/https_latency.h"
#include "netcheck/plan.h"
#include "netcheck/portmap.h"
#include "netcheck/report_builder.h"
#include "netcheck/stun_phase.h"

namespace derpkit::netcheck {
namespace {

using Clock = std::chrono::steady_clock;
using ::derpkit::net::kAsTuple;
using std::chrono::milliseconds;

// After the report deadline, how long a side check may still take to hand in its result.
constexpr milliseconds kSideCheckGrace{500};

// Results of the checks that run beside the STUN phase.
struct SideChecks {
  explicit SideChecks(asio::io_context& io) : wake(io), captive_delay(io) {}
  asio::steady_timer wake;           // the report sleeps here while it waits for them
  asio::steady_timer captive_delay;  // the captive check starts when this fires
  bool portmap_done = true;
  std::optional<PortMapResult> portmap;
  bool captive_done = true;
  bool captive_cancelled = false;
  std::optional<CaptiveResult> captive;
  int https_pending = 0;

  void Wake() { wake.cancel(); }
};

template <typename Done>
asio::awaitable<void> WaitFor(SideChecks& s, Clock::time_point until, Done& done) {
  while (!done() && Clock::now() < until) {
    s.wake.expires_at(until);
    co_await s.wake.async_wait(kAsTuple);
  }
}

std::vector<CaptiveTarget> CaptiveTargets(const derpmap::DerpMap& map, RegionId home,
                                          std::uint16_t port) {
  std::vector<CaptiveTarget> home_first;
  std::vector<CaptiveTarget> others;
  for (const auto& [id, region] : map.regions) {
    if (region.avoid || region.no_measure_no_home) continue;
    for (const auto& node : region.nodes) {
      if (!node.can_port80 || node.Ipv4Use() != derpmap::Node::AddrUse::kLiteral) continue;
      (id == home ? home_first : others).push_back(CaptiveTarget{node.ipv4, port, node.name});
    }
  }
  home_first.insert(home_first.end(), others.begin(), others.end());
  return home_first;
}

bool HasDerpNode(const derpmap::Region& region) {
  return std::any_of(region.nodes.begin(), region.nodes.end(),
                     [](const derpmap::Node& n) { return !n.stun_only; });
}

std::string Millis(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + "ms";
}

}  // namespace

Runner::Runner(asio::io_context& io, RunnerConfig config) : io_(io), config_(std::move(config)) {}

asio::awaitable<Report> Runner::GetReport(const derpmap::DerpMap& map) {
  const auto started = Clock::now();
  const auto deadline = started + config_.report_timeout;
  auto log = [this](const std::string& line) {
    if (config_.vlog) config_.vlog(line);
  };

  const bool full = WantFullReport(last_ ? &*last_ : nullptr, last_full_, started, next_full_);
  if (full) {
    last_full_ = started;
    next_full_ = false;
  }
  const RegionId previous_home = last_ ? last_->preferred_derp : 0;
  const HostFamilies host = DetectHostFamilies(config_.bind_address);
  ProbePlan plan = full ? MakeFullPlan(map, host) : MakeIncrementalPlan(map, host, *last_);
  log(std::string(full ? "full" : "incremental") + " report: " + std::to_string(plan.size()) +
      " probe sets; host has IPv4 " + (host.have_v4 ? "yes" : "no") + ", IPv6 " +
      (host.have_v6 ? "yes" : "no"));

  Report start;
  start.now = std::chrono::system_clock::now();
  start.os_has_ipv6 = OsHasIpv6();
  start.full = full;

  auto side = std::make_shared<SideChecks>(io_);
  if (config_.portmap) {
    side->portmap_done = false;
    PortMapOptions options;
    auto bind_ip = netaddr::ParseIp(config_.bind_address);
    if (bind_ip && bind_ip->is_v4()) options.bind_address = config_.bind_address;
    options.timeout = config_.portmap_timeout;
    asio::co_spawn(io_, ProbePortMapping(options),
                   [side, log](std::exception_ptr e, PortMapResult r) {
                     if (!e) {
                       for (const auto& note : r.notes) log("portmap: " + note);
                       side->portmap = std::move(r);
                     }
                     side->portmap_done = true;
                     side->Wake();
                   });
  }
  std::vector<CaptiveTarget> captive_targets =
      CaptiveTargets(map, previous_home, config_.captive_port);
  if (config_.captive && full && !captive_targets.empty()) {
    side->captive_done = false;
    CaptiveOptions options;
    options.timeout = config_.captive_timeout;
    auto bind_ip = netaddr::ParseIp(config_.bind_address);
    if (bind_ip && bind_ip->is_v4()) options.bind_address = config_.bind_address;
    side->captive_delay.expires_after(config_.captive_delay);
    // Started a little after the STUN probes, and skipped when STUN has answered by then.
    asio::co_spawn(
        io_,
        [side, targets = std::move(captive_targets), options]() -> asio::awaitable<void> {
          co_await side->captive_delay.async_wait(kAsTuple);
          if (side->captive_cancelled) co_return;
          CaptiveResult result = co_await CheckCaptivePortal(targets, options);
          side->captive = std::move(result);
        },
        [side, log](std::exception_ptr) {
          if (side->captive) {
            for (const auto& note : side->captive->notes) log("captive: " + note);
          }
          side->captive_done = true;
          side->Wake();
        });
  }

  StunPhaseOptions stun;
  stun.timeout = config_.stun_timeout;
  stun.enough_regions = config_.verbose ? kEnoughRegionsVerbose : kEnoughRegions;
  stun.full_report = full;
  stun.bind_address = config_.bind_address;
  stun.bind_port = config_.bind_port;
  stun.hairpin = config_.hairpin;
  stun.vlog = config_.vlog;
  ReportBuilder initial(start);  // named: no temporaries around a co_await (GCC 12)
  ReportBuilder builder =
      co_await RunStunPhase(io_, map, std::move(plan), stun, std::move(initial));
  log("STUN phase done after " + Millis(Clock::now() - started) + ": " +
      std::to_string(builder.regions_measured()) + " regions answered");

  if (builder.report().udp && !config_.verbose && !side->captive_done) {
    // STUN works, so nothing is in the way of UDP at least; like the reference, skip the captive
    // check if it has not started yet (one already running finishes).
    side->captive_cancelled = true;
    side->captive_delay.cancel();
  }

  if (!builder.report().udp && Clock::now() < deadline) {
    // No STUN answer at all: UDP is probably blocked. Measure over HTTPS what we can.
    auto results =
        std::make_shared<std::vector<std::pair<RegionId, Expected<HttpsLatency, std::string>>>>();
    for (const auto& [id, region] : map.regions) {
      if (region.avoid || region.no_measure_no_home || !HasDerpNode(region)) continue;
      if (builder.report().region_latency.contains(id)) continue;
      ++side->https_pending;
      HttpsLatencyOptions options;
      options.ca_file = config_.ca_file;
      asio::co_spawn(
          io_, MeasureHttpsLatency(io_, region, deadline, options),
          [side, results, id = id](std::exception_ptr e, Expected<HttpsLatency, std::string> r) {
            if (!e) results->emplace_back(id, std::move(r));
            --side->https_pending;
            side->Wake();
          });
    }
    if (side->https_pending > 0) log("UDP is blocked, trying HTTPS");
    auto https_done = [&] { return side->https_pending == 0; };
    const auto https_until = deadline + kSideCheckGrace;
    co_await WaitFor(*side, https_until, https_done);
    std::sort(results->begin(), results->end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [id, r] : *results) {
      if (r) {
        builder.AddHttpsLatency(id, r->latency, r->via_ipv4);
        log("HTTPS latency of region " + std::to_string(id) + " via " + r->node + ": " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::microseconds>(r->latency).count()) +
            "µs");
      } else {
        log("measuring HTTPS latency of region " + std::to_string(id) + ": " + r.error());
      }
    }
  }

  auto side_done = [&] { return side->portmap_done && side->captive_done; };
  const auto side_until = deadline + kSideCheckGrace;
  co_await WaitFor(*side, side_until, side_done);
  if (!side->portmap_done) log("port-mapping probe did not finish in time");
  if (!side->captive_done) log("captive-portal check did not finish in time");

  Report report = builder.report();
  if (side->portmap) {
    report.upnp = side->portmap->upnp;
    report.pmp = side->portmap->pmp;
    report.pcp = side->portmap->pcp;
  }
  if (side->captive) report.captive_portal = side->captive->captive;

  std::set<RegionId> never_home;
  for (const auto& [id, region] : map.regions) {
    if (region.no_measure_no_home) never_home.insert(id);
  }
  report.preferred_derp =
      home_.Choose(started, report.region_latency, previous_home, map.home_params, never_home);
  report.duration = Clock::now() - started;
  last_ = report;
  co_return report;
}

asio::awaitable<std::vector<ConnectEntry>> CheckConnectForReport(asio::io_context& io,
                                                                 const derpmap::DerpMap& map,
                                                                 const Report& report,
                                                                 ConnectConfig config) {
  std::vector<std::int64_t> ids;
  for (const auto& [id, latency] : report.region_latency) {
    if (map.regions.contains(id)) ids.push_back(id);
  }
  if (ids.empty()) {
    // Nothing answered a latency probe: try every region that could be a home, so --connect still
    // says whether DERP itself works from here.
    for (const auto& [id, region] : map.regions) {
      if (!region.no_measure_no_home && HasDerpNode(region)) ids.push_back(id);
    }
  }
  ConnectOptions options;
  options.timeout = config.timeout;
  options.ca_file = config.ca_file;
  std::vector<RegionConnectResult> results = co_await CheckConnect(io, map, ids, options);
  std::vector<ConnectEntry> out;
  for (auto& r : results) {
    ConnectEntry e;
    e.region_id = r.region_id;
    e.region_code = std::move(r.region_code);
    e.node_name = std::move(r.node_name);
    e.ok = r.ok;
    e.transport = std::move(r.transport);
    e.websocket_only = r.websocket_only;
    e.round_trip = r.round_trip;
    e.server_keys = std::move(r.server_keys);
    e.error = std::move(r.error);
    e.warnings = std::move(r.warnings);
    out.push_back(std::move(e));
  }
  co_return out;
}

}  // namespace derpkit::netcheck
