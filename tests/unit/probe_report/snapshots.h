// Hand-built prober snapshots for the renderer tests: the specs come from the real planner (so
// names and labels are derpprobe's), the run states are written here the way the scheduler
// records them (history, counters, histograms), at a fixed `now`.
//
// Thread affinity: the test's thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>

#include "probe/model.h"
#include "probe/plan.h"

namespace derpkit::probe::fixtures {

using namespace std::chrono_literals;

// 2026-11-30T08:00:00Z.
inline SystemTime Now() { return SystemTime{std::chrono::seconds{1796025600}}; }

inline derpmap::Node MakeNode(std::string name, std::int64_t region, std::string host,
                              std::string v4, std::string v6 = "") {
  derpmap::Node n;
  n.name = std::move(name);
  n.region_id = region;
  n.host_name = std::move(host);
  n.ipv4 = std::move(v4);
  n.ipv6 = std::move(v6);
  return n;
}

// test-a (1): 1a (IPv4 and IPv6), 1b; test-b (2): 2a. Three nodes, two regions.
inline derpmap::DerpMap TestMap() {
  derpmap::DerpMap map;
  derpmap::Region a;
  a.region_id = 1;
  a.region_code = "test-a";
  a.region_name = "Test A";
  a.nodes = {MakeNode("1a", 1, "derp-1a.test", "127.0.1.1", "::1"),
             MakeNode("1b", 1, "derp-1b.test", "127.0.1.2")};
  derpmap::Region b;
  b.region_id = 2;
  b.region_code = "test-b";
  b.region_name = "Test B";
  b.nodes = {MakeNode("2a", 2, "derp-2a.test", "127.0.2.1")};
  map.regions[1] = a;
  map.regions[2] = b;
  return map;
}

// Records one finished run as the scheduler does.
inline void Record(ProbeSnapshot& p, SystemTime end, bool ok, std::chrono::nanoseconds latency,
                   std::string error = "") {
  const auto took = ok ? latency : std::chrono::nanoseconds{3s};
  p.last_start = end - std::chrono::duration_cast<SystemTime::duration>(took);
  p.last_end = end;
  ProbeResult r;
  r.ok = ok;
  r.latency = ok ? latency : std::chrono::nanoseconds{0};
  r.error = std::move(error);
  p.last = r;
  p.status = ok ? ProbeSnapshot::Status::kSucceeded : ProbeSnapshot::Status::kFailed;
  p.history.push_back(HistoryEntry{end, ok, r.latency});
  while (p.history.size() > ProbeSnapshot::kHistoryLength) p.history.pop_front();
  const double seconds = std::chrono::duration<double>(took).count();
  if (ok) {
    ++p.attempts_ok;
    p.seconds_ok += seconds;
    p.last_pass = end;
    p.last_good_latency = latency;
    p.latency.Observe(seconds);
  } else {
    ++p.attempts_fail;
    p.seconds_fail += seconds;
  }
}

// `runs` runs every 15 s ending at `last_end`, latencies base, base+10%, … base+40% (cycling over
// 5: 1.0, 1.1, 1.2, 1.3, 1.4 ms by default); the runs whose index is in `failures` (0 = oldest)
// fail with `error`.
inline void RecordSeries(ProbeSnapshot& p, SystemTime last_end, int runs,
                         std::vector<int> failures = {}, const std::string& error = "boom",
                         std::chrono::microseconds base = std::chrono::microseconds{1000}) {
  for (int i = 0; i < runs; ++i) {
    const SystemTime end = last_end - std::chrono::seconds{15} * (runs - 1 - i);
    const bool fail = std::find(failures.begin(), failures.end(), i) != failures.end();
    Record(p, end, !fail, base + base * (i % 5) / 10, error);
  }
}

inline CertFacts Cert(std::string subject, std::chrono::hours left, bool pinned) {
  CertFacts c;
  c.subject = std::move(subject);
  c.issuer = "Test CA";
  c.not_before = Now() - std::chrono::hours{24 * 30};
  c.not_after = Now() + left;
  c.earliest_not_after = c.not_after;
  c.pinned = pinned;
  c.tls_version = "TLSv1.3";
  return c;
}

inline ProbeSnapshot* Find(ProberSnapshot& s, const std::string& name) {
  for (ProbeSnapshot& p : s.probes) {
    if (p.spec.name == name) return &p;
  }
  return nullptr;
}

inline constexpr const char* kScriptError =
    "TLS handshake with derp-2a.test: <script>alert(\"x\")</script> & more";
inline constexpr const char* kStunError = "2a (127.0.2.1:3478): no STUN answer within 3s";

// Every kind, failing and passing, one never run, qd running with delays, bw, tls with certs:
//   derpmap-probe ok 3.1ms; every tls ok (1a 89 days, 1b pinned) but 2a, failing with
//   kScriptError; udp 2a failing with kStunError; derp/test-b/2a/2a/mesh never ran; qd probes in
//   flight with delays; everything else passing, most with a 60-run history.
// 23 probes: 20 healthy, 2 failing, 1 not run.
inline ProberSnapshot RichSnapshot() {
  PlanOptions options;
  options.bw_interval = 60s;
  options.qd_packets_per_second = 10;
  ProberSnapshot s;
  s.now = Now();
  s.started = Now() - 3h;
  s.map_source = "file:///etc/derp-probe/derpmap.json";
  s.map_fetched = Now() - 12s;
  s.regions = 2;
  s.nodes = 3;
  s.version = "0.1.0";
  ProbeSnapshot map;
  map.spec = MapProbeSpec(15s);
  s.probes.push_back(map);
  for (const ProbeSpec& spec : Plan(TestMap(), options)) {
    ProbeSnapshot p;
    p.spec = spec;
    s.probes.push_back(p);
  }
  std::sort(s.probes.begin(), s.probes.end(), [](const ProbeSnapshot& a, const ProbeSnapshot& b) {
    return a.spec.name < b.spec.name;
  });

  for (ProbeSnapshot& p : s.probes) {
    const std::string& n = p.spec.name;
    if (n == "derp/test-b/2a/2a/mesh") continue;  // never ran
    switch (p.spec.kind) {
      case ProbeKind::kDerpMap:
        Record(p, Now() - 12s, true, 3100us);
        break;
      case ProbeKind::kTls:
        RecordSeries(p, Now() - 5s, 60,
                     n == "derp/test-b/2a/tls" ? std::vector{57, 58, 59} : std::vector<int>{},
                     kScriptError);
        if (n == "derp/test-a/1a/tls") p.cert = Cert("derp-1a.test", 89 * 24h + 5h, false);
        if (n == "derp/test-a/1b/tls") p.cert = Cert("derp-1b.test", 300 * 24h + 1h, true);
        if (n == "derp/test-b/2a/tls") p.cert = Cert("derp-2a.test", 3 * 24h, false);
        if (p.last->ok) p.last->cert = p.cert;
        break;
      case ProbeKind::kUdp:
      case ProbeKind::kUdp6:
        RecordSeries(p, Now() - 4s, 60,
                     n == "derp/test-b/2a/udp" ? std::vector{20, 59} : std::vector<int>{},
                     kStunError);
        break;
      case ProbeKind::kMesh:
        RecordSeries(p, Now() - 3s, 25,
                     n == "derp/test-a/1a/1b/mesh" ? std::vector{3} : std::vector<int>{});
        break;
      case ProbeKind::kBw:
        p.bw_probe_size_bytes = 1000000;
        RecordSeries(p, Now() - 30s, 4, {}, "", 10000us);  // 10, 11, 12, 12.3 ms
        p.last->latency = 12300us;
        p.history.back().latency = 12300us;
        p.last->bw_bytes = 1000000;
        p.last->bw_transfer_time = 12300us;
        p.bw_transfer_seconds_total = 4 * 0.0123;
        break;
      case ProbeKind::kQd:
        p.status = ProbeSnapshot::Status::kRunning;
        p.in_flight = true;
        p.last_start = Now() - 1h;
        for (double d : {0.001, 0.002, 0.003, 0.007, 0.03, 0.03, 0.2, 2.0}) p.qd.Observe(d);
        p.qd.dropped_packets = 4;
        break;
    }
  }
  return s;
}

}  // namespace derpkit::probe::fixtures
