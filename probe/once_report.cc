// derp-probe --once: the aligned table for a cron mail, its JSON twin, and the exit decision.
// Pure; main's thread calls it once the run is over.
#include "probe/once_report.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <nlohmann/json.hpp>
#include <tuple>

#include "lib/util/go_format.h"
#include "probe/render_text.h"

namespace derpkit::probe {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kReset = "\x1b[0m";
constexpr std::size_t kMaxNamesInSummary = 10;

bool Passed(const ProbeSnapshot& p) { return p.last && p.last->ok; }

// RFC 3339 in UTC with the fraction Go prints (up to 9 digits, trailing zeros dropped).
Json OptionalTime(const std::optional<SystemTime>& t) {
  return t ? Json(GoRfc3339Nano(*t)) : Json(nullptr);
}

// The upper bound of the qd bucket holding the median delay: the histogram knows no better.
std::string QdMedian(const QdStats& qd) {
  if (qd.count == 0) return "no delays measured";
  const std::uint64_t half = (qd.count + 1) / 2;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < qd.bucket_counts.size(); ++i) {
    cumulative += qd.bucket_counts[i];
    if (cumulative >= half) {
      return "p50 \u2264 " + Millis(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::duration<double>(QdStats::kBucketsSeconds[i])));
    }
  }
  return "p50 > 1s";
}

// What the ERROR column says: the error of a failed run, or a short note on success.
std::string Note(const ProbeSnapshot& p, const ProberSnapshot& s) {
  if (!p.last && p.spec.kind == ProbeKind::kQd && p.in_flight) {
    // A continuous run ends only by failing; what it measured so far is still worth a line.
    return "still running: " + QdMedian(p.qd) + ", " + std::to_string(p.qd.dropped_packets) +
           " dropped";
  }
  if (!p.last) return p.in_flight ? "did not finish" : "did not run";
  if (!p.last->ok) return p.last->error;
  switch (p.spec.kind) {
    case ProbeKind::kTls:
      // Only what this run saw: an older run's certificate would describe another server.
      return p.last->cert ? CertNote(*p.last->cert, s.now) : "";
    case ProbeKind::kBw:
      return BwNote(*p.last);
    case ProbeKind::kDerpMap:
      return MapSizeNote(s.regions, s.nodes);
    case ProbeKind::kQd:
      return QdMedian(p.qd) + ", " + std::to_string(p.qd.dropped_packets) + " dropped";
    default:
      return "";
  }
}

// A table cell never spans lines, whatever a server put in an error.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return text;
}

// Columns line up by code points: "→" is three bytes but one column.
std::size_t Width(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// Rows by region, node, probe; the map probe (no region) last.
std::vector<const ProbeSnapshot*> SortedRows(const ProberSnapshot& s) {
  std::vector<const ProbeSnapshot*> rows;
  for (const ProbeSnapshot& p : s.probes) rows.push_back(&p);
  auto key = [](const ProbeSnapshot* p) {
    return std::make_tuple(p->spec.kind == ProbeKind::kDerpMap, p->spec.region_code,
                           p->spec.NodeColumn(), static_cast<int>(p->spec.kind), p->spec.name);
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const ProbeSnapshot* a, const ProbeSnapshot* b) { return key(a) < key(b); });
  return rows;
}

std::string OnceSummary(const ProberSnapshot& s) {
  std::vector<std::string> failed;
  for (const ProbeSnapshot& p : s.probes) {
    if (!Passed(p)) failed.push_back(p.spec.name);
  }
  const std::size_t total = s.probes.size();
  std::string line = std::to_string(total - failed.size()) + " of " + std::to_string(total) +
                     (total == 1 ? " probe passed" : " probes passed");
  if (!failed.empty()) {
    line += "; " + std::to_string(failed.size()) + " failed: ";
    for (std::size_t i = 0; i < failed.size() && i < kMaxNamesInSummary; ++i) {
      line += (i ? ", " : "") + failed[i];
    }
    if (failed.size() > kMaxNamesInSummary) {
      line += " and " + std::to_string(failed.size() - kMaxNamesInSummary) + " more";
    }
  }
  return line;
}

}  // namespace

std::string RenderOnceTable(const ProberSnapshot& snapshot, const OnceOptions& options) {
  constexpr std::size_t kPadded = 5;  // every column but ERROR is padded to its width
  using Row = std::array<std::string, kPadded + 1>;
  std::vector<Row> rows;
  std::vector<bool> passed;
  rows.push_back({"REGION", "NODE", "PROBE", "STATUS", "LATENCY", "ERROR"});
  passed.push_back(true);
  for (const ProbeSnapshot* p : SortedRows(snapshot)) {
    const bool ok = Passed(*p);
    const std::string node = p->spec.NodeColumn();
    rows.push_back({p->spec.kind == ProbeKind::kDerpMap ? "-" : p->spec.region_code,
                    node.empty() ? "-" : node, std::string(KindWord(p->spec.kind)),
                    ok ? "ok" : "FAIL", ok ? Millis(p->last->latency) : "-",
                    OneLine(Note(*p, snapshot))});
    passed.push_back(ok);
  }
  std::array<std::size_t, kPadded> widths{};
  for (const Row& row : rows) {
    for (std::size_t c = 0; c < kPadded; ++c) widths[c] = std::max(widths[c], Width(row[c]));
  }
  std::string out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (std::size_t c = 0; c < kPadded; ++c) {
      const std::string& cell = rows[r][c];
      const bool colour = options.colour && r > 0 && c == 3;
      if (colour) line += passed[r] ? kGreen : kRed;
      line += cell;
      if (colour) line += kReset;
      line.append(widths[c] - Width(cell) + 2, ' ');
    }
    line += rows[r][kPadded];
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out + OnceSummary(snapshot) + "\n";
}

std::string RenderOnceJson(const ProberSnapshot& snapshot) {
  std::size_t passed_count = 0;
  Json probes = Json::array();
  for (const ProbeSnapshot* p : SortedRows(snapshot)) {
    const bool ok = Passed(*p);
    passed_count += ok ? 1 : 0;
    const bool node_probe = p->spec.kind != ProbeKind::kDerpMap;
    Json j;
    j["name"] = p->spec.name;
    j["class"] = ClassLabel(p->spec.kind);
    j["kind"] = KindWord(p->spec.kind);
    j["region"] = node_probe ? Json(p->spec.region_code) : Json(nullptr);
    j["region_id"] = node_probe ? Json(p->spec.region_id) : Json(nullptr);
    j["node"] = node_probe ? Json(p->spec.from.name) : Json(nullptr);
    j["to"] = p->spec.to ? Json(p->spec.to->name) : Json(nullptr);
    j["hostname"] = node_probe ? Json(p->spec.from.host_name) : Json(nullptr);
    j["ok"] = ok;
    j["status"] = StatusWord(p->status);
    j["latency_ms"] = ok ? Json(std::chrono::duration<double, std::milli>(p->last->latency).count())
                         : Json(nullptr);
    j["error"] = ok ? Json(nullptr) : Json(Note(*p, snapshot));
    const std::string note = ok ? Note(*p, snapshot) : "";
    j["note"] = note.empty() ? Json(nullptr) : Json(note);
    j["start"] = OptionalTime(p->last_start);
    j["end"] = OptionalTime(p->last_end);
    // The last run's own certificate only (as the note): a refused connection has none.
    if (p->spec.kind == ProbeKind::kTls && p->last && p->last->cert) {
      const CertFacts& cert = *p->last->cert;
      j["cert"] = {{"subject", cert.subject},
                   {"issuer", cert.issuer},
                   {"not_after", GoRfc3339Nano(cert.Expiry())},
                   {"days_left", DaysLeft(cert.Expiry(), snapshot.now)},
                   {"pinned", cert.pinned}};
    }
    if (p->spec.kind == ProbeKind::kBw && p->last) {
      const double seconds = std::chrono::duration<double>(p->last->bw_transfer_time).count();
      j["bw"] = {{"bytes", p->last->bw_bytes},
                 {"transfer_seconds", seconds},
                 {"mbit_per_second",
                  seconds > 0 ? Json(static_cast<double>(p->last->bw_bytes) * 8 / seconds / 1e6)
                              : Json(nullptr)}};
    }
    if (p->spec.kind == ProbeKind::kQd) {
      j["qd"] = {{"delays", p->qd.count},
                 {"delay_sum_seconds", p->qd.sum_seconds},
                 {"dropped_packets", p->qd.dropped_packets}};
    }
    probes.push_back(std::move(j));
  }
  const std::size_t failed_count = snapshot.probes.size() - passed_count;
  Json out;
  out["ok"] = failed_count == 0;
  out["passed"] = passed_count;
  out["failed"] = failed_count;
  out["summary"] = OnceSummary(snapshot);
  out["map"] = {{"source", snapshot.map_source},
                {"fetched", OptionalTime(snapshot.map_fetched)},
                {"regions", snapshot.regions},
                {"nodes", snapshot.nodes}};
  out["version"] = snapshot.version;
  out["probes"] = std::move(probes);
  // Errors quote servers and may carry any bytes; invalid UTF-8 must not throw.
  return out.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

bool RunFailed(const ProberSnapshot& snapshot, const std::vector<ProbeKind>& fail_on) {
  return std::any_of(snapshot.probes.begin(), snapshot.probes.end(), [&](const ProbeSnapshot& p) {
    const bool counted =
        fail_on.empty() || std::find(fail_on.begin(), fail_on.end(), p.spec.kind) != fail_on.end();
    return counted && !Passed(p);
  });
}

}  // namespace derpkit::probe
