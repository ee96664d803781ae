// The daemon's status page from hand-built snapshots: the failing probe by name with its error
// escaped, one sparkline per probe with history, the counts and summary, failing rows first, the
// Run forms, the links, and that the page is self-contained (no script, nothing fetched).
#include "probe/status_page.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using fixtures::Find;
using fixtures::Now;
using fixtures::RichSnapshot;

std::size_t Count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// The <tr> of the probe named `name`.
std::string RowOf(const std::string& page, const std::string& name) {
  const auto at = page.find("<span class=\"name\">" + name + "</span>");
  if (at == std::string::npos) return "";
  const auto start = page.rfind("<tr", at);
  return page.substr(start, page.find("</tr>", at) - start);
}

TEST(StatusPage, ShowsTheFailingProbeAndItsErrorAsText) {
  const std::string page = RenderStatusPage(RichSnapshot(), {});
  const std::string row = RowOf(page, "derp/test-b/2a/tls");
  ASSERT_FALSE(row.empty());
  EXPECT_NE(row.find("<tr class=\"failing\">"), std::string::npos);
  // Go's html.EscapeString bytes (&#34; for the quote), as the relay's derper pages.
  EXPECT_NE(row.find("TLS handshake with derp-2a.test: &lt;script&gt;alert(&#34;x&#34;)&lt;/"
                     "script&gt; &amp; more"),
            std::string::npos)
      << row;
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(RowOf(page, "derp/test-b/2a/udp").find(fixtures::kStunError), std::string::npos);
  // A healthy row shows no error, even when an earlier run of it failed.
  const std::string mesh = RowOf(page, "derp/test-a/1a/1b/mesh");
  ASSERT_FALSE(mesh.empty());
  EXPECT_EQ(mesh.find("class=\"err\""), std::string::npos);
}

TEST(StatusPage, EscapesNamesLabelsAndMapSource) {
  ProberSnapshot s = RichSnapshot();
  s.map_source = "https://x.test/map?a=1&b=<2>";
  s.probes[1].spec.labels.emplace_back("hostname", "\"evil\"<b>");
  const std::string page = RenderStatusPage(s, {});
  EXPECT_NE(page.find("https://x.test/map?a=1&amp;b=&lt;2&gt;"), std::string::npos);
  EXPECT_NE(page.find("hostname=&#34;evil&#34;&lt;b&gt;"), std::string::npos);
  EXPECT_EQ(page.find("<b>\"evil\""), std::string::npos);
  EXPECT_EQ(page.find("<2>"), std::string::npos);
}

TEST(StatusPage, OneSparklinePerProbeWithHistory) {
  const ProberSnapshot s = RichSnapshot();
  std::size_t with_history = 0;
  for (const auto& p : s.probes) with_history += p.history.empty() ? 0 : 1;
  ASSERT_EQ(with_history, 17u);  // 23 minus the never-run mesh and the five qd probes
  const std::string page = RenderStatusPage(s, {});
  EXPECT_EQ(Count(page, "<svg "), with_history);
  EXPECT_EQ(Count(page, "no runs yet"), s.probes.size() - with_history);

  // The 2a tls row: 60 runs, the last three failed, drawn as three red marks after a line.
  const std::string row = RowOf(page, "derp/test-b/2a/tls");
  EXPECT_EQ(Count(row, "<rect class=\"f\""), 3u);
  EXPECT_EQ(Count(row, "<polyline"), 1u);
  EXPECT_NE(row.find("aria-label=\"Last 60 runs: 57 passed, 3 failed; latency min 1.0ms, median "
                     "1.2ms, max 1.4ms\""),
            std::string::npos)
      << row;
  EXPECT_NE(row.find("width=\"120\" height=\"24\" viewBox=\"0 0 120 24\""), std::string::npos);
  // The udp row fails at run 20 and 59 of 60: two lines around the first mark.
  EXPECT_EQ(Count(RowOf(page, "derp/test-b/2a/udp"), "<polyline"), 2u);
}

TEST(StatusPage, SparklineKeepsTheNewestRunAtTheRightAndScalesToTheSlowest) {
  ProberSnapshot s;
  s.now = Now();
  ProbeSnapshot p;
  p.spec.name = "derp/x/1/tls";
  fixtures::Record(p, Now() - 20s, true, 2ms);
  fixtures::Record(p, Now() - 10s, false, 0ms, "down");
  fixtures::Record(p, Now() - 5s, true, 1ms);
  s.probes.push_back(p);
  const std::string page = RenderStatusPage(s, {});
  // Slots are 2 px wide in 120 px: the three runs fill the last three slots (centres 115, 117,
  // 119). The slowest (2 ms) touches the top padding (y 2), 1 ms sits half way (y 12).
  EXPECT_NE(page.find("<circle class=\"pt\" cx=\"115.0\" cy=\"2.0\""), std::string::npos) << page;
  EXPECT_NE(page.find("<rect class=\"f\" x=\"116.2\""), std::string::npos);
  EXPECT_NE(page.find("<circle class=\"pt\" cx=\"119.0\" cy=\"12.0\""), std::string::npos);
}

TEST(StatusPage, HeaderHasSummaryCountsAndMapFacts) {
  const ProberSnapshot s = RichSnapshot();
  EXPECT_EQ(SummaryLine(s), "2 of 23 probes are failing, 1 has not run yet");
  const std::string page = RenderStatusPage(s, {});
  EXPECT_NE(page.find("<h1>DERP prober</h1>"), std::string::npos);
  EXPECT_NE(page.find("<p class=\"summary bad\">2 of 23 probes are failing, 1 has not run yet</p>"),
            std::string::npos);
  EXPECT_NE(page.find("<b>20</b> healthy"), std::string::npos);
  EXPECT_NE(page.find("<b>2</b> failing"), std::string::npos);
  EXPECT_NE(page.find("<b>1</b> not run"), std::string::npos);
  EXPECT_NE(page.find("file:///etc/derp-probe/derpmap.json"), std::string::npos);
  EXPECT_NE(page.find("2 regions &middot; 3 nodes &middot; fetched <time "
                      "datetime=\"2026-11-30T07:59:48Z\" title=\"2026-11-30T07:59:48Z\">12s "
                      "ago</time>"),
            std::string::npos);
  EXPECT_NE(page.find("up 3h"), std::string::npos);
  EXPECT_NE(page.find("<title>DERP prober: 2 failing</title>"), std::string::npos);
}

TEST(StatusPage, SummaryLineWordsEveryCase) {
  ProberSnapshot s;
  EXPECT_EQ(SummaryLine(s), "No probes yet");
  ProbeSnapshot p;
  p.spec.name = "a";
  s.probes.push_back(p);
  EXPECT_EQ(SummaryLine(s), "The only probe has not run yet");
  s.probes.push_back(p);
  EXPECT_EQ(SummaryLine(s), "None of the 2 probes has run yet");
  s.probes.pop_back();
  fixtures::Record(s.probes[0], Now(), true, 1ms);
  EXPECT_EQ(SummaryLine(s), "The only probe is healthy");
  s.probes.push_back(p);
  s.probes.push_back(p);
  fixtures::Record(s.probes[1], Now(), true, 1ms);
  fixtures::Record(s.probes[2], Now(), true, 1ms);
  EXPECT_EQ(SummaryLine(s), "All 3 probes are healthy");
  fixtures::Record(s.probes[2], Now(), false, 0ms, "x");
  EXPECT_EQ(SummaryLine(s), "1 of 3 probes is failing");
  s.probes.push_back(p);
  s.probes.push_back(p);
  EXPECT_EQ(SummaryLine(s), "1 of 5 probes is failing, 2 have not run yet");
  fixtures::Record(s.probes[2], Now(), true, 1ms);
  EXPECT_EQ(SummaryLine(s), "3 of 5 probes are healthy, 2 have not run yet");
  const std::string page = RenderStatusPage(s, {});
  EXPECT_NE(page.find("<p class=\"summary good\">"), std::string::npos);
}

TEST(StatusPage, FailingRowsFirstThenByName) {
  const std::string page = RenderStatusPage(RichSnapshot(), {});
  std::vector<std::string> names;
  const std::regex name_re("<span class=\"name\">([^<]*)</span>");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), name_re);
       it != std::sregex_iterator(); ++it) {
    names.push_back((*it)[1]);
  }
  ASSERT_EQ(names.size(), 23u);
  EXPECT_EQ(names[0], "derp/test-b/2a/tls");
  EXPECT_EQ(names[1], "derp/test-b/2a/udp");
  EXPECT_TRUE(std::is_sorted(names.begin() + 2, names.end()));
  EXPECT_EQ(names[2], "derp/test-a/1a/1a/bw");
}

TEST(StatusPage, RowFacts) {
  const std::string page = RenderStatusPage(RichSnapshot(), {});
  // Never ran: grey, "never" passed, no sparkline.
  const std::string never = RowOf(page, "derp/test-b/2a/2a/mesh");
  EXPECT_NE(never.find("<tr class=\"notrun\">"), std::string::npos);
  EXPECT_NE(never.find("not run"), std::string::npos);
  EXPECT_NE(never.find(">never<"), std::string::npos);
  // Healthy tls: latency now (the last of 1.0..1.4 ms cycling: run 59 -> 1.4 ms), last passed 5s
  // ago, the certificate's days left, 10 of 10 ok.
  const std::string tls = RowOf(page, "derp/test-a/1a/tls");
  EXPECT_NE(tls.find("<td class=\"num\">1.4ms"), std::string::npos) << tls;
  EXPECT_NE(tls.find(">5s ago</time>"), std::string::npos);
  EXPECT_NE(tls.find("cert derp-1a.test, 89 days left, TLSv1.3"), std::string::npos);
  EXPECT_NE(tls.find(">10/10 ok<"), std::string::npos);
  EXPECT_NE(tls.find("region=test-a &middot; region_id=1"), std::string::npos);
  EXPECT_NE(RowOf(page, "derp/test-a/1b/tls").find("300 days left, pinned"), std::string::npos);
  // Failing tls: last passed 3 runs (45 s) before its last run, which ended 5 s ago; 7 of the
  // last 10 ok.
  const std::string bad = RowOf(page, "derp/test-b/2a/tls");
  EXPECT_NE(bad.find(">50s ago</time>"), std::string::npos) << bad;
  EXPECT_NE(bad.find(">7/10 ok<"), std::string::npos);
  EXPECT_NE(bad.find("<td class=\"num\">&ndash;"), std::string::npos);
  // bw: the transfer in words; qd: running, continuous, no Run button.
  EXPECT_NE(RowOf(page, "derp/test-a/1a/1b/bw").find("1.0 MB in 12.3ms (650 Mbit/s)"),
            std::string::npos);
  const std::string qd = RowOf(page, "derp/test-a/1a/1b/qd");
  EXPECT_NE(qd.find("<tr class=\"healthy\">"), std::string::npos);
  EXPECT_NE(qd.find("running"), std::string::npos);
  EXPECT_NE(qd.find("continuous"), std::string::npos);
  EXPECT_NE(qd.find("8 delays measured, 4 packets dropped"), std::string::npos);
  EXPECT_EQ(qd.find("<form"), std::string::npos);
  EXPECT_NE(qd.find(">running for 1h<"), std::string::npos);
}

// The failing 2a tls row's last run saw no certificate (its error is the handshake's), so the
// certificate of an earlier run (p.cert) is not shown under it; a run that saw one shows it.
TEST(StatusPage, CertificateNoteComesOnlyFromTheLastRun) {
  ProberSnapshot s = RichSnapshot();
  ProbeSnapshot* bad = Find(s, "derp/test-b/2a/tls");
  ASSERT_TRUE(bad->cert.has_value());
  ASSERT_FALSE(bad->last->cert.has_value());
  std::string row = RowOf(RenderStatusPage(s, {}), "derp/test-b/2a/tls");
  ASSERT_FALSE(row.empty());
  EXPECT_EQ(row.find("cert derp-2a.test"), std::string::npos) << row;
  EXPECT_EQ(row.find("days left"), std::string::npos) << row;

  // Refused after a good run: the good run's note goes with it.
  ProbeSnapshot* good = Find(s, "derp/test-a/1a/tls");
  fixtures::Record(*good, Now(), false, 0ms, "1a (127.0.1.1:443): connect: Connection refused");
  row = RowOf(RenderStatusPage(s, {}), "derp/test-a/1a/tls");
  EXPECT_NE(row.find("Connection refused"), std::string::npos) << row;
  EXPECT_EQ(row.find("cert derp-1a.test"), std::string::npos) << row;

  // A failing run that did see a certificate (it expired a day ago) names it.
  bad->last->cert = fixtures::Cert("derp-2a.test", -20h, false);
  row = RowOf(RenderStatusPage(s, {}), "derp/test-b/2a/tls");
  EXPECT_NE(row.find("cert derp-2a.test, expired 1 day ago, TLSv1.3"), std::string::npos) << row;
}

TEST(StatusPage, OneRegionOneNodeInTheSingular) {
  ProberSnapshot s = RichSnapshot();
  s.regions = 1;
  s.nodes = 1;
  const std::string page = RenderStatusPage(s, {});
  EXPECT_NE(RowOf(page, "derpmap-probe").find("<div class=\"small\">1 region, 1 node</div>"),
            std::string::npos)
      << RowOf(page, "derpmap-probe");
  EXPECT_NE(page.find(" &middot; 1 region &middot; 1 node &middot; "), std::string::npos);
  EXPECT_EQ(page.find("1 regions"), std::string::npos);
  EXPECT_EQ(page.find("1 nodes"), std::string::npos);
  s.regions = 2;
  s.nodes = 3;
  EXPECT_NE(RowOf(RenderStatusPage(s, {}), "derpmap-probe").find("2 regions, 3 nodes"),
            std::string::npos);
}

// On a narrow screen the table becomes one card per probe, cells stacked and labelled, so the
// error wraps inside the screen (tests/unit/probe_report/status_page_browser_test.cc measures it
// in a real browser). Here: the rules are there, and each label names the column it replaces.
TEST(StatusPage, NarrowScreensStackTheCells) {
  const std::string page = RenderStatusPage(RichSnapshot(), {});
  const auto media = page.find("@media (max-width:47rem){");
  ASSERT_NE(media, std::string::npos);
  const std::string narrow = page.substr(media, page.find("\n}\n", media) - media);
  for (const char* rule :
       {"table,tbody,tr,td{display:block", "table{min-width:0}", "thead{display:none}",
        ".err{min-width:0;max-width:none}", "td:empty{display:none}"}) {
    EXPECT_NE(narrow.find(rule), std::string::npos) << rule;
  }
  const std::string head =
      "<thead><tr><th>Status</th><th>Probe</th><th>Latency</th><th>History"
      "</th><th>Last passed</th><th>Last error</th></tr></thead>";
  ASSERT_NE(page.find(head), std::string::npos);
  int column = 3;
  for (const char* label : {"Latency", "History", "Last passed", "Last error"}) {
    EXPECT_NE(narrow.find("td:nth-child(" + std::to_string(column++) + ")::before{content:\"" +
                          label + "\"}"),
              std::string::npos)
        << label;
  }
  // The error is the sixth cell of a failing row, and a healthy row's sixth cell is empty (hidden).
  const std::string bad = RowOf(page, "derp/test-b/2a/tls");
  EXPECT_NE(bad.find("<td><div class=\"err\">"), std::string::npos);
  EXPECT_TRUE(RowOf(page, "derp/test-a/1a/tls").ends_with("<td></td>"));
}

TEST(StatusPage, RunFormForEveryNonContinuousProbe) {
  const ProberSnapshot s = RichSnapshot();
  const std::string page = RenderStatusPage(s, {});
  std::size_t periodic = 0;
  for (const auto& p : s.probes) periodic += p.spec.continuous() ? 0 : 1;
  EXPECT_EQ(periodic, 18u);
  EXPECT_EQ(Count(page, "<form method=\"get\" action=\"/debug/probe-run\">"), periodic);
  EXPECT_NE(page.find("<input type=\"hidden\" name=\"name\" value=\"derp/test-a/1a/udp6\">"
                      "<button type=\"submit\">Run</button>"),
            std::string::npos);
}

TEST(StatusPage, SelfContainedAndPhoneFriendly) {
  StatusPageOptions options;
  options.refresh = std::chrono::seconds{30};
  const std::string page = RenderStatusPage(RichSnapshot(), options);
  EXPECT_TRUE(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
  EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(page.find("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
            std::string::npos);
  EXPECT_NE(page.find("<meta http-equiv=\"refresh\" content=\"30\">"), std::string::npos);
  EXPECT_NE(page.find("<div class=\"scroll\">"), std::string::npos);
  EXPECT_NE(page.find(".scroll{overflow-x:auto"), std::string::npos);
  EXPECT_NE(page.find("<a href=\"/metrics\">"), std::string::npos);
  EXPECT_NE(page.find("<a href=\"/debug/probe-all\">"), std::string::npos);
  // Nothing runs and nothing is fetched: no script, no external stylesheet/image/font.
  for (const char* bad : {"<script", "<link", "<img", "<iframe", "@import", "url(",
                          "src=", "javascript:", "onclick", "http://", "https://"}) {
    EXPECT_EQ(page.find(bad), std::string::npos) << bad;
  }
  // Every row and cell is closed.
  EXPECT_EQ(Count(page, "<tr"), Count(page, "</tr>"));
  EXPECT_EQ(Count(page, "<td"), Count(page, "</td>"));
  EXPECT_EQ(Count(page, "<svg "), Count(page, "</svg>"));
  EXPECT_TRUE(page.ends_with("</html>\n"));
}

TEST(StatusPage, EmptyProberSaysSo) {
  ProberSnapshot s;
  s.now = Now();
  s.started = Now();
  const std::string page = RenderStatusPage(s, {});
  EXPECT_NE(page.find("No probes yet: the DERP map has not been loaded."), std::string::npos);
  EXPECT_NE(page.find("fetched never"), std::string::npos);
}

// Keeps the rich snapshot's page as a build artifact (for a look in a browser, and for the README).
TEST(StatusPage, WritesSampleArtifact) {
  const std::filesystem::path dir = std::filesystem::path(DERPKIT_BINARY_DIR) / "artifacts";
  std::filesystem::create_directories(dir);
  const std::string page = RenderStatusPage(RichSnapshot(), {});
  const auto path = dir / "probe_report_status_page.html";
  std::ofstream(path, std::ios::binary) << page;
  EXPECT_EQ(std::filesystem::file_size(path), page.size());
}

}  // namespace
}  // namespace derpkit::probe
