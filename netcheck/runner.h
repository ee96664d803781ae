// Runner: makes netcheck reports, one after another, the way Tailscale's netcheck.Client does
// (GetReport): it remembers the last report (for incremental plans and the home region's
// hysteresis) and when the last full report was made.
//
//   one report (≤ 5 s):
//     ├─ port-mapping probe of the default gateway (portmap.h)      ┐
//     ├─ captive-portal check, full reports only, after 200 ms       │ in parallel
//     │  (captive.h; skipped if STUN has answered by then)           │
//     ├─ STUN phase (stun_phase.h, ≤ 3 s) + hairpin check            ┘
//     ├─ no STUN answer at all → HTTPS latency per region (https_latency.h)
//     └─ home region (home.h)
//
// Thread affinity: one io_context; GetReport must not run twice at once.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "netcheck/home.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

struct RunnerConfig {
  std::string bind_address;     // local address of every probe socket; "" = any
  std::uint16_t bind_port = 0;  // local UDP port of the STUN sockets; 0 = ephemeral
  bool verbose = false;  // probe every region (no early stop after 3) and keep the captive check
  bool portmap = true;   // probe the default gateway for UPnP / NAT-PMP / PCP
  bool captive = true;   // captive-portal check on full reports
  std::uint16_t captive_port = 80;  // HTTP port of the DERP nodes for /generate_204
  bool hairpin = true;
  std::string ca_file;  // extra trust anchors for TLS to DERP nodes; "" = system roots
  // Tailscale's timeouts (tools-reference.md §4.4).
  std::chrono::milliseconds report_timeout{5000};
  std::chrono::milliseconds stun_timeout{3000};
  std::chrono::milliseconds captive_timeout{3000};
  std::chrono::milliseconds captive_delay{200};
  std::chrono::milliseconds portmap_timeout{2500};
  std::function<void(const std::string&)> vlog;  // --verbose notes; may be empty
};

class Runner {
 public:
  Runner(asio::io_context& io, RunnerConfig config);

  // Makes one report against `map` (full or incremental, see plan.h WantFullReport) and chooses
  // its PreferredDERP. `map` must stay valid until the returned awaitable completes.
  asio::awaitable<Report> GetReport(const derpmap::DerpMap& map);

  // The next GetReport makes a full report.
  void MakeNextReportFull() { next_full_ = true; }

 private:
  asio::io_context& io_;
  RunnerConfig config_;
  std::optional<Report> last_;
  std::optional<std::chrono::steady_clock::time_point> last_full_;
  bool next_full_ = false;
  HomeSelector home_;
};

// --connect: a real DERP round trip to each region measured in `report` (every measurable
// region when none was), through connect_check.h, as report entries.
struct ConnectConfig {
  std::chrono::milliseconds timeout{5000};
  std::string ca_file;
};
asio::awaitable<std::vector<ConnectEntry>> CheckConnectForReport(asio::io_context& io,
                                                                 const derpmap::DerpMap& map,
                                                                 const Report& report,
                                                                 ConnectConfig config);

}  // namespace derpkit::netcheck
