// The reference's JSON for /debug/probe-run (Accept: application/json) and /debug/probe-all:
//   {"ProbeInfo":{"Name","Class","Interval"(ns),"Labels"{…},"Start","End"(RFC 3339),
//    "Latency"(ns),"Status","Error","RecentResults"[bool],"RecentLatencies"[ns]},
//    "PreviousSuccessRatio":f,"PreviousMedianLatency":ns}
// and /debug/probe-all's {"Results":{"<name>":{…}}}; plus the text form of probe-run
// ("Probe succeeded in 1.2ms\nLast 10 probes (including this one): success rate 100%, median
// latency 1.1ms\n" or "Probe failed: …").
//
// Pure: snapshots in, text out. Any thread.
#pragma once

#include <string>
#include <vector>

#include "probe/model.h"

namespace derpkit::probe {

// `after` is the probe's state once the requested run finished. The "Previous…" fields are
// computed from the history before that run (as the reference does).
std::string RenderProbeRunJson(const ProbeSnapshot& after);
std::string RenderProbeRunText(const ProbeSnapshot& after);
std::string RenderProbeAllJson(const std::vector<ProbeSnapshot>& after);

}  // namespace derpkit::probe
