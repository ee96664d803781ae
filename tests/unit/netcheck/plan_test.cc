// netcheck's probe plans (netcheck/plan.h): full and incremental plans as tables of expected probe
// sets, the skip rules (NoMeasureNoHome, Avoid, STUNPort -1, IPv4 "none", STUNTestIP), test nodes,
// and when a report must be full.
#include "netcheck/plan.h"

#include <gtest/gtest.h>

#include "tests/unit/netcheck/test_maps.h"

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;
using testing::MakeMap;
using testing::MakeNode;
using testing::MakeRegion;

constexpr auto V4 = Family::kIpv4;
constexpr auto V6 = Family::kIpv6;

// "region-1-v4: 0s:1a 100ms:1b ..." so a failing comparison shows the whole plan.
std::string Describe(const ProbePlan& plan) {
  std::string out;
  for (const auto& set : plan) {
    out += set.Name() + ":";
    for (const auto& p : set.probes) {
      out +=
          " " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(p.delay).count()) +
          "ms:" + p.node;
    }
    out += "\n";
  }
  return out;
}

ProbeSet Set(RegionId region, Family family,
             std::vector<std::pair<std::chrono::milliseconds, std::string>> probes) {
  ProbeSet s{region, family, {}};
  for (auto& [delay, node] : probes) s.probes.push_back({delay, node, family});
  return s;
}

derpmap::DerpMap FullPlanMap() {
  auto no_home = MakeRegion(2, "nmh", "No measure", {MakeNode(2, "2a")});
  no_home.no_measure_no_home = true;
  auto avoid = MakeRegion(3, "avd", "Avoided", {MakeNode(3, "3a", "192.0.2.3", "none")});
  avoid.avoid = true;
  auto test_ip = MakeNode(7, "7a");
  test_ip.stun_test_ip = "::1";
  return MakeMap({
      MakeRegion(1, "one", "One",
                 {MakeNode(1, "1a", "192.0.2.1", "2001:db8::1"), MakeNode(1, "1b")}),
      no_home,
      avoid,
      MakeRegion(4, "four", "Four", {MakeNode(4, "4a", "", "", -1), MakeNode(4, "4b")}),
      MakeRegion(5, "five", "Five", {MakeNode(5, "5a", "", "", -1)}),
      MakeRegion(6, "six", "Six", {MakeNode(6, "6a", "127.0.0.1", "none")}),
      MakeRegion(7, "svn", "Seven", {test_ip}),
      MakeRegion(8, "eit", "Eight", {}),
  });
}

TEST(FullPlan, ThreeTriesPerFamilyEvery100msCyclingThroughStunNodes) {
  const ProbePlan want = {
      Set(1, V4, {{0ms, "1a"}, {100ms, "1b"}, {200ms, "1a"}}),
      Set(1, V6, {{0ms, "1a"}, {100ms, "1b"}, {200ms, "1a"}}),
      // Avoid regions are measured by full reports; IPv6 "none" drops the v6 set.
      Set(3, V4, {{0ms, "3a"}, {100ms, "3a"}, {200ms, "3a"}}),
      // 4a has no STUN (STUNPort -1): every try goes to 4b.
      Set(4, V4, {{0ms, "4b"}, {100ms, "4b"}, {200ms, "4b"}}),
      Set(4, V6, {{0ms, "4b"}, {100ms, "4b"}, {200ms, "4b"}}),
      Set(6, V4, {{0ms, "6a"}, {100ms, "6a"}, {200ms, "6a"}}),
      // STUNTestIP ::1 is an IPv6 address: only an IPv6 set.
      Set(7, V6, {{0ms, "7a"}, {100ms, "7a"}, {200ms, "7a"}}),
  };  // 2 (NoMeasureNoHome), 5 (no STUN node) and 8 (no nodes) have no sets
  const ProbePlan got = MakeFullPlan(FullPlanMap(), {.have_v4 = true, .have_v6 = true});
  EXPECT_EQ(got, want) << Describe(got);
}

TEST(FullPlan, HostWithoutAddressesStillProbesTestNodes) {
  const ProbePlan want = {
      Set(6, V4, {{0ms, "6a"}, {100ms, "6a"}, {200ms, "6a"}}),
      Set(7, V6, {{0ms, "7a"}, {100ms, "7a"}, {200ms, "7a"}}),
  };
  const ProbePlan got = MakeFullPlan(FullPlanMap(), {.have_v4 = false, .have_v6 = false});
  EXPECT_EQ(got, want) << Describe(got);
}

TEST(FullPlan, Ipv4OnlyHostSendsNoIpv6ExceptToTestNodes) {
  const ProbePlan got = MakeFullPlan(FullPlanMap(), {.have_v4 = true, .have_v6 = false});
  for (const auto& set : got) {
    if (set.family == V6) {
      EXPECT_EQ(set.region_id, 7) << Describe(got);
    }
  }
  EXPECT_EQ(got.size(), 5u) << Describe(got);
}

TEST(NodeMightStun, FollowsTheAddressFieldsAndStunPort) {
  EXPECT_TRUE(NodeMightStun(MakeNode(1, "a"), V4));
  EXPECT_TRUE(NodeMightStun(MakeNode(1, "a"), V6));
  EXPECT_FALSE(NodeMightStun(MakeNode(1, "a", "none"), V4));
  EXPECT_TRUE(NodeMightStun(MakeNode(1, "a", "none"), V6));
  EXPECT_FALSE(NodeMightStun(MakeNode(1, "a", "192.0.2.1", "none"), V6));
  EXPECT_FALSE(NodeMightStun(MakeNode(1, "a", "", "", -1), V4));
  auto test_v4 = MakeNode(1, "a", "none", "none");
  test_v4.stun_test_ip = "127.0.0.1";
  EXPECT_TRUE(NodeMightStun(test_v4, V4));  // STUNTestIP wins over the address fields
  EXPECT_FALSE(NodeMightStun(test_v4, V6));
  EXPECT_TRUE(IsTestNode(test_v4));
  EXPECT_TRUE(IsTestNode(MakeNode(1, "a", "127.0.0.1")));
  EXPECT_FALSE(IsTestNode(MakeNode(1, "a", "127.0.0.2")));
}

derpmap::DerpMap IncrementalMap() {
  auto avoid = MakeRegion(13, "avd", "Avoided", {MakeNode(13, "13a")});
  avoid.avoid = true;
  auto no_home = MakeRegion(15, "nmh", "No measure", {MakeNode(15, "15a")});
  no_home.no_measure_no_home = true;
  return MakeMap({
      MakeRegion(10, "ten", "Ten", {MakeNode(10, "10a"), MakeNode(10, "10b")}),
      MakeRegion(11, "elv", "Eleven", {MakeNode(11, "11a")}),
      MakeRegion(12, "twl", "Twelve", {MakeNode(12, "12a")}),
      avoid,
      MakeRegion(14, "ftn", "Fourteen", {MakeNode(14, "14a")}),
      no_home,
      MakeRegion(16, "sxt", "Sixteen (never answered)", {MakeNode(16, "16a")}),
  });
}

Report LastReport(RegionId home, bool had6) {
  Report last;
  last.region_latency = {{10, 10ms}, {11, 20ms}, {12, 30ms}, {13, 5ms}, {14, 40ms}};
  last.region_v4_latency = last.region_latency;
  if (had6) last.region_v6_latency = {{10, 11ms}};
  last.preferred_derp = home;
  return last;
}

TEST(IncrementalPlan, FastestThreePlusHomeWithReferenceTriesAndDelays) {
  const ProbePlan want = {
      // Fastest two: 2 tries, the second after 1.2 × last latency.
      Set(10, V4, {{0ms, "10a"}, {12ms, "10b"}}),
      Set(10, V6, {{0ms, "10a"}, {12ms, "10b"}}),
      Set(11, V4, {{0ms, "11a"}, {24ms, "11a"}}),
      Set(11, V6, {{0ms, "11a"}, {24ms, "11a"}}),
      // Third: one try; dual-stack hosts alternate families from here (even index: IPv4).
      Set(12, V4, {{0ms, "12a"}}),
      // The home, fourth by latency, is re-measured anyway: 4 tries at i×48ms (+ i×50ms, i > 1).
      Set(14, V4, {{0ms, "14a"}, {48ms, "14a"}, {196ms, "14a"}, {294ms, "14a"}}),
      Set(14, V6, {{0ms, "14a"}, {48ms, "14a"}, {196ms, "14a"}, {294ms, "14a"}}),
  };  // 13 is Avoid (skipped: not home), 15 NoMeasureNoHome, 16 slower than the fastest three
  const ProbePlan got = MakeIncrementalPlan(IncrementalMap(), {.have_v4 = true, .have_v6 = true},
                                            LastReport(14, true));
  EXPECT_EQ(got, want) << Describe(got);
}

TEST(IncrementalPlan, AvoidRegionThatIsHomeStaysAndIpv6RetriesNeedAnIpv6AnswerLastTime) {
  // Sorted: 13 (5ms, Avoid but home), 10, 11 | 12, 14 are not among the fastest three.
  const ProbePlan want = {
      Set(10, V4, {{0ms, "10a"}, {12ms, "10b"}}),
      Set(10, V6, {{0ms, "10a"}}),  // no IPv6 answer last time: no IPv6 retry
      Set(11, V4, {{0ms, "11a"}}),  // third: one try, and no IPv6 without an IPv6 answer
      // The home, fastest of all: 4 tries at i × 6ms (+ i × 50ms for i > 1).
      Set(13, V4, {{0ms, "13a"}, {6ms, "13a"}, {112ms, "13a"}, {168ms, "13a"}}),
      Set(13, V6, {{0ms, "13a"}}),
  };
  const ProbePlan got = MakeIncrementalPlan(IncrementalMap(), {.have_v4 = true, .have_v6 = true},
                                            LastReport(13, false));
  EXPECT_EQ(got, want) << Describe(got);
}

TEST(IncrementalPlan, UnmeasuredRegionsGet200msSpacing) {
  Report last;
  last.region_latency = {{10, 10ms}};
  last.region_v4_latency = last.region_latency;
  last.preferred_derp = 16;  // home, but not measured last time
  const ProbePlan got =
      MakeIncrementalPlan(IncrementalMap(), {.have_v4 = true, .have_v6 = false}, last);
  // Sorted: 10 (measured), then the unmeasured by id: 11, 12, 14, 16; the home 16 comes last.
  ASSERT_FALSE(got.empty()) << Describe(got);
  const ProbeSet& home = got.back();
  EXPECT_EQ(home, Set(16, V4, {{0ms, "16a"}, {200ms, "16a"}, {500ms, "16a"}, {750ms, "16a"}}))
      << Describe(got);
  EXPECT_EQ(got.front(), Set(10, V4, {{0ms, "10a"}, {12ms, "10b"}})) << Describe(got);
}

TEST(IncrementalPlan, WithoutLatenciesFallsBackToTheFullPlan) {
  const auto map = IncrementalMap();
  Report last;  // measured nothing
  EXPECT_EQ(MakeIncrementalPlan(map, {true, true}, last), MakeFullPlan(map, {true, true}));
}

TEST(ProbeSetName, IsTailscales) {
  EXPECT_EQ((ProbeSet{900, V4, {}}).Name(), "region-900-v4");
  EXPECT_EQ((ProbeSet{1, V6, {}}).Name(), "region-1-v6");
}

TEST(WantFullReport, Table) {
  const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
  Report plain;
  plain.udp = true;
  Report captive_no_udp;
  captive_no_udp.captive_portal = true;
  Report captive_with_udp = captive_no_udp;
  captive_with_udp.udp = true;
  struct Case {
    const char* name;
    const Report* last;
    std::optional<std::chrono::steady_clock::time_point> last_full;
    std::chrono::steady_clock::time_point now;
    bool forced;
    bool want;
  } cases[] = {
      {"first report", nullptr, std::nullopt, t0, false, true},
      {"right after a full one", &plain, t0, t0 + 1s, false, false},
      {"exactly 5 minutes later", &plain, t0, t0 + 5min, false, false},
      {"more than 5 minutes later", &plain, t0, t0 + 5min + 1ms, false, true},
      {"forced", &plain, t0, t0 + 1s, true, true},
      {"captive portal and no UDP", &captive_no_udp, t0, t0 + 1s, false, true},
      {"captive portal but UDP works", &captive_with_udp, t0, t0 + 1s, false, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(WantFullReport(c.last, c.last_full, c.now, c.forced), c.want) << c.name;
  }
}

}  // namespace
}  // namespace derpkit::netcheck
