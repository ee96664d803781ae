// derp-probe's /metrics (and the Pushgateway body): prometheus-cpp MetricFamily values built from a
// ProberSnapshot at scrape time, serialised by prometheus::TextSerializer. Names, types and labels
// follow derpprobe (metrics.h lists them); ours add histograms and certificate expiry in
// Prometheus conventions. Pure; any thread (the HTTP server's handler thread calls it).
#include "probe/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <utility>

namespace derpkit::probe {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double UnixSeconds(SystemTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// The reference exports start/end as whole Unix seconds (time.Unix()); keep that.
double WholeUnixSeconds(SystemTime t) {
  return static_cast<double>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count());
}

// name, class, then the probe's own labels; sorted by label name, as client_golang prints them.
std::vector<ClientMetric::Label> ProbeLabels(const ProbeSpec& spec) {
  std::vector<ClientMetric::Label> labels;
  labels.push_back({"class", std::string(ClassLabel(spec.kind))});
  labels.push_back({"name", spec.name});
  for (const auto& [name, value] : spec.labels) labels.push_back({name, value});
  std::sort(labels.begin(), labels.end());
  return labels;
}

ClientMetric WithLabel(ClientMetric metric, std::string name, std::string value) {
  metric.label.push_back({std::move(name), std::move(value)});
  std::sort(metric.label.begin(), metric.label.end());
  return metric;
}

ClientMetric Gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric Untyped(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.untyped.value = value;
  return m;
}

// Prometheus wants cumulative bucket counts; the model keeps them per bucket. The serializer adds
// the +Inf bucket (= sample_count, which also counts values above the last bound).
template <std::size_t N>
ClientMetric Histogram(std::vector<ClientMetric::Label> labels, const std::array<double, N>& bounds,
                       const std::array<std::uint64_t, N>& counts, std::uint64_t count,
                       double sum_seconds) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = count;
  m.histogram.sample_sum = sum_seconds;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < N; ++i) {
    cumulative += counts[i];
    m.histogram.bucket.push_back({cumulative, bounds[i]});
  }
  return m;
}

bool Finished(const ProbeSnapshot& p) { return p.attempts_ok + p.attempts_fail > 0 || p.last; }

// Hands out families by reference while the probes are walked (a deque, so references stay valid)
// and drops the empty ones at the end.
class FamilyBuilder {
 public:
  MetricFamily& Add(std::string name, std::string help, MetricType type) {
    families_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return families_.back();
  }
  std::vector<MetricFamily> Take() && {
    std::vector<MetricFamily> out;
    for (MetricFamily& f : families_) {
      if (!f.metric.empty()) out.push_back(std::move(f));
    }
    return out;
  }

 private:
  std::deque<MetricFamily> families_;
};

}  // namespace

std::vector<MetricFamily> CollectMetricFamilies(const ProberSnapshot& snapshot) {
  FamilyBuilder b;
  // The reference's per-probe families, in its order.
  auto& interval = b.Add("derpprobe_interval_secs", "Probe interval in seconds", MetricType::Gauge);
  auto& in_flight =
      b.Add("derpprobe_in_flight", "Number of probe runs in progress", MetricType::Gauge);
  auto& start = b.Add("derpprobe_start_secs", "Latest probe start time (seconds since epoch)",
                      MetricType::Gauge);
  auto& end =
      b.Add("derpprobe_end_secs", "Latest probe end time (seconds since epoch)", MetricType::Gauge);
  auto& result = b.Add("derpprobe_result", "Latest probe result (1 = success, 0 = failure)",
                       MetricType::Gauge);
  auto& latency_millis =
      b.Add("derpprobe_latency_millis", "Latest probe latency (ms)", MetricType::Gauge);
  auto& attempts =
      b.Add("derpprobe_attempts_total", "Total number of probing attempts", MetricType::Counter);
  auto& seconds = b.Add("derpprobe_seconds_total", "Total amount of time spent executing the probe",
                        MetricType::Counter);
  auto& bw_size = b.Add("derpprobe_derp_bw_probe_size_bytes", "Payload size of the bandwidth probe",
                        MetricType::Gauge);
  auto& bw_time = b.Add("derpprobe_derp_bw_transfer_time_seconds_total",
                        "Time it took to transfer data", MetricType::Counter);
  auto& qd_dropped = b.Add("derpprobe_derp_qd_probe_dropped_packets", "Total packets dropped",
                           MetricType::Untyped);
  auto& qd_delays = b.Add("derpprobe_derp_qd_probe_delays_seconds",
                          "Distribution of queuing delays", MetricType::Histogram);
  // Ours.
  auto& latency_seconds =
      b.Add("derpprobe_latency_seconds", "Probe latency in seconds", MetricType::Histogram);
  auto& cert_expiry = b.Add("derpprobe_tls_cert_expiry_timestamp_seconds",
                            "Soonest expiry (not-after, seconds since epoch) among the judged "
                            "certificates of the last TLS handshake",
                            MetricType::Gauge);
  auto& cert_pinned = b.Add("derpprobe_tls_cert_pinned",
                            "1 when the certificate was judged by a sha256-raw pin, not by a CA",
                            MetricType::Gauge);

  for (const ProbeSnapshot& p : snapshot.probes) {
    const auto labels = ProbeLabels(p.spec);
    interval.metric.push_back(
        Gauge(labels, std::chrono::duration<double>(p.spec.interval).count()));
    in_flight.metric.push_back(Gauge(labels, p.in_flight ? 1 : 0));
    if (p.last_start) start.metric.push_back(Gauge(labels, WholeUnixSeconds(*p.last_start)));
    if (p.last_end) end.metric.push_back(Gauge(labels, WholeUnixSeconds(*p.last_end)));
    if (p.last) {
      result.metric.push_back(Gauge(labels, p.last->ok ? 1 : 0));
      if (p.last->ok) {
        latency_millis.metric.push_back(
            Gauge(labels, std::chrono::duration<double, std::milli>(p.last->latency).count()));
      }
    }
    if (Finished(p)) {
      // Both status series as soon as one run finished, as the reference (Add(0) on the other).
      const ClientMetric base = Gauge(labels, 0);
      attempts.metric.push_back(
          Counter(WithLabel(base, "status", "ok").label, static_cast<double>(p.attempts_ok)));
      attempts.metric.push_back(
          Counter(WithLabel(base, "status", "fail").label, static_cast<double>(p.attempts_fail)));
      seconds.metric.push_back(Counter(WithLabel(base, "status", "ok").label, p.seconds_ok));
      seconds.metric.push_back(Counter(WithLabel(base, "status", "fail").label, p.seconds_fail));
    }
    switch (p.spec.kind) {
      case ProbeKind::kBw:
        bw_size.metric.push_back(Gauge(labels, static_cast<double>(p.bw_probe_size_bytes)));
        bw_time.metric.push_back(Counter(labels, p.bw_transfer_seconds_total));
        break;
      case ProbeKind::kQd:
        qd_dropped.metric.push_back(Untyped(labels, static_cast<double>(p.qd.dropped_packets)));
        qd_delays.metric.push_back(Histogram(labels, QdStats::kBucketsSeconds, p.qd.bucket_counts,
                                             p.qd.count, p.qd.sum_seconds));
        break;
      case ProbeKind::kTls:
        if (p.cert) {
          cert_expiry.metric.push_back(Gauge(labels, UnixSeconds(p.cert->Expiry())));
          cert_pinned.metric.push_back(Gauge(labels, p.cert->pinned ? 1 : 0));
        }
        break;
      default:
        break;
    }
    if (p.spec.kind != ProbeKind::kQd && Finished(p)) {
      latency_seconds.metric.push_back(Histogram(labels, LatencyHistogram::kBucketsSeconds,
                                                 p.latency.bucket_counts, p.latency.count,
                                                 p.latency.sum_seconds));
    }
  }

  // Prober-wide.
  auto& map_success = b.Add("derpprobe_derpmap_last_success_timestamp_seconds",
                            "When the DERP map was last fetched successfully (seconds since epoch)",
                            MetricType::Gauge);
  if (snapshot.map_fetched)
    map_success.metric.push_back(Gauge({}, UnixSeconds(*snapshot.map_fetched)));
  b.Add("derpprobe_derpmap_regions", "Regions in the DERP map being probed", MetricType::Gauge)
      .metric.push_back(Gauge({}, static_cast<double>(snapshot.regions)));
  b.Add("derpprobe_derpmap_nodes", "Nodes in the DERP map being probed", MetricType::Gauge)
      .metric.push_back(Gauge({}, static_cast<double>(snapshot.nodes)));
  b.Add("derpprobe_probes", "Number of probes configured", MetricType::Gauge)
      .metric.push_back(Gauge({}, static_cast<double>(snapshot.probes.size())));
  b.Add("derpprobe_build_info", "derp-probe's version (value 1)", MetricType::Gauge)
      .metric.push_back(Gauge({{"version", snapshot.version}}, 1));
  b.Add("derpprobe_start_time_seconds", "When the prober started (seconds since epoch)",
        MetricType::Gauge)
      .metric.push_back(Gauge({}, UnixSeconds(snapshot.started)));
  return std::move(b).Take();
}

std::string RenderMetrics(const ProberSnapshot& snapshot) {
  return prometheus::TextSerializer{}.Serialize(CollectMetricFamilies(snapshot));
}

}  // namespace derpkit::probe
