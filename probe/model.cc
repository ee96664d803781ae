// ProbeKind words, ProbeSpec's node column, histogram bookkeeping and recent-history statistics.
#include "probe/model.h"

#include <algorithm>

namespace derpkit::probe {

std::string_view KindWord(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kDerpMap:
      return "derpmap";
    case ProbeKind::kTls:
      return "tls";
    case ProbeKind::kUdp:
      return "udp";
    case ProbeKind::kUdp6:
      return "udp6";
    case ProbeKind::kMesh:
      return "mesh";
    case ProbeKind::kBw:
      return "bw";
    case ProbeKind::kQd:
      return "qd";
  }
  return "?";
}

std::string_view ClassLabel(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kDerpMap:
      return "derp_map";
    case ProbeKind::kTls:
      return "tls";
    case ProbeKind::kUdp:
    case ProbeKind::kUdp6:
      return "derp_udp";
    case ProbeKind::kMesh:
      return "derp_mesh";
    case ProbeKind::kBw:
      return "derp_bw";
    case ProbeKind::kQd:
      return "derp_qd";
  }
  return "?";
}

std::optional<ProbeKind> ParseKindWord(std::string_view word) {
  for (ProbeKind k : {ProbeKind::kDerpMap, ProbeKind::kTls, ProbeKind::kUdp, ProbeKind::kUdp6,
                      ProbeKind::kMesh, ProbeKind::kBw, ProbeKind::kQd}) {
    if (KindWord(k) == word) return k;
  }
  return std::nullopt;
}

std::string ProbeSpec::NodeColumn() const {
  if (kind == ProbeKind::kDerpMap) return "";
  if (!to) return from.name;
  return from.name + "\u2192" + to->name;
}

namespace {

template <std::size_t N>
void ObserveInto(const std::array<double, N>& bounds, std::array<std::uint64_t, N>& counts,
                 double value) {
  for (std::size_t i = 0; i < N; ++i) {
    if (value <= bounds[i]) {
      ++counts[i];
      return;
    }
  }
}

}  // namespace

void QdStats::Observe(double delay_seconds) {
  ObserveInto(kBucketsSeconds, bucket_counts, delay_seconds);
  ++count;
  sum_seconds += delay_seconds;
}

void LatencyHistogram::Observe(double seconds) {
  ObserveInto(kBucketsSeconds, bucket_counts, seconds);
  ++count;
  sum_seconds += seconds;
}

double ProbeSnapshot::RecentSuccessRatio() const {
  const std::size_t n = std::min(history.size(), kRecentLength);
  if (n == 0) return 0;
  std::size_t ok = 0;
  for (std::size_t i = history.size() - n; i < history.size(); ++i) ok += history[i].ok ? 1 : 0;
  return static_cast<double>(ok) / static_cast<double>(n);
}

std::chrono::nanoseconds ProbeSnapshot::RecentMedianLatency() const {
  const std::size_t n = std::min(history.size(), kRecentLength);
  std::vector<std::chrono::nanoseconds> good;
  for (std::size_t i = history.size() - n; i < history.size(); ++i) {
    if (history[i].ok) good.push_back(history[i].latency);
  }
  if (good.empty()) return std::chrono::nanoseconds{0};
  std::sort(good.begin(), good.end());
  // The reference takes the upper middle for an even count (sorted[len/2]).
  return good[good.size() / 2];
}

std::string_view StatusWord(ProbeSnapshot::Status status) {
  switch (status) {
    case ProbeSnapshot::Status::kUnknown:
      return "unknown";
    case ProbeSnapshot::Status::kRunning:
      return "running";
    case ProbeSnapshot::Status::kSucceeded:
      return "succeeded";
    case ProbeSnapshot::Status::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace derpkit::probe
