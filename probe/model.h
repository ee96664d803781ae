// The prober's vocabulary: what a probe is (ProbeSpec: name, kind, labels, interval, the nodes it
// targets), what one run of it found (ProbeResult), and what the prober remembers about it
// (ProbeSnapshot: recent history, counters, the last error). Every other file of derp-probe speaks
// these types: the planner makes specs from a DERP map, the checks produce results, the scheduler
// keeps snapshots, and the status page, metrics, --once table and JSON render snapshots.
//
// Plain values: no I/O, no clocks (times are passed in), safe to copy between threads.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/derpmap/derpmap.h"

namespace derpkit::probe {

using SystemTime = std::chrono::system_clock::time_point;

// What a probe checks. The user-facing word (--fail-on, the table's "probe" column) and the
// reference's `class` label differ, so both are kept: KindWord() and ClassLabel().
enum class ProbeKind {
  kDerpMap,  // "derpmap": fetching the DERP map itself (class "derp_map")
  kTls,      // "tls": TLS handshake, chain and expiry (class "tls")
  kUdp,      // "udp": STUN over IPv4 (class "derp_udp", address_family="ipv4")
  kUdp6,     // "udp6": STUN over IPv6 (class "derp_udp", address_family="ipv6")
  kMesh,     // "mesh": a packet between two fresh clients (class "derp_mesh")
  kBw,       // "bw": a bulk transfer between two clients (class "derp_bw")
  kQd,       // "qd": continuous queuing delay (class "derp_qd")
};

// "derpmap", "tls", "udp", "udp6", "mesh", "bw", "qd".
std::string_view KindWord(ProbeKind kind);
// "derp_map", "tls", "derp_udp", "derp_udp", "derp_mesh", "derp_bw", "derp_qd".
std::string_view ClassLabel(ProbeKind kind);
// Parses a KindWord (exact, lowercase); nullopt for anything else.
std::optional<ProbeKind> ParseKindWord(std::string_view word);

// Reference name of the map probe (Tailscale's prober calls it this).
inline constexpr std::string_view kDerpMapProbeName = "derpmap-probe";

using Labels = std::vector<std::pair<std::string, std::string>>;  // sorted by name, unique

struct ProbeSpec {
  // The reference's names: "derp/<code>/<node>/tls", ".../udp", ".../udp6",
  // "derp/<code>/<from>/<to>/mesh" (also bw, qd), and "derpmap-probe".
  std::string name{};
  ProbeKind kind = ProbeKind::kTls;
  // Const labels besides name and class, as derpprobe sets them: region (code), region_id,
  // hostname (of the first node), plus address_family (udp), derp_path = mesh|single (mesh, bw,
  // qd), tcp_in_tcp = "false" (bw). The map probe has none.
  Labels labels{};
  // How often it runs. Continuous probes (qd) have a negative interval, as in the reference: the
  // run lasts until it fails, then waits -interval before starting again.
  std::chrono::milliseconds interval{15000};
  std::int64_t region_id = 0;  // 0 for the map probe
  std::string region_code{};
  derpmap::Node from{};               // the node probed (tls, udp) or the sender (mesh, bw, qd)
  std::optional<derpmap::Node> to{};  // the receiver (mesh, bw, qd)

  bool continuous() const { return interval.count() < 0; }
  // "900a" or "900a→900b" (the receiver after an arrow), "" for the map probe.
  std::string NodeColumn() const;

  friend bool operator==(const ProbeSpec&, const ProbeSpec&) = default;
};

// Facts about the certificate chain a TLS probe saw.
struct CertFacts {
  std::string subject{};            // leaf subject CN, or the whole subject when it has no CN
  std::string issuer{};             // leaf issuer CN
  SystemTime not_before{};          // leaf
  SystemTime not_after{};           // leaf
  SystemTime earliest_not_after{};  // the soonest expiry among the judged (non-meta) certs
  bool pinned = false;              // judged by a sha256-raw pin, not by a CA
  bool meta_cert_seen = false;      // derper's meta certificate was in the chain (not judged)
  std::string tls_version{};        // "TLSv1.3"

  // When the chain stops being good: the soonest judged expiry, else the leaf's.
  SystemTime Expiry() const {
    return earliest_not_after != SystemTime{} ? earliest_not_after : not_after;
  }
};

// One run's outcome.
struct ProbeResult {
  bool ok = false;
  std::chrono::nanoseconds latency{0};  // meaningful when ok: what the probe timed
  std::string error{};                  // when !ok: one line, in words, says what failed where
  std::optional<CertFacts> cert{};      // tls
  // bw: bytes moved and how long the transfer took (also set on failure: what was moved).
  std::uint64_t bw_bytes = 0;
  std::chrono::nanoseconds bw_transfer_time{0};
};

// Queuing-delay histogram, derpprobe's buckets (seconds): 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
// 0.5, 1 (+Inf implied). Cumulative counts as Prometheus wants them are made when rendering.
struct QdStats {
  static constexpr std::array<double, 8> kBucketsSeconds = {0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25, 0.5,   1};
  std::array<std::uint64_t, 8> bucket_counts{};  // per bucket, non-cumulative; above 1 s: none
  std::uint64_t count = 0;                       // all delays observed (incl. > 1 s)
  double sum_seconds = 0;
  std::uint64_t dropped_packets = 0;  // lost or later than --qd-packet-timeout

  void Observe(double delay_seconds);
};

// Latency histogram in seconds (Prometheus conventions), for every probe kind but qd.
struct LatencyHistogram {
  static constexpr std::array<double, 12> kBucketsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  std::array<std::uint64_t, 12> bucket_counts{};  // non-cumulative
  std::uint64_t count = 0;
  double sum_seconds = 0;

  void Observe(double seconds);
};

// One past run, for the status page's history and the reference's RecentResults/Latencies.
struct HistoryEntry {
  SystemTime end{};
  bool ok = false;
  std::chrono::nanoseconds latency{0};
};

// Everything the prober knows about one probe, copied out under its lock for rendering.
struct ProbeSnapshot {
  ProbeSpec spec{};
  enum class Status { kUnknown, kRunning, kSucceeded, kFailed } status = Status::kUnknown;
  bool in_flight = false;
  std::optional<SystemTime> last_start{};
  std::optional<SystemTime> last_end{};
  std::optional<SystemTime> last_pass{};  // end of the last successful run
  std::optional<ProbeResult> last{};      // the last finished run
  std::chrono::nanoseconds last_good_latency{0};
  // Newest last; at most kHistoryLength (the reference keeps 10: RecentResults uses the last 10).
  std::deque<HistoryEntry> history{};
  static constexpr std::size_t kHistoryLength = 60;
  static constexpr std::size_t kRecentLength = 10;  // the reference's RecentResults window
  std::uint64_t attempts_ok = 0;
  std::uint64_t attempts_fail = 0;
  double seconds_ok = 0;  // time spent in successful runs
  double seconds_fail = 0;
  LatencyHistogram latency{};
  // tls: from the last run that saw certificates.
  std::optional<CertFacts> cert{};
  // bw: cumulative over runs.
  double bw_transfer_seconds_total = 0;
  std::uint64_t bw_probe_size_bytes = 0;
  // qd: cumulative over the probe's life.
  QdStats qd{};

  // The last kRecentLength history entries' success ratio (0 with no history) and median latency
  // of the successful ones (0 with none), as the reference's status page and probe-run report.
  double RecentSuccessRatio() const;
  std::chrono::nanoseconds RecentMedianLatency() const;
};

std::string_view StatusWord(ProbeSnapshot::Status status);  // "unknown", "running", ...

// The whole prober as the renderers see it.
struct ProberSnapshot {
  std::vector<ProbeSnapshot> probes{};  // sorted by name
  SystemTime now{};
  SystemTime started{};
  std::string map_source{};                 // what --derp-map said, joined with ", "
  std::optional<SystemTime> map_fetched{};  // last successful fetch
  std::size_t regions = 0;
  std::size_t nodes = 0;
  std::string version{};
};

}  // namespace derpkit::probe
