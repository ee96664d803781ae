// The daemon's `/` page: what a person on call reads at a glance. Healthy and failing counts at
// the top; one row per probe (failing first, then by name) with its status, latency now, a small
// latency history drawn inline as SVG (no JavaScript), when it last passed ("3m ago"), and the
// last error in words; a "Run" button per non-continuous probe (a GET form to
// /debug/probe-run?name=…). The page refreshes itself (<meta http-equiv="refresh">), works on a
// phone (viewport meta; below 47rem each row becomes a card of stacked, labelled cells, so the
// error reads without sideways scrolling; wider, the table scrolls sideways if it must), escapes
// every string from the map or an error, and links /metrics and /debug/probe-all.
//
// Pure: snapshot in, HTML out. Any thread.
#pragma once

#include <chrono>
#include <string>

#include "probe/model.h"

namespace derpkit::probe {

struct StatusPageOptions {
  std::chrono::seconds refresh{10};  // the page's self-refresh period
};

std::string RenderStatusPage(const ProberSnapshot& snapshot, const StatusPageOptions& options);

// "All 12 probes are healthy" or "2 of 12 probes are failing" (+ ", 1 has not run yet"): the
// page's headline, also the summary line of --once.
std::string SummaryLine(const ProberSnapshot& snapshot);

}  // namespace derpkit::probe
