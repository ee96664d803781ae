// Preferred DERP choice with Tailscale's hysteresis (netcheck/home.h), as tables: each case feeds
// a sequence of reports to one HomeSelector and checks the home chosen after each.
#include "netcheck/home.h"

#include <gtest/gtest.h>

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;
using TimePoint = HomeSelector::TimePoint;

struct Step {
  std::chrono::seconds at;  // since the first report
  LatencyMap latency;
  RegionId want;
};

struct Case {
  const char* name;
  std::vector<Step> steps;
  std::optional<derpmap::HomeParams> params = std::nullopt;
  std::set<RegionId> never_home = {};
};

void RunCase(const Case& c) {
  HomeSelector selector;
  RegionId home = 0;
  const TimePoint t0 = TimePoint{} + 10h;
  for (std::size_t i = 0; i < c.steps.size(); ++i) {
    const Step& s = c.steps[i];
    home = selector.Choose(t0 + s.at, s.latency, home, c.params, c.never_home);
    EXPECT_EQ(home, s.want) << c.name << ", report " << i;
  }
}

TEST(HomeSelector, Table) {
  derpmap::HomeParams scores;
  scores.region_score = {{1, 3.0}, {3, 0.0}};  // 1 penalised; a score ≤ 0 is ignored
  const Case cases[] = {
      {"nothing measured: no home", {{0s, {}, 0}}},
      {"lowest latency wins", {{0s, {{1, 30ms}, {2, 20ms}, {3, 25ms}}, 2}}},
      {"a tie goes to the lowest id", {{0s, {{7, 20ms}, {4, 20ms}}, 4}}},
      {"new region under 10ms better: keep the old home",
       {{0s, {{1, 30ms}}, 1}, {1s, {{1, 30ms}, {2, 21ms}}, 1}}},
      {"10ms better and more than a third faster: switch",
       {{0s, {{1, 30ms}}, 1}, {1s, {{1, 30ms}, {2, 19ms}}, 2}}},
      {"more than 10ms better but not a third faster: keep",
       {{0s, {{1, 100ms}}, 1}, {1s, {{1, 100ms}, {2, 70ms}}, 1}}},
      {"a third faster and 40ms better: switch",
       {{0s, {{1, 100ms}}, 1}, {1s, {{1, 100ms}, {2, 60ms}}, 2}}},
      {"old home silent in this report: switch at once",
       {{0s, {{1, 30ms}}, 1}, {1s, {{2, 29ms}}, 2}}},
      {"best of the last 5 minutes counts, not just this report",
       {{0s, {{1, 20ms}, {2, 5ms}}, 2}, {60s, {{1, 20ms}, {2, 50ms}}, 2}}},
      {"reports older than 5 min 5 s are forgotten",
       {{0s, {{1, 40ms}, {2, 5ms}}, 2}, {306s, {{1, 10ms}, {2, 50ms}}, 1}}},
      {"RegionScore multiplies latencies; a zero score is ignored",
       {{0s, {{1, 10ms}, {2, 20ms}, {3, 25ms}}, 2}},
       scores},
      {"NoMeasureNoHome regions are never home",
       {{0s, {{1, 10ms}, {2, 20ms}}, 2}},
       std::nullopt,
       {1}},
  };
  for (const Case& c : cases) RunCase(c);
}

TEST(HomeSelector, ForgetsOldReports) {
  HomeSelector selector;
  const TimePoint t0 = TimePoint{} + 10h;
  selector.Choose(t0, {{1, 1ms}}, 0, std::nullopt);
  selector.Choose(t0 + 1min, {{1, 1ms}}, 1, std::nullopt);
  EXPECT_EQ(selector.remembered_reports(), 2u);
  selector.Choose(t0 + 10min, {{1, 1ms}}, 1, std::nullopt);
  EXPECT_EQ(selector.remembered_reports(), 1u);
}

}  // namespace
}  // namespace derpkit::netcheck
