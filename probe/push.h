// derp-probe --once --push-url: sends the metrics of a finished run to a Prometheus Pushgateway,
// so cron runs show up in Prometheus like the daemon's scrapes.
//
// One HTTP PUT of CollectMetricFamilies(snapshot) (text format, prometheus-cpp's TextSerializer)
// to <url>/metrics/job/<job>{/<label>/<value>}: PUT replaces everything the group held, so the
// series of probes that left the DERP map disappear with the next push. Grouping label values
// that are not plain URL words (a '/', an empty value…) are sent base64url-encoded
// ("/instance@base64/…"), as the Pushgateway documents.
//
// Why not prometheus::Gateway (prometheus-cpp's push library): in 1.0.1 its Push() sends POST
// (PushAdd() sends PUT), it has no timeout of any kind (a silent gateway would hang a cron job
// forever), it reports transport errors as bare negative curl codes, and it does not encode
// label values. cpp-httplib does the one request with deadlines and words for every failure.
//
// Blocking; call it from main's thread after the run. No global state.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "probe/model.h"

namespace derpkit::probe {

struct PushOptions {
  // http(s)://host[:port][/path prefix]: the prefix for a Pushgateway behind a reverse proxy or
  // started with --web.route-prefix. No query, user info or fragment.
  std::string url = "http://127.0.0.1:9091";
  std::string job = "derp-probe";
  // Grouping labels after the job, in this order; names are Prometheus label names, "job" is
  // not allowed. The caller sets instance=<hostname> by default.
  Labels grouping_labels{};
  // Bounds connecting, sending and waiting for the answer, each.
  std::chrono::milliseconds timeout{10000};
};

// nullopt when the Pushgateway accepted the metrics; otherwise one line saying what failed, e.g.
// "push to http://127.0.0.1:9091 (job derp-probe): HTTP 400 Bad Request: <the gateway's words>"
// or "push to http://127.0.0.1:9091 (job derp-probe): could not connect to 127.0.0.1:9091".
std::optional<std::string> PushMetrics(const PushOptions& options, const ProberSnapshot& snapshot);

}  // namespace derpkit::probe
