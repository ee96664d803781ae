// The Prometheus textfile form of a Report (netcheck/textfile.h). The
// integration test also runs `promtool check metrics` on real output.
#include "netcheck/textfile.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/unit/netcheck/test_maps.h"

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;
using testing::MakeMap;
using testing::MakeNode;
using testing::MakeRegion;

derpmap::DerpMap Map() {
  return MakeMap({MakeRegion(1, "nyc", "New York City", {MakeNode(1, "1a")}),
                  MakeRegion(2, "we\"ird\\code", "Odd", {MakeNode(2, "2a")})});
}

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Textfile, RendersKnownValuesAndLeavesUnknownOnesOut) {
  Report r;
  r.now = std::chrono::system_clock::time_point{} + 1796016176s + 500ms;
  r.duration = 250ms;
  r.full = true;
  r.udp = true;
  r.ipv4 = true;
  r.ipv4_can_send = true;
  r.mapping_varies_by_dest_ip = true;
  r.pmp = false;
  r.preferred_derp = 2;
  r.region_latency = {{1, 12ms}, {2, 1500us}};
  r.region_v4_latency = {{2, 1500us}};
  const std::string text = RenderTextfile(r, Map());
  EXPECT_TRUE(Has(text, "netcheck_report_timestamp_seconds 1796016176.5")) << text;
  EXPECT_TRUE(Has(text, "netcheck_report_duration_seconds 0.25")) << text;
  EXPECT_TRUE(Has(text, "netcheck_report_full 1")) << text;
  EXPECT_TRUE(Has(text, "netcheck_udp 1")) << text;
  EXPECT_TRUE(Has(text, "netcheck_ipv6 0")) << text;
  EXPECT_TRUE(Has(text, "netcheck_mapping_varies_by_dest_ip 1")) << text;
  EXPECT_TRUE(Has(text, "netcheck_portmap_available{protocol=\"nat-pmp\"} 0")) << text;
  EXPECT_TRUE(Has(text, "netcheck_preferred_derp_region_id 2")) << text;
  EXPECT_TRUE(Has(
      text, "netcheck_preferred_derp_region{region_id=\"2\",region_code=\"we\\\"ird\\\\code\"} 1"))
      << text;
  EXPECT_TRUE(Has(
      text,
      "netcheck_region_latency_seconds{region_id=\"1\",region_code=\"nyc\",family=\"any\"} 0.012"))
      << text;
  EXPECT_TRUE(Has(text,
                  "netcheck_region_latency_seconds{region_id=\"2\",region_code="
                  "\"we\\\"ird\\\\code\",family=\"ipv4\"} 0.0015"))
      << text;
  // Unknown values have no sample, and a family without samples is not written at all.
  for (const char* absent : {"netcheck_hairpinning", "netcheck_captive_portal", "protocol=\"upnp\"",
                             "family=\"ipv6\"", "netcheck_connect_ok"}) {
    EXPECT_EQ(text.find(absent), std::string::npos) << absent << "\n" << text;
  }
  // Every family that is written has HELP and TYPE right before its samples.
  std::istringstream lines(text);
  std::string line, last_help, last_type;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      last_help = line.substr(7, line.find(' ', 7) - 7);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      last_type = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(last_type, last_help);
      EXPECT_TRUE(line.ends_with(" gauge")) << line;
    } else {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_EQ(name, last_type) << line;
    }
  }
}

TEST(Textfile, ConnectFamilies) {
  Report r;
  ConnectEntry ok;
  ok.region_id = 1;
  ok.region_code = "nyc";
  ok.ok = true;
  ok.round_trip = 2ms;
  ok.server_keys = {"nodekey:aa", "nodekey:bb"};
  ConnectEntry bad;
  bad.region_id = 2;
  bad.websocket_only = true;
  r.connect = std::vector<ConnectEntry>{ok, bad};
  const std::string text = RenderTextfile(r, Map());
  EXPECT_TRUE(Has(text, "netcheck_connect_ok{region_id=\"1\",region_code=\"nyc\"} 1")) << text;
  EXPECT_TRUE(Has(text, "netcheck_connect_ok{region_id=\"2\",region_code=\"we\\\"ird\\\\code\"} 0"))
      << text;
  EXPECT_TRUE(
      Has(text, "netcheck_connect_round_trip_seconds{region_id=\"1\",region_code=\"nyc\"} 0.002"))
      << text;
  EXPECT_EQ(text.find("netcheck_connect_round_trip_seconds{region_id=\"2\""), std::string::npos);
  EXPECT_TRUE(Has(
      text, "netcheck_connect_websocket_only{region_id=\"2\",region_code=\"we\\\"ird\\\\code\"} 1"))
      << text;
  EXPECT_TRUE(Has(text, "netcheck_connect_server_keys{region_id=\"1\",region_code=\"nyc\"} 2"))
      << text;
}

}  // namespace
}  // namespace derpkit::netcheck
