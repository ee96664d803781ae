// /debug/probe-run and /debug/probe-all bodies in the reference's shapes
// (prober.RunHandlerResponse, ProbeInfo): Go's encoding/json spellings, durations as integer
// nanoseconds, times as Go prints them (RFC 3339, UTC, fraction of up to 9 digits with trailing
// zeros dropped; the zero time for "never"). Pure; the HTTP server's handler thread calls it.
#include "probe/probe_info_json.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lib/util/go_format.h"
#include "probe/render_text.h"

namespace derpkit::probe {
namespace {

using Json = nlohmann::ordered_json;

// Go's time.Time{} as encoding/json writes it: what the reference reports for "never".
constexpr const char* kGoZeroTime = "0001-01-01T00:00:00Z";

// time.RFC3339Nano in UTC ("2026-11-30T08:00:00.123456789Z", "2026-11-30T08:00:00.5Z"), or
// the zero time for "never".
std::string GoTime(const std::optional<SystemTime>& t) {
  return t ? GoRfc3339Nano(*t) : kGoZeroTime;
}

std::int64_t Nanos(std::chrono::nanoseconds d) { return static_cast<std::int64_t>(d.count()); }

// The state before the run that produced `after`: its newest history entry removed.
ProbeSnapshot Before(const ProbeSnapshot& after) {
  ProbeSnapshot before = after;
  if (!before.history.empty()) before.history.pop_back();
  return before;
}

Json ProbeInfo(const ProbeSnapshot& p) {
  Json labels = Json::object();
  // The reference's Labels are the metric labels: name, class and the class/probe labels.
  std::vector<std::pair<std::string, std::string>> all = p.spec.labels;
  all.emplace_back("name", p.spec.name);
  all.emplace_back("class", std::string(ClassLabel(p.spec.kind)));
  std::sort(all.begin(), all.end());
  for (const auto& [k, v] : all) labels[k] = v;

  // Last kRecentLength results; latencies of the last kRecentLength successful runs (the
  // reference rings only successes), oldest first.
  Json results = Json::array();
  const std::size_t n = std::min(p.history.size(), ProbeSnapshot::kRecentLength);
  for (std::size_t i = p.history.size() - n; i < p.history.size(); ++i) {
    results.push_back(p.history[i].ok);
  }
  std::vector<std::int64_t> latencies;
  for (auto it = p.history.rbegin();
       it != p.history.rend() && latencies.size() < ProbeSnapshot::kRecentLength; ++it) {
    if (it->ok) latencies.push_back(Nanos(it->latency));
  }
  std::reverse(latencies.begin(), latencies.end());

  const bool failed = p.status == ProbeSnapshot::Status::kFailed;
  // As the reference: the last run's latency when it succeeded (also while the next one runs).
  const bool succeeded = p.last && p.last->ok;
  Json info;
  info["Name"] = p.spec.name;
  info["Class"] = ClassLabel(p.spec.kind);
  info["Interval"] = Nanos(p.spec.interval);
  info["Labels"] = std::move(labels);
  info["Start"] = GoTime(p.last_start);
  info["End"] = GoTime(p.last_end);
  info["Latency"] = succeeded ? Nanos(p.last->latency) : 0;
  info["Status"] = StatusWord(p.status);
  info["Error"] = failed && p.last ? p.last->error : "";
  info["RecentResults"] = std::move(results);
  info["RecentLatencies"] = latencies;
  return info;
}

Json RunResponse(const ProbeSnapshot& after) {
  const ProbeSnapshot before = Before(after);
  Json out;
  out["ProbeInfo"] = ProbeInfo(after);
  out["PreviousSuccessRatio"] = before.RecentSuccessRatio();
  out["PreviousMedianLatency"] = Nanos(before.RecentMedianLatency());
  return out;
}

// Probe errors quote servers and may carry any bytes; never let them throw.
std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string RenderProbeRunJson(const ProbeSnapshot& after) { return Dump(RunResponse(after)); }

std::string RenderProbeRunText(const ProbeSnapshot& after) {
  const std::size_t n = std::min(after.history.size(), ProbeSnapshot::kRecentLength);
  char stats[160];
  std::snprintf(stats, sizeof stats,
                "Last %zu probes (including this one): success rate %d%%, median latency %s\n", n,
                static_cast<int>(after.RecentSuccessRatio() * 100),  // truncated, as Go's int()
                Millis(after.RecentMedianLatency()).c_str());
  if (after.last && after.last->ok) {
    return "Probe succeeded in " + Millis(after.last->latency) + "\n" + stats;
  }
  const std::string error = after.last ? after.last->error : "the probe did not finish";
  return "Probe failed: " + error + "\n" + stats;
}

std::string RenderProbeAllJson(const std::vector<ProbeSnapshot>& after) {
  Json results = Json::object();
  for (const ProbeSnapshot& p : after) results[p.spec.name] = RunResponse(p);
  Json out;
  out["Results"] = std::move(results);
  return Dump(out);
}

}  // namespace derpkit::probe
