// /metrics from hand-built snapshots: every family of metrics.h with its type, derpprobe's label
// sets per probe class, series absent when the reference leaves them out, cumulative histogram
// buckets, escaping, families without samples left out, and a real `promtool check metrics`.
#include "probe/metrics.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using fixtures::Now;
using fixtures::RichSnapshot;
using LabelSet = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelSet labels;
  std::string value;
};

// Parses the sample lines of the text format (enough of it for our own output: quoted label
// values with \\, \" and \n escapes).
std::vector<Sample> Samples(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    std::size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        const std::string key = line.substr(i, eq - i);
        std::string value;
        for (i = eq + 2; line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        s.labels[key] = value;
        ++i;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    s.value = line.substr(i + 1);
    out.push_back(s);
  }
  return out;
}

std::vector<Sample> Find(const std::vector<Sample>& all, const std::string& name,
                         const std::string& probe = "") {
  std::vector<Sample> out;
  for (const Sample& s : all) {
    if (s.name == name &&
        (probe.empty() || (s.labels.count("name") && s.labels.at("name") == probe))) {
      out.push_back(s);
    }
  }
  return out;
}

LabelSet Without(LabelSet labels, const std::string& key) {
  labels.erase(key);
  return labels;
}

TEST(Metrics, EveryFamilyWithItsType) {
  const std::string text = RenderMetrics(RichSnapshot());
  const std::vector<std::pair<std::string, std::string>> families = {
      {"derpprobe_interval_secs", "gauge"},
      {"derpprobe_in_flight", "gauge"},
      {"derpprobe_start_secs", "gauge"},
      {"derpprobe_end_secs", "gauge"},
      {"derpprobe_result", "gauge"},
      {"derpprobe_latency_millis", "gauge"},
      {"derpprobe_attempts_total", "counter"},
      {"derpprobe_seconds_total", "counter"},
      {"derpprobe_derp_bw_probe_size_bytes", "gauge"},
      {"derpprobe_derp_bw_transfer_time_seconds_total", "counter"},
      {"derpprobe_derp_qd_probe_dropped_packets", "untyped"},
      {"derpprobe_derp_qd_probe_delays_seconds", "histogram"},
      {"derpprobe_latency_seconds", "histogram"},
      {"derpprobe_tls_cert_expiry_timestamp_seconds", "gauge"},
      {"derpprobe_tls_cert_pinned", "gauge"},
      {"derpprobe_derpmap_last_success_timestamp_seconds", "gauge"},
      {"derpprobe_derpmap_regions", "gauge"},
      {"derpprobe_derpmap_nodes", "gauge"},
      {"derpprobe_probes", "gauge"},
      {"derpprobe_build_info", "gauge"},
      {"derpprobe_start_time_seconds", "gauge"},
  };
  std::size_t types = 0;
  for (std::size_t at = text.find("# TYPE "); at != std::string::npos;
       at = text.find("# TYPE ", at + 1)) {
    ++types;
  }
  EXPECT_EQ(types, families.size());
  for (const auto& [name, type] : families) {
    EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
    EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name;
  }
}

TEST(Metrics, LabelSetsAsDerpprobe) {
  const auto all = Samples(RenderMetrics(RichSnapshot()));
  auto labels_of = [&](const std::string& probe) {
    const auto found = Find(all, "derpprobe_interval_secs", probe);
    return found.size() == 1 ? found[0].labels : LabelSet{};
  };
  const LabelSet node = {{"hostname", "derp-1a.test"}, {"region", "test-a"}, {"region_id", "1"}};
  auto with = [&](LabelSet base, LabelSet extra) {
    base.merge(extra);
    return base;
  };
  EXPECT_EQ(labels_of("derp/test-a/1a/tls"),
            with(node, {{"name", "derp/test-a/1a/tls"}, {"class", "tls"}}));
  EXPECT_EQ(labels_of("derp/test-a/1a/udp"), with(node, {{"name", "derp/test-a/1a/udp"},
                                                         {"class", "derp_udp"},
                                                         {"address_family", "ipv4"}}));
  EXPECT_EQ(labels_of("derp/test-a/1a/udp6"), with(node, {{"name", "derp/test-a/1a/udp6"},
                                                          {"class", "derp_udp"},
                                                          {"address_family", "ipv6"}}));
  EXPECT_EQ(labels_of("derp/test-a/1a/1b/mesh"), with(node, {{"name", "derp/test-a/1a/1b/mesh"},
                                                             {"class", "derp_mesh"},
                                                             {"derp_path", "mesh"}}));
  EXPECT_EQ(labels_of("derp/test-a/1a/1a/mesh"), with(node, {{"name", "derp/test-a/1a/1a/mesh"},
                                                             {"class", "derp_mesh"},
                                                             {"derp_path", "single"}}));
  EXPECT_EQ(labels_of("derp/test-a/1a/1b/bw"), with(node, {{"name", "derp/test-a/1a/1b/bw"},
                                                           {"class", "derp_bw"},
                                                           {"derp_path", "mesh"},
                                                           {"tcp_in_tcp", "false"}}));
  EXPECT_EQ(
      labels_of("derp/test-a/1a/1b/qd"),
      with(node, {{"name", "derp/test-a/1a/1b/qd"}, {"class", "derp_qd"}, {"derp_path", "mesh"}}));
  EXPECT_EQ(labels_of("derpmap-probe"),
            (LabelSet{{"name", "derpmap-probe"}, {"class", "derp_map"}}));

  // Every per-probe family carries exactly the probe's labels (plus status / le where due).
  const LabelSet udp6 = labels_of("derp/test-a/1a/udp6");
  for (const Sample& s : all) {
    if (!s.labels.count("name") || s.labels.at("name") != "derp/test-a/1a/udp6") continue;
    EXPECT_EQ(Without(Without(s.labels, "status"), "le"), udp6) << s.name;
  }
  EXPECT_EQ(Find(all, "derpprobe_interval_secs").size(), 23u);
}

TEST(Metrics, ValuesAndAbsentSeries) {
  const auto all = Samples(RenderMetrics(RichSnapshot()));
  auto value = [&](const std::string& name, const std::string& probe) {
    const auto found = Find(all, name, probe);
    return found.size() == 1 ? found[0].value : "<" + std::to_string(found.size()) + " samples>";
  };
  EXPECT_EQ(value("derpprobe_interval_secs", "derp/test-a/1a/tls"), "15");
  EXPECT_EQ(value("derpprobe_interval_secs", "derp/test-a/1a/1b/qd"), "-10");
  EXPECT_EQ(value("derpprobe_interval_secs", "derp/test-a/1a/1b/bw"), "60");
  EXPECT_EQ(value("derpprobe_in_flight", "derp/test-a/1a/1b/qd"), "1");
  EXPECT_EQ(value("derpprobe_in_flight", "derp/test-a/1a/tls"), "0");
  // Whole Unix seconds, as the reference: the last udp6 run ended at now - 4 s.
  EXPECT_EQ(value("derpprobe_end_secs", "derp/test-a/1a/udp6"), "1796025596");
  EXPECT_EQ(value("derpprobe_start_secs", "derp/test-a/1a/udp6"), "1796025595");
  EXPECT_EQ(value("derpprobe_result", "derp/test-a/1a/udp6"), "1");
  EXPECT_EQ(value("derpprobe_result", "derp/test-b/2a/udp"), "0");
  EXPECT_EQ(value("derpprobe_latency_millis", "derp/test-a/1a/udp6"), "1.4");
  EXPECT_EQ(value("derpprobe_latency_millis", "derpmap-probe"), "3.1");
  // The reference drops latency after a failure, and result/end/attempts before the first end.
  EXPECT_TRUE(Find(all, "derpprobe_latency_millis", "derp/test-b/2a/udp").empty());
  for (const char* family : {"derpprobe_end_secs", "derpprobe_result", "derpprobe_latency_millis",
                             "derpprobe_attempts_total", "derpprobe_seconds_total",
                             "derpprobe_latency_seconds_count", "derpprobe_start_secs"}) {
    EXPECT_TRUE(Find(all, family, "derp/test-b/2a/2a/mesh").empty()) << family;
  }
  EXPECT_EQ(value("derpprobe_interval_secs", "derp/test-b/2a/2a/mesh"), "15");

  // attempts/seconds: both status series; 2a udp failed runs 20 and 59 of 60 (3 s each).
  const auto attempts = Find(all, "derpprobe_attempts_total", "derp/test-b/2a/udp");
  ASSERT_EQ(attempts.size(), 2u);
  std::map<std::string, std::string> by_status;
  for (const Sample& s : attempts) by_status[s.labels.at("status")] = s.value;
  EXPECT_EQ(by_status, (std::map<std::string, std::string>{{"ok", "58"}, {"fail", "2"}}));
  for (const Sample& s : Find(all, "derpprobe_seconds_total", "derp/test-b/2a/udp")) {
    if (s.labels.at("status") == "fail") {
      EXPECT_EQ(s.value, "6");
    }
  }

  // bw, tls.
  EXPECT_EQ(value("derpprobe_derp_bw_probe_size_bytes", "derp/test-a/1a/1b/bw"), "1000000");
  EXPECT_EQ(
      std::stod(value("derpprobe_derp_bw_transfer_time_seconds_total", "derp/test-a/1a/1b/bw")),
      4 * 0.0123);
  EXPECT_TRUE(Find(all, "derpprobe_derp_bw_probe_size_bytes", "derp/test-a/1a/tls").empty());
  // 89 days 5 hours after now.
  EXPECT_EQ(std::stod(value("derpprobe_tls_cert_expiry_timestamp_seconds", "derp/test-a/1a/tls")),
            1796025600.0 + 89 * 86400 + 5 * 3600);
  EXPECT_EQ(value("derpprobe_tls_cert_pinned", "derp/test-a/1a/tls"), "0");
  EXPECT_EQ(value("derpprobe_tls_cert_pinned", "derp/test-a/1b/tls"), "1");
  EXPECT_EQ(Find(all, "derpprobe_tls_cert_pinned").size(), 3u);

  // Prober-wide.
  EXPECT_EQ(value("derpprobe_derpmap_regions", ""), "2");
  EXPECT_EQ(value("derpprobe_derpmap_nodes", ""), "3");
  EXPECT_EQ(value("derpprobe_probes", ""), "23");
  EXPECT_EQ(std::stod(value("derpprobe_derpmap_last_success_timestamp_seconds", "")),
            1796025600.0 - 12);
  EXPECT_EQ(std::stod(value("derpprobe_start_time_seconds", "")), 1796025600.0 - 3 * 3600);
  const auto build = Find(all, "derpprobe_build_info");
  ASSERT_EQ(build.size(), 1u);
  EXPECT_EQ(build[0].labels, (LabelSet{{"version", "0.1.0"}}));
  EXPECT_EQ(build[0].value, "1");
}

TEST(Metrics, HistogramsAreCumulative) {
  const auto all = Samples(RenderMetrics(RichSnapshot()));
  // qd delays 1, 2, 3, 7, 30, 30, 200 ms and 2 s into 5/10/25/50/100/250/500/1000 ms buckets.
  std::vector<std::pair<std::string, std::string>> buckets;
  for (const Sample& s :
       Find(all, "derpprobe_derp_qd_probe_delays_seconds_bucket", "derp/test-a/1a/1b/qd")) {
    buckets.emplace_back(s.labels.at("le"), s.value);
  }
  EXPECT_EQ(buckets, (std::vector<std::pair<std::string, std::string>>{{"0.005", "3"},
                                                                       {"0.01", "4"},
                                                                       {"0.025", "4"},
                                                                       {"0.05", "6"},
                                                                       {"0.1", "6"},
                                                                       {"0.25", "7"},
                                                                       {"0.5", "7"},
                                                                       {"1", "7"},
                                                                       {"+Inf", "8"}}));
  const auto count =
      Find(all, "derpprobe_derp_qd_probe_delays_seconds_count", "derp/test-a/1a/1b/qd");
  ASSERT_EQ(count.size(), 1u);
  EXPECT_EQ(count[0].value, "8");
  const auto sum = Find(all, "derpprobe_derp_qd_probe_delays_seconds_sum", "derp/test-a/1a/1b/qd");
  ASSERT_EQ(sum.size(), 1u);
  EXPECT_DOUBLE_EQ(std::stod(sum[0].value), 0.001 + 0.002 + 0.003 + 0.007 + 0.03 + 0.03 + 0.2 + 2);
  EXPECT_EQ(Find(all, "derpprobe_derp_qd_probe_dropped_packets", "derp/test-a/1a/1b/qd")[0].value,
            "4");

  // Latency of 58 successful 2a udp runs: 1.0 ms x12 (le 0.001), the rest up to 1.4 ms.
  std::uint64_t previous = 0;
  std::map<std::string, std::string> le;
  for (const Sample& s : Find(all, "derpprobe_latency_seconds_bucket", "derp/test-b/2a/udp")) {
    const std::uint64_t v = std::stoull(s.value);
    EXPECT_GE(v, previous) << s.labels.at("le");
    previous = v;
    le[s.labels.at("le")] = s.value;
  }
  EXPECT_EQ(le.size(), 13u);
  EXPECT_EQ(le["0.0005"], "0");
  EXPECT_EQ(le["0.001"], "11");  // runs 0, 5, …, 55 minus the failed run 20
  EXPECT_EQ(le["0.0025"], "58");
  EXPECT_EQ(le["+Inf"], "58");
  EXPECT_TRUE(Find(all, "derpprobe_latency_seconds_count", "derp/test-a/1a/1b/qd").empty());
}

TEST(Metrics, LabelValuesAreEscaped) {
  ProberSnapshot s = RichSnapshot();
  s.version = "1.0 \"dev\" C:\\x\nline2";
  const std::string text = RenderMetrics(s);
  EXPECT_NE(text.find("derpprobe_build_info{version=\"1.0 \\\"dev\\\" C:\\\\x\\nline2\"} 1"),
            std::string::npos);
  const auto build = Find(Samples(text), "derpprobe_build_info");
  ASSERT_EQ(build.size(), 1u);
  EXPECT_EQ(build[0].labels.at("version"), s.version);
}

TEST(Metrics, FamiliesWithoutSamplesAreLeftOut) {
  ProberSnapshot s;
  s.now = Now();
  s.started = Now();
  ProbeSnapshot map;
  map.spec = MapProbeSpec(15s);
  s.probes.push_back(map);
  const std::string text = RenderMetrics(s);
  for (const char* absent :
       {"derpprobe_end_secs", "derpprobe_result", "derpprobe_attempts_total",
        "derpprobe_derp_bw_probe_size_bytes", "derpprobe_derp_qd_probe_delays_seconds",
        "derpprobe_tls_cert_pinned", "derpprobe_derpmap_last_success_timestamp_seconds",
        "derpprobe_latency_seconds"}) {
    EXPECT_EQ(text.find(std::string(absent) + " "), std::string::npos) << absent;
  }
  EXPECT_NE(text.find("# TYPE derpprobe_interval_secs gauge"), std::string::npos);
  EXPECT_NE(text.find("derpprobe_probes 1\n"), std::string::npos);
  const auto families = CollectMetricFamilies(s);
  for (const auto& f : families) EXPECT_FALSE(f.metric.empty()) << f.name;
}

// `promtool check metrics` on `text`: its exit status and what it said.
std::pair<int, std::string> Promtool(const std::string& text) {
  const std::string promtool = derpkit::testing::FindProgram("promtool");
  if (promtool.empty()) return {-1, "promtool is not installed (Debian package prometheus)"};
  derpkit::testing::ScratchDir dir;
  const auto input = dir.path() / "metrics.txt";
  std::ofstream(input, std::ios::binary) << text;
  const std::string cmd = "timeout 30 " + promtool + " check metrics < " + input.string() + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Metrics, PromtoolCheckPasses) {
  // The rich snapshot has every kind, failing and passing, qd, bw and tls.
  const auto [status, output] = Promtool(RenderMetrics(RichSnapshot()));
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "");
}

TEST(Metrics, PromtoolCatchesWhatWeAvoid) {
  // The reference's counter without _total, as derpprobe exposes it: promtool refuses it, which
  // is why ours is untyped. This also proves the check above can fail.
  const auto [status, output] = Promtool(
      "# HELP derpprobe_derp_qd_probe_dropped_packets Total packets dropped\n"
      "# TYPE derpprobe_derp_qd_probe_dropped_packets counter\n"
      "derpprobe_derp_qd_probe_dropped_packets{name=\"x\"} 4\n");
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("_total"), std::string::npos) << output;
}

TEST(Metrics, WritesSampleArtifact) {
  const std::filesystem::path dir = std::filesystem::path(DERPKIT_BINARY_DIR) / "artifacts";
  std::filesystem::create_directories(dir);
  const std::string text = RenderMetrics(RichSnapshot());
  const auto path = dir / "probe_report_metrics.txt";
  std::ofstream(path, std::ios::binary) << text;
  EXPECT_EQ(std::filesystem::file_size(path), text.size());
}

}  // namespace
}  // namespace derpkit::probe
