// Validate: each rule's message and path, on maps built in code and on parsed documents.
#include <gtest/gtest.h>

#include <string>

#include "lib/derpmap/derpmap.h"
#include "tests/unit/derpmap/samples.h"

namespace derpkit::derpmap {
namespace {

Node GoodNode(std::string name, std::int64_t region) {
  Node n;
  n.name = std::move(name);
  n.region_id = region;
  n.host_name = "derp.example.net";
  return n;
}

DerpMap OneNodeMap(const Node& node) {
  DerpMap m;
  m.regions[900] = Region{.region_id = 900, .region_code = "home", .nodes = {node}};
  return m;
}

std::string ErrorOf(const DerpMap& m) {
  auto err = Validate(m, "m");
  return err ? err->ToString() : "(valid)";
}

std::string NodeError(void (*change)(Node&)) {
  Node n = GoodNode("900a", 900);
  change(n);
  return ErrorOf(OneNodeMap(n));
}

TEST(Validate, AcceptsAGoodMap) {
  DerpMap m = OneNodeMap(GoodNode("900a", 900));
  m.regions[901] = Region{.region_id = 901, .nodes = {GoodNode("901a", 901)}};
  EXPECT_EQ(ErrorOf(m), "(valid)");
  auto every = ParseJson(samples::kEveryFieldJson, "every.json");
  ASSERT_TRUE(every);
  DerpMap merged;
  MergeInto(merged, *every);
  EXPECT_EQ(ErrorOf(merged), "(valid)");
}

TEST(Validate, RegionKeysAndIds) {
  DerpMap m = OneNodeMap(GoodNode("a", 900));
  m.regions[900].region_id = 0;
  EXPECT_EQ(ErrorOf(m), "m: Regions.900.RegionID: missing (must equal the region's key 900)");
  m.regions[900].region_id = 901;
  EXPECT_EQ(ErrorOf(m), "m: Regions.900.RegionID: 901 does not match the region's key 900");

  for (std::int64_t bad : {std::int64_t{0}, std::int64_t{-3}, kMaxRegionId + 1}) {
    DerpMap b;
    b.regions[bad] = Region{.region_id = bad};
    EXPECT_EQ(ErrorOf(b), "m: Regions." + std::to_string(bad) + ": region id " +
                              std::to_string(bad) + " is out of range 1..9007199254740991");
  }
  DerpMap top;
  top.regions[kMaxRegionId] = Region{.region_id = kMaxRegionId};
  EXPECT_EQ(ErrorOf(top), "(valid)");
}

TEST(Validate, NodeNamesAreRequiredAndUniqueAcrossTheMap) {
  EXPECT_EQ(NodeError([](Node& n) { n.name = ""; }), "m: Regions.900.Nodes[0].Name: missing");

  DerpMap same_region = OneNodeMap(GoodNode("x", 900));
  same_region.regions[900].nodes.push_back(GoodNode("x", 900));
  EXPECT_EQ(ErrorOf(same_region),
            "m: Regions.900.Nodes[1].Name: \"x\" is also the name of Regions.900.Nodes[0] (names "
            "are unique across the map)");

  DerpMap two_regions = OneNodeMap(GoodNode("x", 900));
  two_regions.regions[901] = Region{.region_id = 901, .nodes = {GoodNode("x", 901)}};
  EXPECT_EQ(ErrorOf(two_regions),
            "m: Regions.901.Nodes[0].Name: \"x\" is also the name of Regions.900.Nodes[0] (names "
            "are unique across the map)");
}

TEST(Validate, NodeRegionIdAndHostName) {
  EXPECT_EQ(NodeError([](Node& n) { n.region_id = 0; }),
            "m: Regions.900.Nodes[0].RegionID: missing (must equal its region's id 900)");
  EXPECT_EQ(NodeError([](Node& n) { n.region_id = 1; }),
            "m: Regions.900.Nodes[0].RegionID: 1 does not match its region's id 900");
  EXPECT_EQ(NodeError([](Node& n) { n.host_name = ""; }),
            "m: Regions.900.Nodes[0].HostName: missing");
}

TEST(Validate, Ports) {
  EXPECT_EQ(NodeError([](Node& n) { n.derp_port = 70000; }),
            "m: Regions.900.Nodes[0].DERPPort: 70000 is out of range 0..65535");
  EXPECT_EQ(NodeError([](Node& n) { n.derp_port = -1; }),
            "m: Regions.900.Nodes[0].DERPPort: -1 is out of range 0..65535");
  EXPECT_EQ(NodeError([](Node& n) { n.stun_port = -2; }),
            "m: Regions.900.Nodes[0].STUNPort: -2 is out of range -1..65535");
  EXPECT_EQ(NodeError([](Node& n) { n.stun_port = 65536; }),
            "m: Regions.900.Nodes[0].STUNPort: 65536 is out of range -1..65535");
  EXPECT_EQ(NodeError([](Node& n) {
              n.stun_port = -1;
              n.derp_port = 65535;
            }),
            "(valid)");
}

TEST(Validate, AddressFields) {
  EXPECT_EQ(NodeError([](Node& n) { n.ipv4 = "192.0.2.300"; }),
            "m: Regions.900.Nodes[0].IPv4: \"192.0.2.300\" is not an IPv4 address (write \"none\" "
            "to turn IPv4 off for this node)");
  EXPECT_EQ(NodeError([](Node& n) { n.ipv4 = "2001:db8::1"; }),
            "m: Regions.900.Nodes[0].IPv4: \"2001:db8::1\" is an IPv6 address; put it in IPv6 (or "
            "write \"none\" to turn IPv4 off)");
  EXPECT_EQ(NodeError([](Node& n) { n.ipv6 = "192.0.2.1"; }),
            "m: Regions.900.Nodes[0].IPv6: \"192.0.2.1\" is an IPv4 address; put it in IPv4 (or "
            "write \"none\" to turn IPv6 off)");
  EXPECT_EQ(NodeError([](Node& n) { n.ipv6 = "2001:db8::g"; }),
            "m: Regions.900.Nodes[0].IPv6: \"2001:db8::g\" is not an IPv6 address (write \"none\" "
            "to turn IPv6 off for this node)");
  EXPECT_EQ(NodeError([](Node& n) { n.stun_test_ip = "localhost"; }),
            "m: Regions.900.Nodes[0].STUNTestIP: \"localhost\" is not an IP address");
  EXPECT_EQ(NodeError([](Node& n) {
              n.ipv4 = "none";
              n.ipv6 = "None";
              n.stun_test_ip = "::1";
            }),
            "(valid)");
}

TEST(Validate, CertNamePins) {
  EXPECT_EQ(NodeError([](Node& n) { n.cert_name = "sha256-raw:<64 hex>"; }),
            "m: Regions.900.Nodes[0].CertName: a sha256-raw pin needs 64 hex digits (the SHA-256 "
            "of the certificate's DER), got 8 characters");
  EXPECT_EQ(
      NodeError([](Node& n) { n.cert_name = std::string("sha256-raw:") + std::string(64, 'x'); }),
      "m: Regions.900.Nodes[0].CertName: a sha256-raw pin needs 64 hex digits (the SHA-256 "
      "of the certificate's DER), got 64 characters");
  EXPECT_EQ(NodeError([](Node& n) { n.cert_name = samples::kPin; }), "(valid)");
  EXPECT_EQ(NodeError([](Node& n) { n.cert_name = "other.example.net"; }), "(valid)");
}

TEST(Validate, TheProtocolDocExampleFailsOnlyOnItsPlaceholderPin) {
  auto doc = ParseJson(samples::kProtocolDocJson, "doc.json");
  ASSERT_TRUE(doc) << doc.error().ToString();
  auto err = Validate(*doc, "doc.json");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->path, "Regions.900.Nodes[1].CertName");

  // With a real pin in place of the doc's "<64 hex>", the same example is a valid map.
  std::string text = samples::kProtocolDocJson;
  const std::string placeholder = "sha256-raw:<64 hex>";
  text.replace(text.find(placeholder), placeholder.size(), "sha256-raw:" + std::string(64, 'a'));
  auto pinned = ParseJson(text, "doc.json");
  ASSERT_TRUE(pinned) << pinned.error().ToString();
  const auto none = Validate(*pinned, "doc.json");
  EXPECT_FALSE(none.has_value()) << none->ToString();
}

TEST(Validate, UsesTheRequestedSpelling) {
  DerpMap m = OneNodeMap(GoodNode("a", 900));
  m.regions[900].nodes[0].stun_port = -5;
  auto err = Validate(m, "h.yaml", Spelling::kYaml);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->ToString(), "h.yaml: regions.900.nodes[0].stunport: -5 is out of range -1..65535");
}

TEST(Validate, SkipsNullRegionsOfADocument) {
  auto doc = ParseYaml("regions:\n  1: null\n", "h.yaml");
  ASSERT_TRUE(doc);
  EXPECT_FALSE(Validate(*doc, "h.yaml").has_value());
}

}  // namespace
}  // namespace derpkit::derpmap
