// derp-probe's metrics in the Prometheus text format, built with prometheus-cpp's data model and
// TextSerializer from a snapshot at scrape time, so probes that come and go with the DERP map
// appear and disappear with their series.
//
// Families (every probe series has const labels name, class, and the probe's labels: region,
// region_id, hostname, address_family, derp_path, tcp_in_tcp, as derpprobe sets them):
//   derpprobe_interval_secs (gauge; negative for continuous), derpprobe_in_flight (gauge),
//   derpprobe_start_secs, derpprobe_end_secs (gauges, Unix seconds; end absent before the first
//   finish), derpprobe_result (gauge 1/0; absent before the first finish),
//   derpprobe_latency_millis (gauge: the last run's latency in fractional ms, absent when that run
//   failed, as the reference), derpprobe_attempts_total{status="ok"|"fail"} and
//   derpprobe_seconds_total{status} (counters; both series once a run has finished),
//   derpprobe_derp_bw_probe_size_bytes (gauge), derpprobe_derp_bw_transfer_time_seconds_total
//   (counter), derpprobe_derp_qd_probe_dropped_packets (a counter in the reference, typed
//   `untyped` here because promtool refuses a counter without _total; rate() works the same),
//   derpprobe_derp_qd_probe_delays_seconds (histogram, the reference's buckets) — the reference's
//   names and labels, so existing charts keep working. Ours, in Prometheus conventions:
//   derpprobe_latency_seconds (histogram per probe), derpprobe_tls_cert_expiry_timestamp_seconds
//   (gauge: the soonest not-after among the judged certificates), derpprobe_tls_cert_pinned
//   (gauge 1/0), derpprobe_derpmap_last_success_timestamp_seconds, derpprobe_derpmap_regions,
//   derpprobe_derpmap_nodes, derpprobe_probes (gauge), derpprobe_build_info{version} (gauge 1),
//   derpprobe_start_time_seconds (gauge).
// The output passes `promtool check metrics`.
//
// Pure: snapshot in, text out. Any thread.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

#include "probe/model.h"

namespace derpkit::probe {

// The families above as prometheus-cpp values, in that order; families without a sample are left
// out. The Pushgateway client (probe/push.h) sends the same families.
std::vector<prometheus::MetricFamily> CollectMetricFamilies(const ProberSnapshot& snapshot);

// CollectMetricFamilies serialised by prometheus::TextSerializer (text format 0.0.4).
std::string RenderMetrics(const ProberSnapshot& snapshot);

}  // namespace derpkit::probe
