// derp-probe --once output from hand-built snapshots: the table's columns line up (also with
// colour and the "→" of pair probes), rows are in region/node/probe order with the map probe
// last, success notes and errors say the right things, the summary line is last; the JSON parses
// and carries the same facts; RunFailed honours --fail-on.
#include "probe/once_report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using fixtures::Find;
using fixtures::Now;
using fixtures::RichSnapshot;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Code points, so "→" (3 bytes) is one column as a terminal shows it.
std::u32string Columns(const std::string& utf8) {
  std::u32string out;
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    const std::size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    char32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (utf8[i + k] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

// Where each header word starts; every row's cells must start exactly there, preceded by blanks.
void ExpectAligned(const std::vector<std::string>& lines) {
  const std::u32string header = Columns(lines[0]);
  std::vector<std::size_t> starts;
  for (const char32_t* word : {U"REGION", U"NODE", U"PROBE", U"STATUS", U"LATENCY", U"ERROR"}) {
    starts.push_back(header.find(word));
    ASSERT_NE(starts.back(), std::u32string::npos);
  }
  ASSERT_EQ(starts[0], 0u);
  for (std::size_t r = 1; r + 1 < lines.size(); ++r) {
    const std::u32string row = Columns(lines[r]);
    for (std::size_t c = 0; c < starts.size(); ++c) {
      const std::size_t at = starts[c];
      if (c == starts.size() - 1 && row.size() <= at) continue;  // no ERROR text on this row
      ASSERT_GT(row.size(), at) << lines[r];
      EXPECT_NE(row[at], U' ') << "row " << r << " column " << c << ": " << lines[r];
      if (c > 0) {
        EXPECT_EQ(row[at - 1], U' ') << lines[r];
        EXPECT_EQ(row[at - 2], U' ') << lines[r];
      }
    }
    EXPECT_NE(row.back(), U' ') << "trailing blank: " << lines[r];
  }
}

std::string StripAnsi(const std::string& text) {
  return std::regex_replace(text, std::regex("\x1b\\[[0-9;]*m"), "");
}

TEST(OnceTable, ColumnsLineUp) {
  const auto lines = Lines(RenderOnceTable(RichSnapshot(), {}));
  ASSERT_EQ(lines.size(), 1u + 23u + 1u);
  EXPECT_EQ(lines[0], "REGION  NODE   PROBE    STATUS  LATENCY  ERROR");
  ExpectAligned(lines);
}

TEST(OnceTable, ColumnsLineUpWithColour) {
  const std::string coloured = RenderOnceTable(RichSnapshot(), {.colour = true});
  EXPECT_NE(coloured.find("\x1b[31mFAIL\x1b[0m"), std::string::npos);
  EXPECT_NE(coloured.find("\x1b[32mok\x1b[0m"), std::string::npos);
  EXPECT_EQ(StripAnsi(coloured), RenderOnceTable(RichSnapshot(), {}));
  EXPECT_EQ(RenderOnceTable(RichSnapshot(), {}).find('\x1b'), std::string::npos);
}

TEST(OnceTable, RowsAndNotes) {
  const auto lines = Lines(RenderOnceTable(RichSnapshot(), {}));
  EXPECT_EQ(lines[1], "test-a  1a     tls      ok      1.4ms    cert derp-1a.test, 89 days left");
  EXPECT_EQ(lines[2], "test-a  1a     udp      ok      1.4ms");
  EXPECT_EQ(lines[3], "test-a  1a     udp6     ok      1.4ms");
  EXPECT_EQ(lines[4], "test-a  1a\u21921a  mesh     ok      1.4ms");
  EXPECT_EQ(lines[5],
            "test-a  1a\u21921a  bw       ok      12.3ms   1.0 MB in 12.3ms (650 Mbit/s)");
  EXPECT_EQ(lines[6],
            "test-a  1a\u21921a  qd       FAIL    -        still running: p50 \u2264 10.0ms, 4 "
            "dropped");
  EXPECT_EQ(lines[10],
            "test-a  1b     tls      ok      1.4ms    cert derp-1b.test, 300 days left, pinned");
  EXPECT_EQ(lines[18],
            "test-b  2a     tls      FAIL    -        TLS handshake with derp-2a.test: "
            "<script>alert(\"x\")</script> & more");
  EXPECT_EQ(lines[19],
            std::string("test-b  2a     udp      FAIL    -        ") + fixtures::kStunError);
  EXPECT_EQ(lines[20], "test-b  2a\u21922a  mesh     FAIL    -        did not run");
  EXPECT_EQ(lines[23], "-       -      derpmap  ok      3.1ms    2 regions, 3 nodes");
}

TEST(OnceTable, SummaryLineIsLast) {
  const auto lines = Lines(RenderOnceTable(RichSnapshot(), {}));
  EXPECT_EQ(lines.back(),
            "15 of 23 probes passed; 8 failed: derp/test-a/1a/1a/qd, derp/test-a/1a/1b/qd, "
            "derp/test-a/1b/1a/qd, derp/test-a/1b/1b/qd, derp/test-b/2a/2a/mesh, "
            "derp/test-b/2a/2a/qd, derp/test-b/2a/tls, derp/test-b/2a/udp");

  // All passing; and many failures are cut after ten names.
  ProberSnapshot s;
  s.now = Now();
  for (int i = 0; i < 12; ++i) {
    ProbeSnapshot p;
    p.spec.name = "p" + std::to_string(10 + i);
    p.spec.region_code = "r";
    p.spec.from.name = "n";
    fixtures::Record(p, Now(), true, 1ms);
    s.probes.push_back(p);
  }
  EXPECT_EQ(Lines(RenderOnceTable(s, {})).back(), "12 of 12 probes passed");
  for (auto& p : s.probes) fixtures::Record(p, Now(), false, 0ms, "down");
  EXPECT_EQ(Lines(RenderOnceTable(s, {})).back(),
            "0 of 12 probes passed; 12 failed: p10, p11, p12, p13, p14, p15, p16, p17, p18, p19 "
            "and 2 more");
}

TEST(OnceTable, ErrorsStayOnOneLine) {
  ProberSnapshot s = RichSnapshot();
  Find(s, "derp/test-b/2a/udp")->last->error = "line one\nline two\tthree";
  const std::string table = RenderOnceTable(s, {});
  EXPECT_EQ(Lines(table).size(), 25u);
  EXPECT_NE(table.find("line one line two three"), std::string::npos);
}

TEST(OnceTable, ExpiredCertificateAndSlowBandwidth) {
  ProberSnapshot s = RichSnapshot();
  ProbeSnapshot* tls = Find(s, "derp/test-a/1a/tls");
  tls->last->cert = fixtures::Cert("old.test", -49h, false);
  ProbeSnapshot* bw = Find(s, "derp/test-a/1a/1b/bw");
  bw->last->bw_bytes = 1500;
  bw->last->bw_transfer_time = 2s;
  const std::string table = RenderOnceTable(s, {});
  EXPECT_NE(table.find("cert old.test, expired 3 days ago"), std::string::npos) << table;
  EXPECT_NE(table.find("1.5 kB in 2000.0ms (0.0 Mbit/s)"), std::string::npos) << table;
}

// A failing tls run that saw no certificate ("connection refused") says nothing of an older run's
// certificate: neither in the table nor in the JSON. One that saw a certificate reports it.
TEST(OnceReport, CertificateFactsComeOnlyFromTheLastRun) {
  ProberSnapshot s = RichSnapshot();
  ProbeSnapshot* tls = Find(s, "derp/test-a/1a/tls");
  ASSERT_TRUE(tls->cert.has_value());
  fixtures::Record(*tls, Now(), false, 0ms, "1a (127.0.1.1:443): connect: Connection refused");
  ASSERT_FALSE(tls->last->cert.has_value());
  const std::string table = RenderOnceTable(s, {});
  EXPECT_EQ(table.find("cert derp-1a.test"), std::string::npos) << table;
  EXPECT_NE(table.find("FAIL    -        1a (127.0.1.1:443): connect: Connection refused"),
            std::string::npos)
      << table;
  auto j = nlohmann::json::parse(RenderOnceJson(s));
  auto row = std::find_if(j["probes"].begin(), j["probes"].end(),
                          [](const auto& p) { return p["name"] == "derp/test-a/1a/tls"; });
  ASSERT_NE(row, j["probes"].end());
  EXPECT_FALSE(row->contains("cert")) << row->dump();

  // A passing run without certificate facts (none recorded) has no note either.
  fixtures::Record(*tls, Now(), true, 1ms);
  EXPECT_EQ(RenderOnceTable(s, {}).find("cert derp-1a.test"), std::string::npos);
  // The run's own certificate, also an expired one (a day ago: singular).
  tls->last->cert = fixtures::Cert("derp-1a.test", -20h, false);
  EXPECT_NE(RenderOnceTable(s, {}).find("cert derp-1a.test, expired 1 day ago"), std::string::npos);
  j = nlohmann::json::parse(RenderOnceJson(s));
  row = std::find_if(j["probes"].begin(), j["probes"].end(),
                     [](const auto& p) { return p["name"] == "derp/test-a/1a/tls"; });
  EXPECT_EQ((*row)["cert"]["days_left"], -1);
}

TEST(OnceTable, OneRegionOneNodeInTheSingular) {
  ProberSnapshot s = RichSnapshot();
  s.regions = 1;
  s.nodes = 1;
  EXPECT_NE(RenderOnceTable(s, {}).find("derpmap  ok      3.1ms    1 region, 1 node\n"),
            std::string::npos);
}

TEST(OnceJson, ParsesWithTheDocumentedKeys) {
  const auto j = nlohmann::json::parse(RenderOnceJson(RichSnapshot()));
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["passed"], 15);
  EXPECT_EQ(j["failed"], 8);
  EXPECT_EQ(j["map"]["regions"], 2);
  EXPECT_EQ(j["map"]["fetched"], "2026-11-30T07:59:48Z");
  ASSERT_EQ(j["probes"].size(), 23u);
  for (const auto& p : j["probes"]) {
    for (const char* key : {"name", "class", "kind", "region", "region_id", "node", "to",
                            "hostname", "ok", "latency_ms", "error", "start", "end"}) {
      EXPECT_TRUE(p.contains(key)) << key << " in " << p.dump();
    }
    EXPECT_EQ(p["ok"].get<bool>(), p["error"].is_null()) << p.dump();
    EXPECT_EQ(p["ok"].get<bool>(), p["latency_ms"].is_number()) << p.dump();
  }
  const auto& tls = j["probes"][0];
  EXPECT_EQ(tls["name"], "derp/test-a/1a/tls");
  EXPECT_EQ(tls["class"], "tls");
  EXPECT_EQ(tls["region"], "test-a");
  EXPECT_EQ(tls["region_id"], 1);
  EXPECT_EQ(tls["hostname"], "derp-1a.test");
  EXPECT_TRUE(tls["to"].is_null());
  EXPECT_DOUBLE_EQ(tls["latency_ms"].get<double>(), 1.4);
  EXPECT_EQ(tls["end"], "2026-11-30T07:59:55Z");
  EXPECT_EQ(tls["start"], "2026-11-30T07:59:54.9986Z");
  EXPECT_EQ(tls["cert"]["days_left"], 89);
  EXPECT_EQ(tls["cert"]["pinned"], false);
  EXPECT_EQ(tls["cert"]["not_after"], "2027-02-27T13:00:00Z");

  const auto& mesh = j["probes"][3];
  EXPECT_EQ(mesh["name"], "derp/test-a/1a/1a/mesh");
  EXPECT_EQ(mesh["class"], "derp_mesh");
  EXPECT_EQ(mesh["to"], "1a");
  const auto& bw = j["probes"][4];
  EXPECT_EQ(bw["bw"]["bytes"], 1000000);
  EXPECT_DOUBLE_EQ(bw["bw"]["transfer_seconds"].get<double>(), 0.0123);
  const auto& bad = j["probes"][17];
  EXPECT_EQ(bad["name"], "derp/test-b/2a/tls");
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["error"], fixtures::kScriptError);
  const auto& map = j["probes"].back();
  EXPECT_EQ(map["name"], "derpmap-probe");
  EXPECT_EQ(map["class"], "derp_map");
  EXPECT_TRUE(map["region"].is_null());
  EXPECT_TRUE(map["region_id"].is_null());
  EXPECT_TRUE(map["node"].is_null());
  EXPECT_EQ(map["note"], "2 regions, 3 nodes");
}

TEST(OnceJson, InvalidUtf8InAnErrorDoesNotThrow) {
  ProberSnapshot s = RichSnapshot();
  Find(s, "derp/test-b/2a/udp")->last->error = "bad \xff\xfe bytes";
  std::string out;
  ASSERT_NO_THROW(out = RenderOnceJson(s));
  EXPECT_TRUE(nlohmann::json::accept(out));
}

TEST(RunFailed, HonoursFailOn) {
  const ProberSnapshot s = RichSnapshot();
  EXPECT_TRUE(RunFailed(s, {}));
  EXPECT_TRUE(RunFailed(s, {ProbeKind::kTls}));
  EXPECT_TRUE(RunFailed(s, {ProbeKind::kUdp}));
  EXPECT_TRUE(RunFailed(s, {ProbeKind::kMesh}));  // 2a→2a never ran: that counts as failed
  EXPECT_TRUE(RunFailed(s, {ProbeKind::kQd}));    // still running: did not finish
  EXPECT_FALSE(RunFailed(s, {ProbeKind::kUdp6}));
  EXPECT_FALSE(RunFailed(s, {ProbeKind::kBw}));
  EXPECT_FALSE(RunFailed(s, {ProbeKind::kDerpMap, ProbeKind::kUdp6, ProbeKind::kBw}));
  EXPECT_TRUE(RunFailed(s, {ProbeKind::kBw, ProbeKind::kTls}));

  ProberSnapshot good;
  for (const auto& p : s.probes) {
    if (p.last && p.last->ok) good.probes.push_back(p);
  }
  ASSERT_EQ(good.probes.size(), 15u);
  EXPECT_FALSE(RunFailed(good, {}));
  EXPECT_EQ(nlohmann::json::parse(RenderOnceJson(good))["ok"], true);
}

// Keeps the rich snapshot's table and JSON as build artifacts (for the README and a look).
TEST(OnceTable, WritesSampleArtifacts) {
  const std::filesystem::path dir = std::filesystem::path(DERPKIT_BINARY_DIR) / "artifacts";
  std::filesystem::create_directories(dir);
  const std::string table = RenderOnceTable(RichSnapshot(), {});
  const std::string json = RenderOnceJson(RichSnapshot());
  std::ofstream(dir / "probe_report_once.txt", std::ios::binary) << table;
  std::ofstream(dir / "probe_report_once.json", std::ios::binary) << json;
  EXPECT_EQ(std::filesystem::file_size(dir / "probe_report_once.txt"), table.size());
  EXPECT_EQ(std::filesystem::file_size(dir / "probe_report_once.json"), json.size());
}

}  // namespace
}  // namespace derpkit::probe
