// The model's behaviours: defaults, region lookup, error text, Headscale's merge, and ToJson
// (byte-exact for a small map, round trips for the testdata and protocol-doc maps).
#include <gtest/gtest.h>

#include <string>

#include "lib/derpmap/derpmap.h"
#include "tests/unit/derpmap/samples.h"

namespace derpkit::derpmap {
namespace {

DerpMap MapOf(std::string_view text, std::string_view source = "t") {
  auto doc = ParseAuto(text, source);
  EXPECT_TRUE(doc) << doc.error().ToString();
  DerpMap map;
  if (doc) MergeInto(map, *doc);
  return map;
}

TEST(Node, AppliesTheReferenceDefaults) {
  Node n;
  EXPECT_EQ(n.EffectiveDerpPort(), 443);
  EXPECT_EQ(n.EffectiveStunPort(), std::optional<std::uint16_t>(3478));
  EXPECT_EQ(n.Ipv4Use(), Node::AddrUse::kDns);
  EXPECT_EQ(n.Ipv6Use(), Node::AddrUse::kDns);
  n.derp_port = 8443;
  n.stun_port = 3479;
  EXPECT_EQ(n.EffectiveDerpPort(), 8443);
  EXPECT_EQ(n.EffectiveStunPort(), std::optional<std::uint16_t>(3479));
  n.stun_port = -1;
  EXPECT_EQ(n.EffectiveStunPort(), std::nullopt);
}

TEST(Node, ClassifiesAddressFieldsAsTailscaleDoes) {
  Node n;
  n.ipv4 = "192.0.2.1";
  n.ipv6 = "2001:db8::1";
  EXPECT_EQ(n.Ipv4Use(), Node::AddrUse::kLiteral);
  EXPECT_EQ(n.Ipv6Use(), Node::AddrUse::kLiteral);
  n.ipv4 = "none";
  n.ipv6 = "none";
  EXPECT_EQ(n.Ipv4Use(), Node::AddrUse::kDisabled);
  EXPECT_EQ(n.Ipv6Use(), Node::AddrUse::kDisabled);
  // An address of the other family is "not an address of this family": off.
  n.ipv4 = "2001:db8::1";
  n.ipv6 = "192.0.2.1";
  EXPECT_EQ(n.Ipv4Use(), Node::AddrUse::kDisabled);
  EXPECT_EQ(n.Ipv6Use(), Node::AddrUse::kDisabled);
}

TEST(DerpMap, FindsARegionByCodeOrId) {
  const DerpMap map = MapOf(samples::kEveryFieldJson);
  ASSERT_NE(map.FindRegion("home"), nullptr);
  EXPECT_EQ(map.FindRegion("home")->region_id, 900);
  ASSERT_NE(map.FindRegion("901"), nullptr);
  EXPECT_EQ(map.FindRegion("901")->region_code, "away");
  EXPECT_EQ(map.FindRegion("902"), nullptr);
  EXPECT_EQ(map.FindRegion(""), nullptr);
  EXPECT_EQ(map.FindRegion("90x"), nullptr);
}

TEST(MapError, ToStringJoinsTheNonEmptyParts) {
  EXPECT_EQ((MapError{"a.json", "Regions.9", "bad"}).ToString(), "a.json: Regions.9: bad");
  EXPECT_EQ((MapError{"a.json", "", "bad"}).ToString(), "a.json: bad");
  EXPECT_EQ((MapError{"", "", "bad"}).ToString(), "bad");
}

TEST(MergeInto, LaterRegionsReplaceEarlierOnesAndNullDeletes) {
  auto first = ParseJson(samples::kEveryFieldJson, "first.json");
  auto second = ParseYaml(
      "regions:\n  900: null\n  901:\n    regionid: 901\n    regioncode: new\n  902:\n"
      "    regionid: 902\n",
      "second.yaml");
  ASSERT_TRUE(first && second);
  DerpMap map;
  MergeInto(map, *first);
  MergeInto(map, *second);
  EXPECT_EQ(map.regions.count(900), 0u);
  ASSERT_EQ(map.regions.count(901), 1u);
  // Whole regions are replaced, not merged field by field: 901's node is gone.
  EXPECT_EQ(map.regions.at(901).region_code, "new");
  EXPECT_TRUE(map.regions.at(901).nodes.empty());
  EXPECT_EQ(map.regions.count(902), 1u);
  // Set in the first document, absent from the second: kept.
  EXPECT_TRUE(map.home_params.has_value());
  EXPECT_TRUE(map.omit_default_regions);
}

TEST(MergeInto, ANullFollowedByARegionRestoresIt) {
  DerpMap map;
  MergeInto(map, *ParseYaml("regions:\n  5: null\n", "a"));
  MergeInto(map, *ParseYaml("regions:\n  5: {regionid: 5}\n", "b"));
  ASSERT_EQ(map.regions.count(5), 1u);
  MergeInto(map, *ParseYaml("regions:\n  5: null\n", "c"));
  EXPECT_EQ(map.regions.count(5), 0u);
}

TEST(MergeInto, HomeParamsWhenSetReplaceTheEarlierOnes) {
  DerpMap map;
  MergeInto(map, *ParseJson(R"({"HomeParams": {"RegionScore": {"1": 2, "2": 3}}})", "a"));
  MergeInto(map, *ParseJson(R"({"HomeParams": {"RegionScore": {"3": 0.5}}})", "b"));
  ASSERT_TRUE(map.home_params.has_value());
  EXPECT_EQ(map.home_params->region_score, (std::map<std::int64_t, double>{{3, 0.5}}));
}

TEST(ToJson, WritesGoFieldOrderOmitemptyAndStringSortedKeys) {
  DerpMap map;
  map.home_params = HomeParams{{{1000, 2.5}, {900, 0.5}}};
  map.regions[900] = Region{.region_id = 900,
                            .region_code = "home",
                            .region_name = "Home",
                            .nodes = {Node{.name = "900a",
                                           .region_id = 900,
                                           .host_name = "derp.example.net",
                                           .stun_port = -1,
                                           .can_port80 = true}}};
  map.regions[1000] = Region{.region_id = 1000, .latitude = 1.5, .no_measure_no_home = true};
  map.omit_default_regions = true;
  EXPECT_EQ(ToJson(map), R"({
  "HomeParams": {
    "RegionScore": {
      "1000": 2.5,
      "900": 0.5
    }
  },
  "Regions": {
    "1000": {
      "RegionID": 1000,
      "RegionCode": "",
      "RegionName": "",
      "Latitude": 1.5,
      "NoMeasureNoHome": true,
      "Nodes": []
    },
    "900": {
      "RegionID": 900,
      "RegionCode": "home",
      "RegionName": "Home",
      "Nodes": [
        {
          "Name": "900a",
          "RegionID": 900,
          "HostName": "derp.example.net",
          "STUNPort": -1,
          "CanPort80": true
        }
      ]
    }
  },
  "omitDefaultRegions": true
})");
}

TEST(ToJson, WritesAnEmptyMap) { EXPECT_EQ(ToJson(DerpMap{}), "{\n  \"Regions\": {}\n}"); }

// ParseJson(ToJson(m)) == m for every map the issue names.
TEST(ToJson, RoundTrips) {
  const std::string inputs[] = {
      samples::ReadTestdata("samples/derpmap-good.json"),
      samples::ReadTestdata("samples/derpmap-with-down-node.json"),
      samples::kProtocolDocJson,
      samples::kProtocolDocYaml,
      samples::kEveryFieldJson,
      samples::kEveryFieldYaml,
  };
  for (const std::string& input : inputs) {
    const DerpMap map = MapOf(input);
    ASSERT_FALSE(map.regions.empty()) << input;
    const std::string json = ToJson(map);
    EXPECT_EQ(MapOf(json), map) << json;
    EXPECT_EQ(ToJson(MapOf(json)), json);
  }
}

TEST(ToJson, EveryFieldSurvivesTheRoundTrip) {
  const DerpMap map = MapOf(samples::kEveryFieldJson);
  const DerpMap again = MapOf(ToJson(map));
  const Node& n = again.regions.at(900).nodes.at(0);
  EXPECT_EQ(n.cert_name, samples::kPin);
  EXPECT_TRUE(n.insecure_for_tests);
  EXPECT_EQ(n.stun_test_ip, "192.0.2.99");
  EXPECT_TRUE(again.regions.at(900).avoid);
  EXPECT_EQ(again.home_params->region_score.at(901), 1.5);
  EXPECT_TRUE(again.omit_default_regions);
}

}  // namespace
}  // namespace derpkit::derpmap
