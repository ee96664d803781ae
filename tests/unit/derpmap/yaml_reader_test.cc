// ParseYaml: Headscale's spellings for every field, and every mistake Headscale would have
// swallowed silently, refused with its path.
#include <gtest/gtest.h>

#include <string>

#include "lib/derpmap/derpmap.h"
#include "tests/unit/derpmap/samples.h"

namespace derpkit::derpmap {
namespace {

std::string ErrorOf(std::string_view yaml) {
  auto doc = ParseYaml(yaml, "headscale.yaml");
  if (doc) return "(parsed)";
  return doc.error().ToString();
}

DerpMap Merged(const MapDocument& doc) {
  DerpMap map;
  MergeInto(map, doc);
  return map;
}

TEST(ParseYaml, ReadsEveryFieldLikeTheJsonSpelling) {
  auto yaml = ParseYaml(samples::kEveryFieldYaml, "every.yaml");
  ASSERT_TRUE(yaml) << yaml.error().ToString();
  auto json = ParseJson(samples::kEveryFieldJson, "every.json");
  ASSERT_TRUE(json) << json.error().ToString();
  EXPECT_EQ(yaml->spelling, Spelling::kYaml);
  EXPECT_EQ(yaml->regions, json->regions);
  EXPECT_EQ(yaml->home_params, json->home_params);
  EXPECT_EQ(yaml->omit_default_regions, json->omit_default_regions);
  // Spot checks, so that a reader bug common to both formats can't hide here.
  const Node& n = yaml->regions.at(900)->nodes.at(0);
  EXPECT_EQ(n.cert_name, samples::kPin);
  EXPECT_EQ(n.ipv6, "2001:db8::10");
  EXPECT_EQ(n.stun_port, 3479);
  EXPECT_TRUE(n.can_port80);
  EXPECT_DOUBLE_EQ(yaml->regions.at(900)->longitude, -4.89);
}

TEST(ParseYaml, ReadsTheProtocolDocExampleWithItsNullRegion) {
  auto doc = ParseYaml(samples::kProtocolDocYaml, "doc.yaml");
  ASSERT_TRUE(doc) << doc.error().ToString();
  ASSERT_EQ(doc->regions.count(1), 1u);
  EXPECT_FALSE(doc->regions.at(1).has_value());
  const Region& r = *doc->regions.at(900);
  EXPECT_EQ(r.region_name, "My region (east)");
  EXPECT_EQ(r.nodes.at(0).host_name, "derp900a.example.com");
  EXPECT_EQ(r.nodes.at(0).EffectiveStunPort(), 3478);
  EXPECT_EQ(r.nodes.at(0).EffectiveDerpPort(), 443);
  EXPECT_FALSE(Validate(*doc, "doc.yaml").has_value());
}

TEST(ParseYaml, EveryNullSpellingDeletesARegion) {
  auto doc = ParseYaml("regions:\n  1: null\n  2: ~\n  3:\n  4: Null\n", "h.yaml");
  ASSERT_TRUE(doc) << doc.error().ToString();
  for (std::int64_t id : {1, 2, 3, 4}) {
    ASSERT_EQ(doc->regions.count(id), 1u) << id;
    EXPECT_FALSE(doc->regions.at(id).has_value()) << id;
  }
}

TEST(ParseYaml, AcceptsTheScalarFormsYamlV3Accepts) {
  auto doc = ParseYaml(R"(regions:
  900:
    regionid: +900
    regioncode: 123
    avoid: yes
    nomeasurenohome: Off
    latitude: 5
    nodes:
      - name: 900
        derpport: 0x1bb
        stunport: 0o7
        stunonly: TRUE
)",
                       "h.yaml");
  ASSERT_TRUE(doc) << doc.error().ToString();
  const Region& r = *doc->regions.at(900);
  EXPECT_EQ(r.region_id, 900);
  EXPECT_EQ(r.region_code, "123");  // a plain scalar into a string field is its text
  EXPECT_TRUE(r.avoid);
  EXPECT_FALSE(r.no_measure_no_home);
  EXPECT_DOUBLE_EQ(r.latitude, 5);
  EXPECT_EQ(r.nodes.at(0).name, "900");
  EXPECT_EQ(r.nodes.at(0).derp_port, 443);
  EXPECT_EQ(r.nodes.at(0).stun_port, 7);
  EXPECT_TRUE(r.nodes.at(0).stun_only);
}

TEST(ParseYaml, AnEmptyFileIsAnEmptyDocument) {
  auto doc = ParseYaml("# nothing here yet\n", "h.yaml");
  ASSERT_TRUE(doc);
  EXPECT_TRUE(doc->regions.empty());
}

// The mistake that silently broke Headscale users: the JSON spelling in a YAML file.
TEST(ParseYaml, NamesTheYamlSpellingOfAJsonKey) {
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    RegionID: 900\n"),
            "headscale.yaml: regions.900: unknown key \"RegionID\" (Headscale's YAML spells it "
            "\"regionid\"; Headscale would silently ignore \"RegionID\")");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: 900\n    nodes:\n      - HostName: a\n"),
            "headscale.yaml: regions.900.nodes[0]: unknown key \"HostName\" (Headscale's YAML "
            "spells it \"hostname\"; Headscale would silently ignore \"HostName\")");
  EXPECT_EQ(ErrorOf("Regions: {}\n"),
            "headscale.yaml: unknown key \"Regions\" (Headscale's YAML spells it \"regions\"; "
            "Headscale would silently ignore \"Regions\")");
  EXPECT_EQ(ErrorOf("omitDefaultRegions: true\n"),
            "headscale.yaml: unknown key \"omitDefaultRegions\" (Headscale's YAML spells it "
            "\"omitdefaultregions\"; Headscale would silently ignore \"omitDefaultRegions\")");
  EXPECT_EQ(ErrorOf("homeparams:\n  RegionScore: {}\n"),
            "headscale.yaml: homeparams: unknown key \"RegionScore\" (Headscale's YAML spells it "
            "\"regionscore\"; Headscale would silently ignore \"RegionScore\")");
}

TEST(ParseYaml, RefusesUnknownKeys) {
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    nodes:\n      - hostnmae: a\n"),
            "headscale.yaml: regions.900.nodes[0]: unknown key \"hostnmae\" (Headscale would "
            "silently ignore it; known keys: name, regionid, hostname, certname, ipv4, ipv6, "
            "stunport, stunonly, derpport, insecurefortests, stuntestip, canport80)");
  EXPECT_EQ(ErrorOf("derp:\n  paths: []\n"),
            "headscale.yaml: unknown key \"derp\" (Headscale would silently ignore it; known "
            "keys: homeparams, regions, omitdefaultregions)");
}

TEST(ParseYaml, RefusesAKeyGivenTwice) {
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: 900\n    regioncode: a\n    regionid: 901\n"),
            "headscale.yaml: regions.900: key \"regionid\" is given twice (lines 3 and 5)");
}

TEST(ParseYaml, RefusesWrongTypesWithTheFieldPath) {
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: \"900\"\n"),
            "headscale.yaml: regions.900.regionid: expected an integer, got the quoted string "
            "\"900\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: nine\n"),
            "headscale.yaml: regions.900.regionid: expected an integer, got \"nine\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: 900.0\n"),
            "headscale.yaml: regions.900.regionid: expected an integer, got \"900.0\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    avoid: maybe\n"),
            "headscale.yaml: regions.900.avoid: expected true or false, got \"maybe\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    avoid: \"true\"\n"),
            "headscale.yaml: regions.900.avoid: expected true or false, got the quoted string "
            "\"true\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    latitude: .nan\n"),
            "headscale.yaml: regions.900.latitude: expected a finite number, got \".nan\"");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionname: [a, b]\n"),
            "headscale.yaml: regions.900.regionname: expected a string, got a sequence");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    nodes:\n      name: a\n"),
            "headscale.yaml: regions.900.nodes: expected a sequence, got a mapping");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    nodes:\n      - null\n"),
            "headscale.yaml: regions.900.nodes[0]: a node can't be null");
  EXPECT_EQ(ErrorOf("regions:\n  nyc: {}\n"),
            "headscale.yaml: regions.nyc: \"nyc\" is not a region id (a decimal number)");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    nodes:\n      - derpport: 99999999999\n"),
            "headscale.yaml: regions.900.nodes[0].derpport: 99999999999 is out of range 0..65535");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionid: 9223372036854775808\n"),
            "headscale.yaml: regions.900.regionid: 9223372036854775808 is out of range for a Go "
            "int");
  EXPECT_EQ(ErrorOf("regions:\n  ? [1, 2]\n  : {}\n"),
            "headscale.yaml: regions: a key must be a plain value, not a sequence");
}

TEST(ParseYaml, RefusesWhatIsNotAMapOrNotYaml) {
  EXPECT_EQ(ErrorOf("- a\n- b\n"),
            "headscale.yaml: expected a mapping (a DERP map), got a sequence");
  EXPECT_EQ(ErrorOf("regions: [\n"),
            "headscale.yaml: not valid YAML: line 2, column 1: end of "
            "sequence flow not found");
  EXPECT_EQ(ErrorOf("regions:\n  900:\n    regionname: \"caf\xe9\"\n"),
            "headscale.yaml: not valid YAML: the text is not UTF-8");
}

// One aliased node list repeated in every region would otherwise multiply into millions of nodes.
TEST(ParseYaml, CountsAliasedNodesAgainstTheLimit) {
  std::string yaml = "regions:\n  1:\n    nodes: &n\n";
  for (int i = 0; i < 200; ++i) yaml += "      - {name: x}\n";
  for (int i = 2; i <= 60; ++i) yaml += "  " + std::to_string(i) + ": {nodes: *n}\n";
  EXPECT_EQ(ErrorOf(yaml), "headscale.yaml: regions.51.nodes[0]: more than 10000 nodes in one map");
}

TEST(ParseYaml, ValidatesWithYamlSpelledPaths) {
  auto doc = ParseYaml(
      "regions:\n  900:\n    regionid: 900\n    nodes:\n      - name: a\n"
      "        regionid: 900\n        derpport: 70000\n        hostname: h\n",
      "headscale.yaml");
  ASSERT_TRUE(doc) << doc.error().ToString();
  auto err = Validate(*doc, "headscale.yaml");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->ToString(),
            "headscale.yaml: regions.900.nodes[0].derpport: 70000 is out of range 0..65535");
  EXPECT_EQ(Merged(*doc).regions.at(900).nodes.at(0).derp_port, 70000);
}

}  // namespace
}  // namespace derpkit::derpmap
