// ParseJson and ParseAuto: every tailcfg field, Go's decoding rules, and every refusal's message.
#include <gtest/gtest.h>

#include <string>

#include "lib/derpmap/derpmap.h"
#include "tests/unit/derpmap/samples.h"

namespace derpkit::derpmap {
namespace {

std::string ErrorOf(std::string_view json) {
  auto doc = ParseJson(json, "m.json");
  if (doc) return "(parsed)";
  return doc.error().ToString();
}

TEST(ParseJson, ReadsEveryField) {
  auto doc = ParseJson(samples::kEveryFieldJson, "every.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_EQ(doc->spelling, Spelling::kJson);
  EXPECT_TRUE(doc->omit_default_regions);
  ASSERT_TRUE(doc->home_params.has_value());
  EXPECT_EQ(doc->home_params->region_score,
            (std::map<std::int64_t, double>{{900, 0.8}, {901, 1.5}}));
  ASSERT_EQ(doc->regions.size(), 2u);
  ASSERT_TRUE(doc->regions.at(900).has_value());
  const Region& r = *doc->regions.at(900);
  EXPECT_EQ(r.region_id, 900);
  EXPECT_EQ(r.region_code, "home");
  EXPECT_EQ(r.region_name, "Home lab");
  EXPECT_DOUBLE_EQ(r.latitude, 52.37);
  EXPECT_DOUBLE_EQ(r.longitude, -4.89);
  EXPECT_TRUE(r.avoid);
  EXPECT_TRUE(r.no_measure_no_home);
  ASSERT_EQ(r.nodes.size(), 1u);
  const Node& n = r.nodes[0];
  EXPECT_EQ(n.name, "900a");
  EXPECT_EQ(n.region_id, 900);
  EXPECT_EQ(n.host_name, "derp1.example.net");
  EXPECT_EQ(n.cert_name, samples::kPin);
  EXPECT_EQ(n.ipv4, "192.0.2.10");
  EXPECT_EQ(n.ipv6, "2001:db8::10");
  EXPECT_EQ(n.stun_port, 3479);
  EXPECT_TRUE(n.stun_only);
  EXPECT_EQ(n.derp_port, 8443);
  EXPECT_TRUE(n.insecure_for_tests);
  EXPECT_EQ(n.stun_test_ip, "192.0.2.99");
  EXPECT_TRUE(n.can_port80);
  const Node& m = doc->regions.at(901)->nodes.at(0);
  EXPECT_EQ(m.ipv4, "none");
  EXPECT_EQ(m.stun_port, -1);
  EXPECT_FALSE(Validate(*doc, "every.json").has_value());
}

TEST(ParseJson, LeavesAbsentFieldsAtTheirZeroValues) {
  auto doc = ParseJson(R"({"Regions": {"7": {"Nodes": [{}]}}})", "m.json");
  ASSERT_TRUE(doc);
  EXPECT_FALSE(doc->home_params.has_value());
  EXPECT_FALSE(doc->omit_default_regions);
  const Region& r = *doc->regions.at(7);
  EXPECT_EQ(r, (Region{.nodes = {Node{}}}));
}

TEST(ParseJson, ReadsTheCapturedTestdataMaps) {
  for (const char* file : {"samples/derpmap-good.json", "samples/derpmap-with-down-node.json"}) {
    auto doc = ParseJson(samples::ReadTestdata(file), file);
    ASSERT_TRUE(doc) << doc.error().ToString();
    const Region& r = *doc->regions.at(900);
    EXPECT_EQ(r.region_code, "lo");
    EXPECT_EQ(r.nodes.at(0).name, "900a");
    EXPECT_EQ(r.nodes.at(0).host_name, "localhost");
    EXPECT_EQ(r.nodes.at(0).ipv4, "127.0.0.1");
    EXPECT_EQ(r.nodes.at(0).stun_port, 3478);
    EXPECT_EQ(r.nodes.at(0).derp_port, 13443);
    EXPECT_TRUE(r.nodes.at(0).insecure_for_tests);
    EXPECT_FALSE(Validate(*doc, file).has_value());
  }
}

// Go's encoding/json prefers an exact match but accepts any case.
TEST(ParseJson, MatchesKeysCaseInsensitivelyLikeGo) {
  auto doc = ParseJson(
      R"({"regions": {"900": {"regionid": 900, "NODES": [{"name": "a", "hostname": "h",
          "derpport": 444, "ipv4": "192.0.2.1"}]}}, "OMITDEFAULTREGIONS": true})",
      "m.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_TRUE(doc->omit_default_regions);
  const Node& n = doc->regions.at(900)->nodes.at(0);
  EXPECT_EQ(doc->regions.at(900)->region_id, 900);
  EXPECT_EQ(n.name, "a");
  EXPECT_EQ(n.host_name, "h");
  EXPECT_EQ(n.derp_port, 444);
  EXPECT_EQ(n.ipv4, "192.0.2.1");
}

TEST(ParseJson, TheLaterOfTwoKeysForOneFieldWins) {
  auto doc = ParseJson(R"({"Regions": {"9": {"RegionCode": "a", "regioncode": "b"}}})", "m.json");
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->regions.at(9)->region_code, "b");
}

TEST(ParseJson, IgnoresUnknownKeysSoNewerMapsLoad) {
  auto doc = ParseJson(
      R"({"Future": [1, 2], "Regions": {"9": {"RegionID": 9, "Shiny": {"x": 1},
          "Nodes": [{"Name": "9a", "RegionID": 9, "HostName": "h", "NewThing": true}]}}})",
      "m.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_EQ(doc->regions.at(9)->nodes.at(0).name, "9a");
}

TEST(ParseJson, NullLeavesAFieldAtZeroAndDeletesARegion) {
  auto doc = ParseJson(
      R"({"HomeParams": null, "Regions": {"1": null, "9": {"RegionID": null, "RegionCode": null,
          "Nodes": [{"Name": "9a", "STUNPort": null, "HostName": null}]}}})",
      "m.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_FALSE(doc->home_params.has_value());
  ASSERT_EQ(doc->regions.count(1), 1u);
  EXPECT_FALSE(doc->regions.at(1).has_value());
  const Region& r = *doc->regions.at(9);
  EXPECT_EQ(r.region_id, 0);
  EXPECT_EQ(r.region_code, "");
  EXPECT_EQ(r.nodes.at(0).stun_port, 0);
  EXPECT_EQ(r.nodes.at(0).host_name, "");
}

TEST(ParseJson, EmptyHomeParamsIsKeptAsPresent) {
  // In an update, an empty RegionScore means "reset every score to 1.0": present, not absent.
  auto doc = ParseJson(R"({"HomeParams": {}, "Regions": {}})", "m.json");
  ASSERT_TRUE(doc);
  ASSERT_TRUE(doc->home_params.has_value());
  EXPECT_TRUE(doc->home_params->region_score.empty());
}

TEST(ParseJson, RegionIdsUpToTwoToThe53MinusOne) {
  auto doc =
      ParseJson(R"({"Regions": {"9007199254740991": {"RegionID": 9007199254740991}}})", "m.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_EQ(doc->regions.at(kMaxRegionId)->region_id, kMaxRegionId);
}

TEST(ParseJson, RefusesWrongTypesWithTheFieldPath) {
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"RegionID": "900"}}})"),
            "m.json: Regions.900.RegionID: expected a number, got string");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"RegionCode": 7}}})"),
            "m.json: Regions.900.RegionCode: expected a string, got number");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Avoid": "yes"}}})"),
            "m.json: Regions.900.Avoid: expected a boolean, got string");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Latitude": "52"}}})"),
            "m.json: Regions.900.Latitude: expected a number, got string");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": {"Name": "a"}}}})"),
            "m.json: Regions.900.Nodes: expected an array, got object");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": [{"STUNOnly": 1}]}}})"),
            "m.json: Regions.900.Nodes[0].STUNOnly: expected a boolean, got number");
  EXPECT_EQ(ErrorOf(R"({"Regions": [1]})"), "m.json: Regions: expected an object, got array");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": []}})"),
            "m.json: Regions.900: expected an object, got array");
  EXPECT_EQ(ErrorOf(R"({"HomeParams": {"RegionScore": {"900": true}}})"),
            "m.json: HomeParams.RegionScore.900: expected a number, got boolean");
  EXPECT_EQ(ErrorOf(R"({"HomeParams": {"RegionScore": {"x": 1}}})"),
            "m.json: HomeParams.RegionScore.x: \"x\" is not a region id");
  EXPECT_EQ(ErrorOf(R"({"omitDefaultRegions": "true"})"),
            "m.json: omitDefaultRegions: expected a boolean, got string");
}

TEST(ParseJson, RefusesNonIntegersWhereGoHasAnInt) {
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"RegionID": 900.5}}})"),
            "m.json: Regions.900.RegionID: expected an integer, got 900.5");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": [{"DERPPort": 443.0}]}}})"),
            "m.json: Regions.900.Nodes[0].DERPPort: expected an integer, got 443.0");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"RegionID": 9223372036854775808}}})"),
            "m.json: Regions.900.RegionID: 9223372036854775808 is out of range for a Go int");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": [{"DERPPort": 10000000000}]}}})"),
            "m.json: Regions.900.Nodes[0].DERPPort: 10000000000 is out of range 0..65535");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": [{"STUNPort": -10000000000}]}}})"),
            "m.json: Regions.900.Nodes[0].STUNPort: -10000000000 is out of range -1..65535");
}

TEST(ParseJson, RefusesBadRegionKeysAndNullNodes) {
  EXPECT_EQ(ErrorOf(R"({"Regions": {"nyc": {}}})"),
            "m.json: Regions.nyc: \"nyc\" is not a region id (a decimal number)");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"9 ": {}}})"),
            "m.json: Regions.9 : \"9 \" is not a region id (a decimal number)");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"99999999999999999999": {}}})"),
            "m.json: Regions.99999999999999999999: \"99999999999999999999\" is not a region id "
            "(a decimal number)");
  EXPECT_EQ(ErrorOf(R"({"Regions": {"900": {"Nodes": [{"Name": "a"}, null]}}})"),
            "m.json: Regions.900.Nodes[1]: a node can't be null");
}

TEST(ParseJson, RefusesWhatIsNotAJsonObject) {
  EXPECT_EQ(ErrorOf("[]"), "m.json: expected a JSON object (a DERP map), got array");
  EXPECT_EQ(ErrorOf("null"), "m.json: expected a JSON object (a DERP map), got null");
  const std::string syntax = ErrorOf(R"({"Regions": {)");
  EXPECT_EQ(syntax.rfind("m.json: not valid JSON: parse error at line 1, column 14", 0), 0u)
      << syntax;
  EXPECT_EQ(ErrorOf(R"({"Regions": {}} x)").rfind("m.json: not valid JSON: ", 0), 0u);
  EXPECT_EQ(ErrorOf("{\"Regions\": {\"9\": {\"RegionCode\": \"\xff\"}}}")
                .rfind("m.json: not valid JSON: ", 0),
            0u);
}

TEST(ParseJson, RefusesMoreThanMaxNodes) {
  std::string json = R"({"Regions": {"9": {"Nodes": [)";
  for (std::size_t i = 0; i <= kMaxNodes; ++i) json += i == 0 ? "{}" : ",{}";
  json += "]}}}";
  EXPECT_EQ(ErrorOf(json), "m.json: Regions.9.Nodes[10000]: more than 10000 nodes in one map");
}

TEST(ParseAuto, PicksJsonForABraceAndYamlOtherwise) {
  auto json = ParseAuto("\xEF\xBB\xBF  \n{\"Regions\": {}}", "a");
  ASSERT_TRUE(json) << json.error().ToString();
  EXPECT_EQ(json->spelling, Spelling::kJson);
  auto yaml = ParseAuto("regions: {}\n", "b");
  ASSERT_TRUE(yaml) << yaml.error().ToString();
  EXPECT_EQ(yaml->spelling, Spelling::kYaml);
  // A JSON-looking file with a syntax error is reported as JSON, not as odd YAML.
  auto bad = ParseAuto("{\"Regions\": ", "c");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().reason.rfind("not valid JSON", 0), 0u);
}

}  // namespace
}  // namespace derpkit::derpmap
