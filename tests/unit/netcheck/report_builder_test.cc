// Folding probe answers into a Report (netcheck/report_builder.h): best latencies, public
// endpoints, MappingVariesByDestIP, whether another probe would help, the early-stop wait.
#include "netcheck/report_builder.h"

#include <gtest/gtest.h>

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;

netaddr::IpAddress Ip(const char* text) { return *netaddr::ParseIp(text); }

TEST(ReportBuilder, KeepsTheBestLatencyPerRegionAndFamily) {
  ReportBuilder b;
  b.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 40000, 30ms);
  b.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 40000, 20ms);
  b.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 40000, 25ms);
  b.AddStunAnswer(1, Family::kIpv6, Ip("2001:db8::10"), 3478, Ip("2001:db8::2"), 40001, 15ms);
  const Report& r = b.report();
  EXPECT_TRUE(r.udp);
  EXPECT_TRUE(r.ipv4);
  EXPECT_TRUE(r.ipv6);
  EXPECT_TRUE(r.ipv4_can_send);
  EXPECT_TRUE(r.ipv6_can_send);
  EXPECT_EQ(r.region_latency, (LatencyMap{{1, 15ms}}));
  EXPECT_EQ(r.region_v4_latency, (LatencyMap{{1, 20ms}}));
  EXPECT_EQ(r.region_v6_latency, (LatencyMap{{1, 15ms}}));
  EXPECT_EQ(r.global_v4, "198.51.100.1:40000");
  EXPECT_EQ(r.global_v6, "[2001:db8::2]:40001");
  EXPECT_EQ(r.global_v4_counters, (std::map<std::string, int>{{"198.51.100.1:40000", 3}}));
  EXPECT_EQ(r.global_v6_counters, (std::map<std::string, int>{{"[2001:db8::2]:40001", 1}}));
  EXPECT_EQ(b.regions_measured(), 1u);
  EXPECT_EQ(b.MaxLatency(), 15ms);
}

TEST(ReportBuilder, GlobalV4IsTheFirstAnswerGlobalV6TheLast) {
  ReportBuilder b;
  b.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  b.AddStunAnswer(2, Family::kIpv4, Ip("192.0.2.11"), 3478, Ip("198.51.100.1"), 2222, 4ms);
  b.AddStunAnswer(1, Family::kIpv6, Ip("2001:db8::10"), 3478, Ip("2001:db8::2"), 1, 5ms);
  b.AddStunAnswer(2, Family::kIpv6, Ip("2001:db8::11"), 3478, Ip("2001:db8::2"), 2, 4ms);
  EXPECT_EQ(b.report().global_v4, "198.51.100.1:1111");
  EXPECT_EQ(b.report().global_v6, "[2001:db8::2]:2");
  // An IPv4-mapped answer (derper's dual-stack socket) counts as IPv4.
  ReportBuilder mapped;
  mapped.AddStunAnswer(1, Family::kIpv4, Ip("::ffff:192.0.2.10"), 3478, Ip("::ffff:198.51.100.7"),
                       9, 1ms);
  EXPECT_EQ(mapped.report().global_v4, "198.51.100.7:9");
}

TEST(ReportBuilder, MappingVariesIsDecidedByTwoServers) {
  ReportBuilder same_server;
  same_server.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111,
                            5ms);
  same_server.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 2222,
                            5ms);
  EXPECT_EQ(same_server.report().mapping_varies_by_dest_ip, std::nullopt)
      << "two answers from one server decide nothing";

  // Two servers on one address (another port) are two servers, as for Tailscale.
  ReportBuilder same_address;
  same_address.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111,
                             5ms);
  same_address.AddStunAnswer(2, Family::kIpv4, Ip("192.0.2.10"), 3479, Ip("198.51.100.1"), 1111,
                             5ms);
  EXPECT_EQ(same_address.report().mapping_varies_by_dest_ip, false);

  ReportBuilder easy;
  easy.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  EXPECT_EQ(easy.report().mapping_varies_by_dest_ip, std::nullopt);
  easy.AddStunAnswer(2, Family::kIpv4, Ip("192.0.2.11"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  EXPECT_EQ(easy.report().mapping_varies_by_dest_ip, false);

  ReportBuilder hard;
  hard.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  hard.AddStunAnswer(2, Family::kIpv4, Ip("192.0.2.11"), 3478, Ip("198.51.100.1"), 2222, 5ms);
  EXPECT_EQ(hard.report().mapping_varies_by_dest_ip, true);

  ReportBuilder v6_only;  // IPv6 answers never decide it
  v6_only.AddStunAnswer(1, Family::kIpv6, Ip("2001:db8::10"), 3478, Ip("2001:db8::2"), 1, 5ms);
  v6_only.AddStunAnswer(2, Family::kIpv6, Ip("2001:db8::11"), 3478, Ip("2001:db8::2"), 2, 5ms);
  EXPECT_EQ(v6_only.report().mapping_varies_by_dest_ip, std::nullopt);
}

TEST(ReportBuilder, ProbeWouldHelpFollowsTheReference) {
  ReportBuilder b;
  EXPECT_TRUE(b.ProbeWouldHelp(1, Family::kIpv4)) << "unmeasured region";
  b.AddStunAnswer(1, Family::kIpv4, Ip("192.0.2.10"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  EXPECT_TRUE(b.ProbeWouldHelp(1, Family::kIpv6)) << "no IPv6 answer yet";
  EXPECT_TRUE(b.ProbeWouldHelp(1, Family::kIpv4)) << "MappingVariesByDestIP undecided";
  EXPECT_TRUE(b.ProbeWouldHelp(2, Family::kIpv4)) << "region 2 unmeasured";
  b.AddStunAnswer(2, Family::kIpv4, Ip("192.0.2.11"), 3478, Ip("198.51.100.1"), 1111, 5ms);
  EXPECT_FALSE(b.ProbeWouldHelp(1, Family::kIpv4)) << "measured, mapping decided";
  b.AddStunAnswer(2, Family::kIpv6, Ip("2001:db8::11"), 3478, Ip("2001:db8::2"), 2, 5ms);
  EXPECT_FALSE(b.ProbeWouldHelp(1, Family::kIpv6)) << "measured, IPv6 already seen";
}

TEST(ReportBuilder, HttpsLatencySetsTheFamilyButNotUdp) {
  ReportBuilder b;
  b.AddHttpsLatency(3, 40ms, true);
  b.AddHttpsLatency(3, 30ms, true);
  b.AddHttpsLatency(4, 50ms, false);
  EXPECT_FALSE(b.report().udp);
  EXPECT_TRUE(b.report().ipv4);
  EXPECT_TRUE(b.report().ipv6);
  EXPECT_EQ(b.report().region_latency, (LatencyMap{{3, 30ms}, {4, 50ms}}));
  EXPECT_TRUE(b.report().region_v4_latency.empty());
  EXPECT_TRUE(b.report().global_v4.empty());
}

TEST(EarlyStopDelay, IsTheSlowestLatencyDoubledForFullReports) {
  EXPECT_EQ(EarlyStopDelay(30ms, false), 30ms);
  EXPECT_EQ(EarlyStopDelay(30ms, true), 60ms);
}

}  // namespace
}  // namespace derpkit::netcheck
