// stunc's pure parts: argument parsing, the reference's three lines (compared with the real
// stunc's output in testdata), ping-style lines, statistics and the JSON keys.
#include "stunc/report.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "stunc/config.h"

namespace derpkit::stunc {
namespace {

using namespace std::chrono_literals;
using asio::ip::make_address;
using asio::ip::udp;

Reply MakeReply(int seq, const char* server, const char* from, netaddr::IpAddress mapped,
                std::uint16_t mapped_port, std::chrono::nanoseconds rtt) {
  Reply r;
  r.seq = seq;
  r.answer.sent_to = udp::endpoint(make_address(server), 3478);
  r.answer.from = udp::endpoint(make_address(from), 3478);
  r.answer.mapped_ip = mapped;
  r.answer.mapped_port = mapped_port;
  r.answer.rtt = rtt;
  r.answer.response_bytes = mapped.is_v4() ? 32 : 44;
  return r;
}

TEST(StuncReport, ReferenceLinesMatchTheRealStunc) {
  // testdata/stun/stunc-output.txt: Tailscale's stunc on a dual-stack socket, so its "from" is
  // IPv4-mapped; the same answer formatted by us gives the same three lines.
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/stun/stunc-output.txt");
  const std::string captured((std::istreambuf_iterator<char>(in)), {});
  ASSERT_NE(captured.find("stun addr: 127.0.0.1:43741\n"), std::string::npos) << captured;
  const std::string ours = ReferenceLines(MakeReply(
      1, "127.0.0.1", "::ffff:127.0.0.1", netaddr::IpAddress::V4(127, 0, 0, 1), 43741, 100us));
  EXPECT_EQ(captured.substr(0, ours.size()), ours);
}

TEST(StuncReport, AddressesAreWrittenAsGoWritesThem) {
  const auto v6 = *netaddr::ParseIp("::1");
  EXPECT_EQ(ReferenceLines(MakeReply(1, "::1", "::1", v6, 40000, 1ms)),
            "sent addr: [::1]:3478\nfrom addr: [::1]:3478\nstun addr: [::1]:40000\n");
  EXPECT_EQ(ReferenceLines(MakeReply(1, "127.0.0.1", "127.0.0.1",
                                     netaddr::IpAddress::V4(127, 0, 0, 1), 40000, 1ms)),
            "sent addr: 127.0.0.1:3478\nfrom addr: 127.0.0.1:3478\nstun addr: 127.0.0.1:40000\n");
}

TEST(StuncReport, PingLinesAndSummary) {
  StuncConfig config;
  config.host = "localhost";
  config.count = 4;
  RunResult result;
  result.server = udp::endpoint(make_address("127.0.0.1"), 3478);
  result.local = udp::endpoint(make_address("127.0.0.1"), 40000);
  result.sent = 4;
  const auto lo = netaddr::IpAddress::V4(127, 0, 0, 1);
  result.replies = {MakeReply(1, "127.0.0.1", "127.0.0.1", lo, 40000, 1ms),
                    MakeReply(2, "127.0.0.1", "127.0.0.1", lo, 40000, 2ms),
                    MakeReply(4, "127.0.0.1", "127.0.0.1", lo, 40000, 3ms)};
  result.misses = {Miss{3, {net::StunFailure::Kind::kTimeout, "no answer from x within 3s"}}};

  EXPECT_EQ(StartLine(config, result),
            "STUN localhost (127.0.0.1:3478) from 127.0.0.1:40000: Tailscale binding requests "
            "(40 bytes)\n");
  EXPECT_EQ(ReplyLine(result.replies[1]),
            "32 bytes from 127.0.0.1:3478: seq=2 stun addr=127.0.0.1:40000 time=2.000 ms\n");
  EXPECT_EQ(MissLine(result.misses[0]), "seq=3: no answer from x within 3s\n");
  // stddev of 1, 2, 3 ms (population, like ping's mdev) = sqrt(2/3) = 0.816
  EXPECT_EQ(SummaryLines(config, result),
            "--- localhost (127.0.0.1:3478) stunc statistics ---\n"
            "4 sent, 3 received, 25% loss, rtt min/avg/max/stddev = 1.000/2.000/3.000/0.816 ms\n");

  const nlohmann::ordered_json j = ToJson(config, result);
  EXPECT_EQ(j["local_port"], 40000);
  EXPECT_EQ(j["stun_addr"], "127.0.0.1:40000");
  EXPECT_EQ(j["sent"], 4);
  EXPECT_EQ(j["received"], 3);
  EXPECT_EQ(j["loss_percent"], 25.0);
  EXPECT_EQ(j["replies"].size(), 3u);
  EXPECT_EQ(j["failures"][0]["kind"], "timeout");
  EXPECT_EQ(j["rtt_ms"]["max"], 3.0);
  EXPECT_FALSE(j.contains("error"));

  // A NAT that rebinds shows up in the summary.
  result.replies.push_back(MakeReply(5, "127.0.0.1", "127.0.0.1", lo, 40001, 1ms));
  result.sent = 5;
  EXPECT_NE(SummaryLines(config, result)
                .find("stun addr changed between replies: 127.0.0.1:40000 127.0.0.1:40001\n"),
            std::string::npos);
}

TEST(StuncReport, NothingAnswered) {
  StuncConfig config;
  config.host = "::1";
  RunResult result;
  result.server = udp::endpoint(make_address("::1"), 9);
  result.sent = 3;
  EXPECT_EQ(SummaryLines(config, result),
            "--- [::1]:9 stunc statistics ---\n3 sent, 0 received, 100% loss\n");
  result.misses = {Miss{1, {net::StunFailure::Kind::kRefused, "connection refused by [::1]:9"}}};
  const nlohmann::ordered_json j = ToJson(config, result);
  EXPECT_EQ(j["error"], "connection refused by [::1]:9");
  EXPECT_EQ(j["failures"][0]["kind"], "refused");
  EXPECT_FALSE(j.contains("rtt_ms"));
}

TEST(StuncReport, LossText) {
  EXPECT_EQ(LossText(3, 3), "0%");
  EXPECT_EQ(LossText(3, 2), "33.3%");
  EXPECT_EQ(LossText(3, 0), "100%");
  EXPECT_EQ(LossText(8, 7), "12.5%");
  EXPECT_EQ(LossText(0, 0), "0%");
}

TEST(StuncConfig, Arguments) {
  EXPECT_EQ(*ParseHostArg("[::1]"), "::1");
  EXPECT_EQ(*ParseHostArg("::1"), "::1");
  EXPECT_EQ(*ParseHostArg("derp.example.com"), "derp.example.com");
  EXPECT_FALSE(ParseHostArg(""));
  EXPECT_FALSE(ParseHostArg("[127.0.0.1]"));
  EXPECT_FALSE(ParseHostArg("[::1"));
  EXPECT_EQ(*ParsePortArg("3478"), 3478);
  EXPECT_EQ(*ParsePortArg("65535"), 65535);
  for (const char* bad : {"0", "65536", "-1", "34x", "", "0x10"}) {
    EXPECT_FALSE(ParsePortArg(bad)) << bad;
  }
  EXPECT_EQ(*ParseDurationArg("--timeout", "250ms"), 250ms);
  EXPECT_EQ(ParseDurationArg("--timeout", "3").error(),
            "--timeout 3: missing unit (ns, us, ms, s, m or h)");
  EXPECT_FALSE(ParseDurationArg("--timeout", "0s"));
  StuncConfig c;
  EXPECT_TRUE(c.Validate());
  c.count = 0;
  EXPECT_EQ(c.Validate().error(), "--count 0: must be 1..1000000");
}

}  // namespace
}  // namespace derpkit::stunc
