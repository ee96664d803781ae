// derp-probe --once output: an aligned table a person reads in a cron mail, and the same facts as
// JSON for machines.
//
//   REGION  NODE        PROBE    STATUS  LATENCY  ERROR
//   test-a  1a          tls      ok      1.2ms    cert derp-1a.test, 89 days left
//   test-a  1a→1b       mesh     ok      0.8ms
//   test-b  2a          udp      FAIL    -        2a (127.0.2.1:3478): no STUN answer within 3s
//   -       -           derpmap  ok      3.1ms    2 regions, 3 nodes
//   11 of 12 probes passed; 1 failed: derp/test-b/2a/udp
//
// Rows are sorted by region, node, probe; the ERROR column also carries a short note on success
// where one helps (days left on a certificate, bytes moved by bw). Column widths follow the
// content; no colour unless asked (the caller decides from isatty).
//
// Pure: snapshot in, text out. Any thread.
#pragma once

#include <string>

#include "probe/model.h"

namespace derpkit::probe {

struct OnceOptions {
  bool colour = false;  // ANSI colour for ok/FAIL
};

// The table and the summary line, newline-terminated.
std::string RenderOnceTable(const ProberSnapshot& snapshot, const OnceOptions& options);

// One JSON document: {"ok": bool, "passed": n, "failed": n, "probes": [{"name", "class", "kind",
// "region", "region_id", "node", "to", "hostname", "ok", "latency_ms", "error", "start", "end",
// "cert": {"subject", "not_after", "days_left", "pinned"}?, "bw": {...}?}...]} with RFC 3339 UTC
// times, indented by two spaces, newline-terminated.
std::string RenderOnceJson(const ProberSnapshot& snapshot);

// True when the run counts as failed: some probe whose kind is in `fail_on` failed or never
// finished. An empty `fail_on` means every kind.
bool RunFailed(const ProberSnapshot& snapshot, const std::vector<ProbeKind>& fail_on);

}  // namespace derpkit::probe
