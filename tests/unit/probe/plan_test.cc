// probe/plan.h: which probes a map calls for, named and labelled as derpprobe does, and when they
// run (spread, deadlines); probe/config.h: flag lists and whole-config validation.
#include "probe/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "probe/config.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;

derpmap::Node Node(std::int64_t region, std::string name, std::string v4, std::string v6 = "",
                   int stun_port = 0) {
  derpmap::Node n;
  n.name = std::move(name);
  n.region_id = region;
  n.host_name = "derp-" + n.name + ".test";
  n.ipv4 = std::move(v4);
  n.ipv6 = std::move(v6);
  n.stun_port = stun_port;
  return n;
}

derpmap::DerpMap TwoRegions() {
  derpmap::DerpMap m;
  derpmap::Region a;
  a.region_id = 901;
  a.region_code = "test-a";
  a.nodes = {Node(901, "1a", "127.0.1.1", "::1"), Node(901, "1b", "127.0.1.2")};
  derpmap::Region b;
  b.region_id = 902;
  b.region_code = "test-b";
  b.nodes = {Node(902, "2a", "127.0.2.1", "none")};
  m.regions.emplace(901, a);
  m.regions.emplace(902, b);
  return m;
}

std::set<std::string> Names(const std::vector<ProbeSpec>& specs) {
  std::set<std::string> names;
  for (const auto& s : specs) names.insert(s.name);
  return names;
}

const ProbeSpec& ByName(const std::vector<ProbeSpec>& specs, const std::string& name) {
  auto it =
      std::find_if(specs.begin(), specs.end(), [&](const ProbeSpec& s) { return s.name == name; });
  if (it == specs.end()) throw std::runtime_error("no probe " + name);
  return *it;
}

TEST(Plan, NamesEveryProbeAsDerpprobeDoes) {
  const auto specs = Plan(TwoRegions(), PlanOptions{});
  const std::set<std::string> want = {
      "derp/test-a/1a/tls",     "derp/test-a/1a/udp",     "derp/test-a/1a/udp6",
      "derp/test-a/1a/1a/mesh", "derp/test-a/1a/1b/mesh", "derp/test-a/1b/tls",
      "derp/test-a/1b/udp",     "derp/test-a/1b/1a/mesh", "derp/test-a/1b/1b/mesh",
      "derp/test-b/2a/tls",     "derp/test-b/2a/udp",     "derp/test-b/2a/2a/mesh"};
  EXPECT_EQ(Names(specs), want);
  EXPECT_TRUE(std::is_sorted(specs.begin(), specs.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
}

TEST(Plan, LabelsAndClassesMatchTheReference) {
  const auto specs = Plan(TwoRegions(), PlanOptions{});
  const ProbeSpec& udp6 = ByName(specs, "derp/test-a/1a/udp6");
  EXPECT_EQ(udp6.kind, ProbeKind::kUdp6);
  EXPECT_EQ(ClassLabel(udp6.kind), "derp_udp");
  EXPECT_EQ(udp6.labels, (Labels{{"address_family", "ipv6"},
                                 {"hostname", "derp-1a.test"},
                                 {"region", "test-a"},
                                 {"region_id", "901"}}));
  const ProbeSpec& mesh = ByName(specs, "derp/test-a/1a/1b/mesh");
  EXPECT_EQ(ClassLabel(mesh.kind), "derp_mesh");
  EXPECT_EQ(mesh.from.name, "1a");
  ASSERT_TRUE(mesh.to.has_value());
  EXPECT_EQ(mesh.to->name, "1b");
  EXPECT_EQ(mesh.NodeColumn(), "1a\u21921b");
  EXPECT_EQ(mesh.labels, (Labels{{"derp_path", "mesh"},
                                 {"hostname", "derp-1a.test"},
                                 {"region", "test-a"},
                                 {"region_id", "901"}}));
  const ProbeSpec& single = ByName(specs, "derp/test-b/2a/2a/mesh");
  EXPECT_EQ(single.labels.front(), (std::pair<std::string, std::string>{"derp_path", "single"}));
  EXPECT_EQ(ClassLabel(ByName(specs, "derp/test-a/1a/tls").kind), "tls");
}

TEST(Plan, SkipsStunWithoutALiteralAddressOrWithStunPortMinusOne) {
  derpmap::DerpMap m = TwoRegions();
  m.regions[901].nodes[0].ipv4 = "";  // DNS: derpprobe needs a literal for udp
  m.regions[901].nodes[1].stun_port = -1;
  const auto names = Names(Plan(m, PlanOptions{}));
  EXPECT_EQ(names.count("derp/test-a/1a/udp"), 0u);
  EXPECT_EQ(names.count("derp/test-a/1a/udp6"), 1u);
  EXPECT_EQ(names.count("derp/test-a/1b/udp"), 0u);
  EXPECT_EQ(names.count("derp/test-a/1b/tls"), 1u);
}

TEST(Plan, IntervalsOfZeroDisableAClassAndOptInClassesAppear) {
  PlanOptions o;
  o.tls_interval = 0ms;
  o.stun_interval = 0ms;
  o.bw_interval = 60s;
  o.bw_size_bytes = 1000;
  o.qd_packets_per_second = 10;
  const auto specs = Plan(TwoRegions(), o);
  for (const auto& s : specs) {
    EXPECT_NE(s.kind, ProbeKind::kTls) << s.name;
    EXPECT_NE(s.kind, ProbeKind::kUdp) << s.name;
  }
  const ProbeSpec& bw = ByName(specs, "derp/test-a/1b/1a/bw");
  EXPECT_EQ(bw.interval, 60s);
  EXPECT_EQ(bw.labels.back(), (std::pair<std::string, std::string>{"tcp_in_tcp", "false"}));
  const ProbeSpec& qd = ByName(specs, "derp/test-b/2a/2a/qd");
  EXPECT_TRUE(qd.continuous());
  EXPECT_EQ(RunTimeout(qd), 0ms);
  EXPECT_EQ(SpreadDelay(qd.name, qd.interval), 0ms);
}

TEST(Plan, RegionsPickByCodeOrIdAndUnknownOnesAreReported) {
  PlanOptions o;
  o.regions = {"902", "nope"};
  const auto specs = Plan(TwoRegions(), o);
  for (const auto& s : specs) EXPECT_EQ(s.region_code, "test-b") << s.name;
  EXPECT_EQ(specs.size(), 3u);
  EXPECT_EQ(UnknownRegions(TwoRegions(), o), std::vector<std::string>{"nope"});
  o.regions = {"test-a"};
  EXPECT_EQ(Plan(TwoRegions(), o).size(), 9u);
}

TEST(Plan, StunOnlyNodesAreProbedLikeTheOthers) {
  derpmap::DerpMap m = TwoRegions();
  m.regions[902].nodes[0].stun_only = true;
  const auto specs = Plan(m, PlanOptions{});
  const ProbeSpec& mesh = ByName(specs, "derp/test-b/2a/2a/mesh");
  EXPECT_FALSE(mesh.from.stun_only);
  EXPECT_FALSE(mesh.to->stun_only);
}

TEST(Schedule, SpreadIsStableWithinTheIntervalAndDiffersBetweenProbes) {
  std::set<std::int64_t> seen;
  for (const std::string name :
       {"derp/a/1/tls", "derp/a/1/udp", "derp/a/2/tls", "derp/b/1/1/mesh"}) {
    const auto d = SpreadDelay(name, 15s);
    EXPECT_GE(d.count(), 0);
    EXPECT_LT(d, 15s);
    EXPECT_EQ(d, SpreadDelay(name, 15s));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 1u);
  EXPECT_EQ(SpreadDelay("x", 0ms), 0ms);
}

TEST(Schedule, ARunGetsEightyPercentOfItsInterval) {
  ProbeSpec s;
  s.interval = 15s;
  EXPECT_EQ(RunTimeout(s), 12s);
  EXPECT_EQ(MapProbeSpec(30s).name, "derpmap-probe");
  EXPECT_EQ(ClassLabel(MapProbeSpec(30s).kind), "derp_map");
}

TEST(Config, FailOnParsesKindsAndNamesABadOne) {
  auto kinds = ParseFailOn("tls, mesh,udp6");
  ASSERT_TRUE(kinds.has_value());
  EXPECT_EQ(*kinds, (std::vector<ProbeKind>{ProbeKind::kTls, ProbeKind::kMesh, ProbeKind::kUdp6}));
  auto bad = ParseFailOn("tls,derp_mesh");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().find("\"derp_mesh\""), std::string::npos) << bad.error();
  EXPECT_EQ(SplitCommaList(" a, b,,c "), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Config, ValidateReportsEveryProblemAtOnce) {
  ProbeConfig c;
  EXPECT_TRUE(c.Validate().empty());
  c.max_concurrent = 0;
  c.json = true;  // without --once
  c.push_url = "ftp://x";
  c.mesh_interval = -1ms;
  const auto problems = c.Validate();
  EXPECT_EQ(problems.size(), 5u);  // --push-url without --once and with a bad scheme: two lines
  for (const auto& p : problems) EXPECT_EQ(p.rfind("--", 0), 0u) << p;
}

}  // namespace
}  // namespace derpkit::probe
