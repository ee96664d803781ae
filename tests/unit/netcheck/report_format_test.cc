// The text and JSON forms of a Report (netcheck/report_text.h, report_json.h) as golden strings
// built from one fixed report, plus the shapes of Tailscale's own output
// (testdata/samples/netcheck-json.txt, the layout of tools-reference.md §4.2).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "netcheck/report_json.h"
#include "netcheck/report_text.h"
#include "tests/unit/netcheck/test_maps.h"

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;
using testing::MakeMap;
using testing::MakeNode;
using testing::MakeRegion;

derpmap::DerpMap Map() {
  return MakeMap({
      MakeRegion(1, "nyc", "New York City", {MakeNode(1, "1a")}),
      MakeRegion(2, "sfo", "San Francisco", {MakeNode(2, "2a")}),
      MakeRegion(9, "lo", "Home & <lab>", {MakeNode(9, "9a")}),
      MakeRegion(10, "tok", "Tokyo", {MakeNode(10, "10a")}),
  });
}

Report Fixed() {
  Report r;
  r.now = std::chrono::system_clock::time_point{} + 1796016176s + 123456789ns;
  r.udp = true;
  r.ipv4 = true;
  r.ipv4_can_send = true;
  r.os_has_ipv6 = true;
  r.mapping_varies_by_dest_ip = false;
  r.hair_pinning = true;
  r.upnp = false;
  r.pmp = true;
  r.pcp = false;
  r.preferred_derp = 1;
  r.region_latency = {{1, 12345678ns}, {2, 71900000ns}, {9, 451000ns}};
  r.region_v4_latency = r.region_latency;
  r.global_v4_counters = {{"198.51.100.7:41641", 3}, {"198.51.100.7:5", 1}};
  r.global_v4 = "198.51.100.7:41641";
  r.captive_portal = false;
  return r;
}

TEST(ReportText, ReadsLikeTailscaleNetcheck) {
  const std::string want =
      "\n"
      "Report:\n"
      "\t* Time: 2026-11-30T05:22:56.123456789Z\n"
      "\t* UDP: true\n"
      "\t* IPv4: yes, 198.51.100.7:41641\n"
      "\t* IPv6: no, but OS has support\n"
      "\t* MappingVariesByDestIP: false\n"
      "\t* PortMapping: NAT-PMP\n"
      "\t* CaptivePortal: false\n"
      "\t* Nearest DERP: New York City\n"
      "\t* DERP latency:\n"
      "\t\t-  lo: 500µs   (Home & <lab>)\n"
      "\t\t- nyc: 12.3ms  (New York City)\n"
      "\t\t- sfo: 71.9ms  (San Francisco)\n"
      "\t\t- tok:         (Tokyo)\n"
      "\t* HairPinning: true\n";
  EXPECT_EQ(RenderText(Fixed(), Map(), {}), want);
}

TEST(ReportText, VerboseNamesRegionIdsAndTimeIsLocal) {
  const std::string text =
      RenderText(Fixed(), Map(), {.verbose = true, .utc_offset_seconds = -4 * 3600});
  EXPECT_NE(text.find("\t* Time: 2026-11-30T01:22:56.123456789-04:00\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\t\t- nyc: 12.3ms  (derp1, New York City)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\t\t- tok:         (derp10, Tokyo)\n"), std::string::npos) << text;
}

TEST(ReportText, EveryBranchOfTheReferenceLines) {
  Report r = Fixed();
  r.global_v4.clear();
  r.global_v6 = "[2001:db8::7]:41641";
  r.mapping_varies_by_dest_ip.reset();
  r.upnp = r.pmp = r.pcp = std::nullopt;
  r.captive_portal.reset();
  r.hair_pinning.reset();
  std::string text = RenderText(r, Map(), {});
  EXPECT_NE(text.find("\t* IPv4: (no addr found)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\t* IPv6: yes, [2001:db8::7]:41641\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\t* MappingVariesByDestIP: \n"), std::string::npos) << text;
  EXPECT_NE(text.find("\t* PortMapping: not checked\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("CaptivePortal"), std::string::npos) << text;
  EXPECT_EQ(text.find("HairPinning"), std::string::npos) << text;

  r.global_v6.clear();
  r.ipv6 = true;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* IPv6: (no addr found)\n"), std::string::npos);
  r.ipv6 = false;
  r.os_has_ipv6 = false;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* IPv6: no, unavailable in OS\n"), std::string::npos);

  r.upnp = r.pmp = r.pcp = false;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* PortMapping: \n"), std::string::npos);
  r.upnp = r.pcp = true;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* PortMapping: UPnP, PCP\n"), std::string::npos);

  r.preferred_derp = 0;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* Nearest DERP: [none]\n"), std::string::npos);
  r.preferred_derp = 77;
  EXPECT_NE(RenderText(r, Map(), {}).find("\t* Nearest DERP: 77 (region not found in map)\n"),
            std::string::npos);
  r.region_latency.clear();
  text = RenderText(r, Map(), {});
  EXPECT_NE(text.find("\t* Nearest DERP: unknown (no response to latency probes)\n"),
            std::string::npos);
  EXPECT_EQ(text.find("DERP latency"), std::string::npos) << "no latency block without latencies";
}

TEST(ReportText, ConnectResultsComeAfterTheReferenceLines) {
  Report r = Fixed();
  ConnectEntry ok;
  ok.region_id = 1;
  ok.region_code = "nyc";
  ok.node_name = "1a";
  ok.ok = true;
  ok.transport = "derp";
  ok.round_trip = 2345678ns;
  ConnectEntry bad;
  bad.region_id = 2;
  bad.region_code = "sfo";
  bad.node_name = "2a";
  bad.error = "TLS handshake with 192.0.2.2:443: timed out";
  bad.warnings = {"2 different server keys: load balancer in front?"};
  r.connect = std::vector<ConnectEntry>{ok, bad};
  const std::string text = RenderText(r, Map(), {});
  const std::string want_tail =
      "\t* HairPinning: true\n"
      "\t* DERP connect:\n"
      "\t\t- nyc: ok, 2.3ms round trip via 1a (derp)\n"
      "\t\t- sfo: FAILED at 2a: TLS handshake with 192.0.2.2:443: timed out\n"
      "\t\t  warning: 2 different server keys: load balancer in front?\n";
  ASSERT_GE(text.size(), want_tail.size());
  EXPECT_EQ(text.substr(text.size() - want_tail.size()), want_tail) << text;
}

TEST(ReportJson, TailscaleKeysAndGoEncoding) {
  Report r = Fixed();
  r.region_latency[10] = 3ms;  // Go sorts map keys as text: "10" before "2"
  const std::string want = R"({
	"Now": "2026-11-30T05:22:56.123456789Z",
	"UDP": true,
	"IPv6": false,
	"IPv4": true,
	"IPv6CanSend": false,
	"IPv4CanSend": true,
	"OSHasIPv6": true,
	"ICMPv4": false,
	"MappingVariesByDestIP": false,
	"HairPinning": true,
	"UPnP": false,
	"PMP": true,
	"PCP": false,
	"PreferredDERP": 1,
	"RegionLatency": {
		"1": 12345678,
		"10": 3000000,
		"2": 71900000,
		"9": 451000
	},
	"RegionV4Latency": {
		"1": 12345678,
		"2": 71900000,
		"9": 451000
	},
	"RegionV6Latency": {},
	"GlobalV4Counters": {
		"198.51.100.7:41641": 3,
		"198.51.100.7:5": 1
	},
	"GlobalV6Counters": null,
	"GlobalV4": "198.51.100.7:41641",
	"GlobalV6": "",
	"CaptivePortal": false
})";
  EXPECT_EQ(RenderJson(r, JsonStyle::kIndented), want);
}

TEST(ReportJson, OneLineFormNullsAndConnectWithGoEscaping) {
  Report r;
  r.now = std::chrono::system_clock::time_point{} + 1796016176s;
  ConnectEntry e;
  e.region_id = 9;
  e.region_code = "lo";
  e.error = "got <html> & no DERP";
  r.connect = std::vector<ConnectEntry>{e};
  const std::string want =
      R"({"Now":"2026-11-30T05:22:56Z","UDP":false,"IPv6":false,"IPv4":false,"IPv6CanSend":false,)"
      R"("IPv4CanSend":false,"OSHasIPv6":false,"ICMPv4":false,"MappingVariesByDestIP":null,)"
      R"("HairPinning":null,"UPnP":null,"PMP":null,"PCP":null,"PreferredDERP":0,)"
      R"("RegionLatency":{},"RegionV4Latency":{},"RegionV6Latency":{},"GlobalV4Counters":null,)"
      R"("GlobalV6Counters":null,"GlobalV4":"","GlobalV6":"","CaptivePortal":null,)"
      R"("Connect":[{"RegionID":9,"RegionCode":"lo","Node":"","OK":false,"Transport":"",)"
      R"("WebSocketOnly":false,"RoundTrip":0,"ServerKeys":[],)"
      R"("Error":"got \u003chtml\u003e \u0026 no DERP","Warnings":[]}]})";
  EXPECT_EQ(RenderJson(r, JsonStyle::kLine), want);
}

// Every key of the real `tailscale netcheck --format json` output (v1.36.2) is in ours, in the
// same order; ours adds the keys Tailscale added later (Now, GlobalV*Counters).
TEST(ReportJson, KeysFollowTheCapturedTailscaleOutput) {
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/samples/netcheck-json.txt");
  ASSERT_TRUE(in) << "missing testdata sample";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  text = text.substr(0, text.rfind('}') + 1);  // the capture ends with "rc=0"
  const auto sample = nlohmann::ordered_json::parse(text);
  const auto ours = nlohmann::ordered_json::parse(RenderJson(Fixed(), JsonStyle::kIndented));
  std::vector<std::string> our_keys;
  for (const auto& [k, v] : ours.items()) our_keys.push_back(k);
  std::size_t at = 0;
  for (const auto& [key, value] : sample.items()) {
    auto found = std::find(our_keys.begin() + static_cast<std::ptrdiff_t>(at), our_keys.end(), key);
    ASSERT_NE(found, our_keys.end()) << "key " << key << " missing or out of order";
    at = static_cast<std::size_t>(found - our_keys.begin()) + 1;
    // Where the sample has null (not measured), ours may hold a measured boolean.
    if (!value.is_null()) {
      EXPECT_EQ(ours[key].type(), value.type()) << key;
    }
  }
}

}  // namespace
}  // namespace derpkit::netcheck
