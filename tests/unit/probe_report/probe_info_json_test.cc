// /debug/probe-run and /debug/probe-all bodies: the reference's keys and JSON types, durations in
// integer nanoseconds, Go's time format, the last 10 results/latencies, "Previous…" computed
// without the run just made, and the text form.
#include "probe/probe_info_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using fixtures::Find;
using fixtures::Now;
using fixtures::RichSnapshot;
using Json = nlohmann::json;

std::set<std::string> Keys(const Json& j) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  return keys;
}

TEST(ProbeRunJson, KeysAndTypesAsTheReference) {
  ProberSnapshot s = RichSnapshot();
  const Json j = Json::parse(RenderProbeRunJson(*Find(s, "derp/test-a/1a/udp6")));
  EXPECT_EQ(Keys(j),
            (std::set<std::string>{"ProbeInfo", "PreviousSuccessRatio", "PreviousMedianLatency"}));
  const Json& info = j["ProbeInfo"];
  EXPECT_EQ(Keys(info),
            (std::set<std::string>{"Name", "Class", "Interval", "Labels", "Start", "End", "Latency",
                                   "Status", "Error", "RecentResults", "RecentLatencies"}));
  EXPECT_EQ(info["Name"], "derp/test-a/1a/udp6");
  EXPECT_EQ(info["Class"], "derp_udp");
  ASSERT_TRUE(info["Interval"].is_number_integer());
  EXPECT_EQ(info["Interval"].get<std::int64_t>(), 15'000'000'000);
  EXPECT_EQ(info["Labels"], (Json{{"address_family", "ipv6"},
                                  {"class", "derp_udp"},
                                  {"hostname", "derp-1a.test"},
                                  {"name", "derp/test-a/1a/udp6"},
                                  {"region", "test-a"},
                                  {"region_id", "1"}}));
  // Run 59 of 60: 1.4 ms, ended 4 s before now.
  ASSERT_TRUE(info["Latency"].is_number_integer());
  EXPECT_EQ(info["Latency"].get<std::int64_t>(), 1'400'000);
  EXPECT_EQ(info["End"], "2026-11-30T07:59:56Z");
  EXPECT_EQ(info["Start"], "2026-11-30T07:59:55.9986Z");
  EXPECT_EQ(info["Status"], "succeeded");
  EXPECT_EQ(info["Error"], "");
  ASSERT_EQ(info["RecentResults"].size(), 10u);
  for (const auto& r : info["RecentResults"]) EXPECT_EQ(r, true);
  // Runs 50..59: latencies cycle 1.0..1.4 ms, oldest first.
  EXPECT_EQ(info["RecentLatencies"], (Json{1'000'000, 1'100'000, 1'200'000, 1'300'000, 1'400'000,
                                           1'000'000, 1'100'000, 1'200'000, 1'300'000, 1'400'000}));
  EXPECT_TRUE(j["PreviousSuccessRatio"].is_number());
  EXPECT_DOUBLE_EQ(j["PreviousSuccessRatio"].get<double>(), 1.0);
  ASSERT_TRUE(j["PreviousMedianLatency"].is_number_integer());
  // Runs 49..58 before this one: 1.4,1.0,1.1,1.2,1.3,1.4,1.0,1.1,1.2,1.3 -> upper middle 1.2 ms.
  EXPECT_EQ(j["PreviousMedianLatency"].get<std::int64_t>(), 1'200'000);
}

TEST(ProbeRunJson, PreviousIsComputedWithoutTheLastRun) {
  ProbeSnapshot p;
  p.spec = MapProbeSpec(15s);
  fixtures::RecordSeries(p, Now() - 1s, 10);                      // 10 passes
  fixtures::Record(p, Now(), false, 0ms, "map fetch: HTTP 500");  // then this run fails
  const Json j = Json::parse(RenderProbeRunJson(p));
  EXPECT_DOUBLE_EQ(j["PreviousSuccessRatio"].get<double>(), 1.0);
  EXPECT_EQ(j["PreviousMedianLatency"].get<std::int64_t>(), 1'200'000);
  const Json& info = j["ProbeInfo"];
  EXPECT_EQ(info["Status"], "failed");
  EXPECT_EQ(info["Error"], "map fetch: HTTP 500");
  EXPECT_EQ(info["Latency"], 0);
  EXPECT_EQ(info["Labels"], (Json{{"class", "derp_map"}, {"name", "derpmap-probe"}}));
  // The last 10 results include this failure; latencies keep the last 10 successes.
  ASSERT_EQ(info["RecentResults"].size(), 10u);
  EXPECT_EQ(info["RecentResults"].back(), false);
  EXPECT_EQ(info["RecentResults"].front(), true);
  EXPECT_EQ(info["RecentLatencies"].size(), 10u);
  EXPECT_EQ(info["End"], "2026-11-30T08:00:00Z");
  EXPECT_EQ(info["Start"], "2026-11-30T07:59:57Z");

  // The reverse: 9 failures before, a pass now.
  ProbeSnapshot q;
  q.spec = MapProbeSpec(15s);
  for (int i = 0; i < 9; ++i) fixtures::Record(q, Now() - 20s, false, 0ms, "down");
  fixtures::Record(q, Now(), true, 2500us);
  const Json k = Json::parse(RenderProbeRunJson(q));
  EXPECT_DOUBLE_EQ(k["PreviousSuccessRatio"].get<double>(), 0.0);
  EXPECT_EQ(k["PreviousMedianLatency"], 0);
  EXPECT_EQ(k["ProbeInfo"]["Latency"], 2'500'000);
  EXPECT_EQ(k["ProbeInfo"]["RecentLatencies"], (Json{2'500'000}));
}

TEST(ProbeRunJson, NeverRunAndContinuous) {
  ProberSnapshot s = RichSnapshot();
  const Json never = Json::parse(RenderProbeRunJson(*Find(s, "derp/test-b/2a/2a/mesh")));
  EXPECT_EQ(never["ProbeInfo"]["Status"], "unknown");
  EXPECT_EQ(never["ProbeInfo"]["Start"], "0001-01-01T00:00:00Z");  // Go's zero time
  EXPECT_EQ(never["ProbeInfo"]["End"], "0001-01-01T00:00:00Z");
  EXPECT_TRUE(never["ProbeInfo"]["RecentResults"].is_array());
  EXPECT_TRUE(never["ProbeInfo"]["RecentResults"].empty());
  EXPECT_EQ(never["PreviousSuccessRatio"], 0.0);

  const Json qd = Json::parse(RenderProbeRunJson(*Find(s, "derp/test-a/1a/1b/qd")));
  EXPECT_EQ(qd["ProbeInfo"]["Interval"].get<std::int64_t>(), -10'000'000'000);
  EXPECT_EQ(qd["ProbeInfo"]["Status"], "running");
  EXPECT_EQ(qd["ProbeInfo"]["Labels"]["derp_path"], "mesh");
}

TEST(ProbeRunJson, GoTimeFormat) {
  ProbeSnapshot p;
  p.spec.name = "x";
  p.last_start = Now() + 123456789ns;
  p.last_end = Now() + 500ms;
  const Json j = Json::parse(RenderProbeRunJson(p));
  EXPECT_EQ(j["ProbeInfo"]["Start"], "2026-11-30T08:00:00.123456789Z");
  EXPECT_EQ(j["ProbeInfo"]["End"], "2026-11-30T08:00:00.5Z");
  p.last_end = SystemTime{} + 1us;
  EXPECT_EQ(Json::parse(RenderProbeRunJson(p))["ProbeInfo"]["End"], "1970-01-01T00:00:00.000001Z");
}

TEST(ProbeRunText, SucceededAndFailed) {
  ProberSnapshot s = RichSnapshot();
  // udp6: 1.4 ms now; the last 10 (this one included) all passed, median (upper middle of
  // 1.0,1.0,1.1,1.1,1.2,1.2,1.3,1.3,1.4,1.4) 1.2 ms.
  EXPECT_EQ(RenderProbeRunText(*Find(s, "derp/test-a/1a/udp6")),
            "Probe succeeded in 1.4ms\n"
            "Last 10 probes (including this one): success rate 100%, median latency 1.2ms\n");
  EXPECT_EQ(RenderProbeRunText(*Find(s, "derp/test-b/2a/tls")),
            std::string("Probe failed: ") + fixtures::kScriptError +
                "\nLast 10 probes (including this one): success rate 70%, median latency 1.1ms\n");
  ProbeSnapshot one;
  fixtures::Record(one, Now(), false, 0ms, "down");
  fixtures::Record(one, Now(), false, 0ms, "down");
  fixtures::Record(one, Now(), true, 3ms);
  EXPECT_EQ(RenderProbeRunText(one),
            "Probe succeeded in 3.0ms\n"
            "Last 3 probes (including this one): success rate 33%, median latency 3.0ms\n");
}

TEST(ProbeAllJson, ResultsKeyedByName) {
  ProberSnapshot s = RichSnapshot();
  const std::vector<ProbeSnapshot> ran = {*Find(s, "derp/test-a/1a/tls"),
                                          *Find(s, "derp/test-b/2a/udp")};
  const Json j = Json::parse(RenderProbeAllJson(ran));
  EXPECT_EQ(Keys(j), (std::set<std::string>{"Results"}));
  EXPECT_EQ(Keys(j["Results"]),
            (std::set<std::string>{"derp/test-a/1a/tls", "derp/test-b/2a/udp"}));
  EXPECT_EQ(j["Results"]["derp/test-b/2a/udp"]["ProbeInfo"]["Error"], fixtures::kStunError);
  EXPECT_EQ(j["Results"]["derp/test-b/2a/udp"]["ProbeInfo"]["Status"], "failed");
  EXPECT_EQ(j["Results"]["derp/test-a/1a/tls"]["ProbeInfo"]["Status"], "succeeded");
  EXPECT_TRUE(j["Results"]["derp/test-a/1a/tls"].contains("PreviousSuccessRatio"));
  EXPECT_EQ(Json::parse(RenderProbeAllJson({})), (Json{{"Results", Json::object()}}));
}

}  // namespace
}  // namespace derpkit::probe
