// derp-probe's `/`: one self-contained HTML5 page (inline CSS, inline SVG, no JavaScript, nothing
// fetched from elsewhere) that an on-call person reads at a glance, on a desk or on a phone.
// Every string that came from a DERP map, a server or an error goes through http::HtmlEscape().
// Pure; the HTTP server's handler thread calls it.
#include "probe/status_page.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "lib/http/body_text.h"
#include "lib/util/go_format.h"
#include "probe/render_text.h"

namespace derpkit::probe {
namespace {

using http::HtmlEscape;
using std::chrono::nanoseconds;

// One probe's state as the page counts it. A continuous probe that is running is healthy: it
// only ends by failing (the reference shows it as "running", not as a problem).
enum class Health { kHealthy, kFailing, kNotRun };

Health HealthOf(const ProbeSnapshot& p) {
  if (p.spec.continuous() && p.in_flight) return Health::kHealthy;
  if (!p.last) return Health::kNotRun;
  return p.last->ok ? Health::kHealthy : Health::kFailing;
}

struct Counts {
  std::size_t healthy = 0, failing = 0, not_run = 0;
};

Counts CountOf(const ProberSnapshot& s) {
  Counts c;
  for (const ProbeSnapshot& p : s.probes) {
    switch (HealthOf(p)) {
      case Health::kHealthy:
        ++c.healthy;
        break;
      case Health::kFailing:
        ++c.failing;
        break;
      case Health::kNotRun:
        ++c.not_run;
        break;
    }
  }
  return c;
}

// "12s", "3m", "5h", "2d": one unit, enough to know whether to worry.
std::string Span(std::chrono::system_clock::duration d) {
  const auto s = std::max<std::int64_t>(0, std::chrono::floor<std::chrono::seconds>(d).count());
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

// "2026-11-30T08:00:00Z" (whole seconds) for title attributes and <time datetime>.
std::string Utc(SystemTime t) { return GoRfc3339Nano(std::chrono::floor<std::chrono::seconds>(t)); }

// <time> with the absolute time on hover: "3m ago".
std::string Ago(SystemTime t, SystemTime now) {
  const std::string utc = Utc(t);
  return "<time datetime=\"" + utc + "\" title=\"" + utc + "\">" + Span(now - t) + " ago</time>";
}

std::string Interval(const ProbeSpec& spec) {
  if (spec.continuous()) return "continuous";
  return "every " + Span(spec.interval);
}

// A line of facts under the probe's name: what it last saw, where that helps.
std::string Note(const ProbeSnapshot& p, const ProberSnapshot& s) {
  switch (p.spec.kind) {
    case ProbeKind::kTls: {
      // Only the last run's own certificate: after "connection refused" there is none, and an
      // older run's days-left next to that error would read as if the server had answered.
      if (!p.last || !p.last->cert) return "";
      const CertFacts& cert = *p.last->cert;
      std::string note = CertNote(cert, s.now);
      if (!cert.tls_version.empty()) note += ", " + cert.tls_version;
      return note;
    }
    case ProbeKind::kBw:
      return p.last && p.last->ok ? BwNote(*p.last) : "";
    case ProbeKind::kQd:
      return std::to_string(p.qd.count) + " delays measured, " +
             std::to_string(p.qd.dropped_packets) + " packets dropped";
    case ProbeKind::kDerpMap:
      return MapSizeNote(s.regions, s.nodes);
    default:
      return "";
  }
}

// The last kHistoryLength runs as a fixed-size sparkline: latency of successful runs as a line
// (scaled to the window's slowest), each failed run a red bar; newest at the right.
std::string Sparkline(const ProbeSnapshot& p) {
  constexpr int kSlots = static_cast<int>(ProbeSnapshot::kHistoryLength);
  constexpr double kStep = 2, kWidth = kSlots * kStep, kHeight = 24, kPad = 2;
  const auto& h = p.history;
  const int n = static_cast<int>(std::min(h.size(), ProbeSnapshot::kHistoryLength));
  const std::size_t first = h.size() - static_cast<std::size_t>(n);
  nanoseconds max{0};
  std::vector<nanoseconds> good;
  for (std::size_t i = first; i < h.size(); ++i) {
    if (h[i].ok) {
      max = std::max(max, h[i].latency);
      good.push_back(h[i].latency);
    }
  }
  std::sort(good.begin(), good.end());
  std::string label = "Last " + std::to_string(n) + (n == 1 ? " run: " : " runs: ") +
                      std::to_string(good.size()) + " passed, " +
                      std::to_string(static_cast<std::size_t>(n) - good.size()) + " failed";
  if (!good.empty()) {
    label += "; latency min " + Millis(good.front()) + ", median " + Millis(good[good.size() / 2]) +
             ", max " + Millis(good.back());
  }
  const double scale =
      max.count() > 0 ? (kHeight - 2 * kPad) / static_cast<double>(max.count()) : 0;
  auto x = [&](std::size_t i) {
    return (kSlots - n + static_cast<int>(i - first)) * kStep + kStep / 2;
  };
  std::string body;
  std::vector<std::pair<double, double>> line;  // the current run of consecutive successes
  auto flush = [&] {
    if (line.size() == 1) {
      // A lone success between failures: a dot, since a one-point line draws nothing.
      body += "<circle class=\"pt\" cx=\"" + FormatNumber("%.1f", line[0].first) + "\" cy=\"" +
              FormatNumber("%.1f", line[0].second) + "\" r=\"1.2\"/>";
    } else if (line.size() > 1) {
      body += "<polyline class=\"ln\" points=\"";
      for (std::size_t i = 0; i < line.size(); ++i) {
        body += (i ? " " : "") + FormatNumber("%.1f", line[i].first) + "," +
                FormatNumber("%.1f", line[i].second);
      }
      body += "\"/>";
    }
    line.clear();
  };
  for (std::size_t i = first; i < h.size(); ++i) {
    if (h[i].ok) {
      line.emplace_back(x(i), kHeight - kPad - static_cast<double>(h[i].latency.count()) * scale);
    } else {
      flush();
      body += "<rect class=\"f\" x=\"" + FormatNumber("%.1f", x(i) - kStep / 2 + 0.25) +
              "\" y=\"0\" width=\"" + FormatNumber("%.1f", kStep - 0.5) + "\" height=\"" +
              FormatNumber("%.0f", kHeight) + "\"/>";
    }
  }
  flush();
  return "<svg class=\"spark\" width=\"" + FormatNumber("%.0f", kWidth) + "\" height=\"" +
         FormatNumber("%.0f", kHeight) + "\" viewBox=\"0 0 " + FormatNumber("%.0f", kWidth) + " " +
         FormatNumber("%.0f", kHeight) + "\" role=\"img\" aria-label=\"" + HtmlEscape(label) +
         "\"><title>" + HtmlEscape(label) + "</title>" + body + "</svg>";
}

constexpr const char* kStyle = R"css(
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--idle:#8c959f;--run:#0969da;
--muted:#57606a;--line:#d0d7de;--head:#f6f8fa;--badbg:#ffebe9}
@media (prefers-color-scheme:dark){:root{--ok:#3fb950;--bad:#f85149;--run:#58a6ff;
--muted:#8b949e;--line:#30363d;--head:#161b22;--badbg:#3a1d1d}}
*{box-sizing:border-box}
body{margin:0;padding:1rem;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:1.35rem;margin:0 0 .25rem}
.summary{font-size:1.15rem;font-weight:600;margin:.25rem 0}
.summary.bad{color:var(--bad)}.summary.good{color:var(--ok)}
.counts{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;list-style:none;margin:.4rem 0;padding:0}
.counts b{font-size:1.25rem;font-variant-numeric:tabular-nums}
.facts,.small{color:var(--muted);font-size:.85rem;margin:.2rem 0}
nav{margin:.5rem 0 1rem}nav a{margin-right:1rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);
border-radius:6px}
table{border-collapse:collapse;width:100%;min-width:56rem}
th,td{padding:.45rem .6rem;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{background:var(--head);font-size:.85rem;white-space:nowrap}
tr.failing td{background:var(--badbg)}
td.probe{min-width:17rem}.name{font-weight:600;white-space:nowrap}
.st{white-space:nowrap;font-weight:600}
.dot{display:inline-block;width:.75em;height:.75em;border-radius:50%;margin-right:.4em}
.healthy .dot{background:var(--ok)}.failing .dot{background:var(--bad)}
.notrun .dot{background:var(--idle)}.running .dot{background:var(--run)}
.failing .st{color:var(--bad)}
.num{white-space:nowrap;font-variant-numeric:tabular-nums}
.err{color:var(--bad);overflow-wrap:anywhere;min-width:16rem;max-width:36rem}
.spark{display:block}.spark .ln{fill:none;stroke:var(--run);stroke-width:1.2}
.spark .pt{fill:var(--run)}.spark .f{fill:var(--bad)}
form{display:inline;margin:0 0 0 .5rem}button{font:inherit;font-size:.75rem;padding:0 .5rem}
@media (max-width:47rem){
.scroll{overflow-x:visible;border:0}
table,tbody,tr,td{display:block;width:auto}table{min-width:0}thead{display:none}
tr{border:1px solid var(--line);border-radius:6px;margin:0 0 .6rem;overflow:hidden}
tr.failing{background:var(--badbg)}tr.failing td{background:none}
td{border-bottom:0;padding:.3rem .6rem}td:empty{display:none}
td:nth-child(3),td:nth-child(4),td:nth-child(5){display:inline-block;vertical-align:top}
td.probe{min-width:0}.name{white-space:normal;overflow-wrap:anywhere}
.err{min-width:0;max-width:none}
td:nth-child(n+3)::before{display:block;color:var(--muted);font-size:.75rem;font-weight:600}
td:nth-child(3)::before{content:"Latency"}td:nth-child(4)::before{content:"History"}
td:nth-child(5)::before{content:"Last passed"}td:nth-child(6)::before{content:"Last error"}
}
)css";

void Row(std::string& out, const ProbeSnapshot& p, const ProberSnapshot& s) {
  const Health health = HealthOf(p);
  const bool running = p.in_flight;
  std::string cls, word;
  switch (health) {
    case Health::kHealthy:
      cls = "healthy";
      word = p.spec.continuous() && running ? "running" : "ok";
      break;
    case Health::kFailing:
      cls = "failing";
      word = "failing";
      break;
    case Health::kNotRun:
      cls = running ? "running" : "notrun";
      word = running ? "running" : "not run";
      break;
  }
  out += "<tr class=\"" + cls + "\">";

  // Status, with the recent success ratio under it.
  out += "<td><span class=\"st\"><span class=\"dot\"></span>" + word + "</span>";
  if (const std::size_t n = std::min(p.history.size(), ProbeSnapshot::kRecentLength); n > 0) {
    const auto ok = static_cast<std::size_t>(p.RecentSuccessRatio() * static_cast<double>(n) + 0.5);
    out += "<div class=\"small num\" title=\"passed runs among the last " + std::to_string(n) +
           "\">" + std::to_string(ok) + "/" + std::to_string(n) + " ok</div>";
  }
  if (running && !p.spec.continuous() && p.last) out += "<div class=\"small\">running now</div>";
  out += "</td>";

  // Probe: name and "Run", class and labels, interval, a note.
  out += "<td class=\"probe\"><div><span class=\"name\">" + HtmlEscape(p.spec.name) + "</span>";
  if (!p.spec.continuous()) {
    out +=
        "<form method=\"get\" action=\"/debug/probe-run\"><input type=\"hidden\" "
        "name=\"name\" value=\"" +
        HtmlEscape(p.spec.name) + "\"><button type=\"submit\">Run</button></form>";
  }
  out += "</div><div class=\"small\">" + HtmlEscape(ClassLabel(p.spec.kind));
  for (const auto& [k, v] : p.spec.labels)
    out += " &middot; " + HtmlEscape(k) + "=" + HtmlEscape(v);
  out += " &middot; " + Interval(p.spec) + "</div>";
  if (const std::string note = Note(p, s); !note.empty()) {
    out += "<div class=\"small\">" + HtmlEscape(note) + "</div>";
  }
  out += "</td>\n";

  // Latency now, and the recent median.
  out += "<td class=\"num\">";
  out += p.last && p.last->ok ? Millis(p.last->latency) : "&ndash;";
  if (const nanoseconds median = p.RecentMedianLatency(); median.count() > 0) {
    out += "<div class=\"small\">median " + Millis(median) + "</div>";
  }
  out += "</td>";

  // History.
  out += "<td>";
  out += p.history.empty() ? "<span class=\"small\">no runs yet</span>" : Sparkline(p);
  out += "</td>";

  // Last passed.
  out += "<td class=\"num\">";
  if (p.last_pass) {
    out += Ago(*p.last_pass, s.now);
  } else if (p.spec.continuous() && p.in_flight && p.last_start) {
    // A continuous run only ends by failing: that it runs is the news.
    out += "running for " + Span(s.now - *p.last_start);
  } else {
    out += "never";
  }
  out += "</td>";

  // Last error (only while failing: an old error under a green dot only confuses).
  out += "<td>";
  if (health == Health::kFailing) {
    out += "<div class=\"err\">" + HtmlEscape(p.last->error) + "</div>";
    if (p.last_end) out += "<div class=\"small\">" + Ago(*p.last_end, s.now) + "</div>";
  }
  out += "</td></tr>\n";
}

}  // namespace

std::string SummaryLine(const ProberSnapshot& snapshot) {
  const Counts c = CountOf(snapshot);
  const std::size_t total = snapshot.probes.size();
  if (total == 0) return "No probes yet";
  auto probes = [](std::size_t n) { return n == 1 ? " probe" : " probes"; };
  std::string line;
  if (c.failing > 0) {
    line = std::to_string(c.failing) + " of " + std::to_string(total) + probes(total) +
           (c.failing == 1 ? " is failing" : " are failing");
  } else if (c.healthy == 0) {
    return total == 1 ? "The only probe has not run yet"
                      : "None of the " + std::to_string(total) + " probes has run yet";
  } else if (c.not_run == 0) {
    line = total == 1 ? "The only probe is healthy"
                      : "All " + std::to_string(total) + " probes are healthy";
  } else {
    line = std::to_string(c.healthy) + " of " + std::to_string(total) + probes(total) +
           (c.healthy == 1 ? " is healthy" : " are healthy");
  }
  if (c.not_run > 0) {
    line += ", " + std::to_string(c.not_run) + (c.not_run == 1 ? " has" : " have") + " not run yet";
  }
  return line;
}

std::string RenderStatusPage(const ProberSnapshot& snapshot, const StatusPageOptions& options) {
  const Counts c = CountOf(snapshot);
  std::string out;
  out.reserve(4096 + snapshot.probes.size() * 2048);
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<meta http-equiv=\"refresh\" content=\"" +
         std::to_string(std::max<std::int64_t>(1, options.refresh.count())) + "\">\n";
  out += "<title>DERP prober: " +
         (c.failing > 0 ? std::to_string(c.failing) + " failing" : std::string("healthy")) +
         "</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n<header>\n";
  out += "<h1>DERP prober</h1>\n";
  out += std::string("<p class=\"summary ") + (c.failing > 0 ? "bad" : "good") + "\">" +
         HtmlEscape(SummaryLine(snapshot)) + "</p>\n";
  out += "<ul class=\"counts\"><li><b>" + std::to_string(c.healthy) + "</b> healthy</li><li><b>" +
         std::to_string(c.failing) + "</b> failing</li><li><b>" + std::to_string(c.not_run) +
         "</b> not run</li></ul>\n";

  // Map facts: where it came from, how big, how fresh.
  out += "<p class=\"facts\">Map " +
         (snapshot.map_source.empty() ? std::string("(no source)")
                                      : "<b>" + HtmlEscape(snapshot.map_source) + "</b>") +
         " &middot; " + Counted(snapshot.regions, "region", "regions") + " &middot; " +
         Counted(snapshot.nodes, "node", "nodes") + " &middot; fetched " +
         (snapshot.map_fetched ? Ago(*snapshot.map_fetched, snapshot.now) : "never") + "</p>\n";
  out += "<p class=\"facts\">derp-probe " + HtmlEscape(snapshot.version) + " &middot; up " +
         Span(snapshot.now - snapshot.started) + " &middot; as of " + Utc(snapshot.now) +
         " &middot; refreshes every " + std::to_string(options.refresh.count()) + "s</p>\n";
  out +=
      "<nav><a href=\"/metrics\">Metrics</a><a href=\"/debug/probe-all\">Run all probes "
      "(JSON)</a></nav>\n</header>\n<main>\n";

  // Failing first, then by name.
  std::vector<const ProbeSnapshot*> rows;
  for (const ProbeSnapshot& p : snapshot.probes) rows.push_back(&p);
  std::stable_sort(rows.begin(), rows.end(), [](const ProbeSnapshot* a, const ProbeSnapshot* b) {
    const bool fa = HealthOf(*a) == Health::kFailing, fb = HealthOf(*b) == Health::kFailing;
    if (fa != fb) return fa;
    return a->spec.name < b->spec.name;
  });
  out +=
      "<div class=\"scroll\">\n<table>\n<thead><tr><th>Status</th><th>Probe</th>"
      "<th>Latency</th><th>History</th><th>Last passed</th><th>Last error</th></tr>"
      "</thead>\n<tbody>\n";
  for (const ProbeSnapshot* p : rows) Row(out, *p, snapshot);
  if (rows.empty()) {
    out += "<tr><td colspan=\"6\">No probes yet: the DERP map has not been loaded.</td></tr>\n";
  }
  out += "</tbody>\n</table>\n</div>\n</main>\n</body>\n</html>\n";
  return out;
}

}  // namespace derpkit::probe
