// CheckStun against our relay's STUN responder on 127.0.0.1 and ::1, a closed UDP port (refused,
// at once), a socket that never answers (resends, then a timeout), and nodes without an address
// or without STUN.
#include <gtest/gtest.h>

#include <asio.hpp>

#include "probe/checks.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"
#include "tests/unit/probe_checks/check_test_util.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using testing::Await;
using testing_util::NodeAt;

derpmap::Node StunNode(std::string name, std::string ipv4, std::string ipv6, int stun_port) {
  derpmap::Node n = NodeAt(std::move(name), 443);
  n.ipv4 = std::move(ipv4);
  n.ipv6 = std::move(ipv6);
  n.stun_port = stun_port;
  return n;
}

class StunCheck : public ::testing::Test {
 protected:
  ProbeResult Check(const derpmap::Node& node, bool ipv6, StunCheckOptions options = {}) {
    return Await(io_, CheckStun(io_, node, ipv6, options), 30s);
  }
  static testing::TestRelayOptions WithStun(std::string addr = "") {
    testing::TestRelayOptions o;
    o.stun = true;
    if (!addr.empty()) o.tweak = [addr](relay::RelayConfig& c) { c.addr = addr; };
    return o;
  }
  asio::io_context io_;
};

TEST_F(StunCheck, AnswersOverIpv4) {
  testing::TestRelay relay(WithStun());
  const ProbeResult r =
      Check(StunNode("1a", "127.0.0.1", "none", relay.server().stun_port()), false);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.latency.count(), 0);
  EXPECT_EQ(relay.server().stun_stats().Snapshot().AddrFamily(relay::StunAddrFamily::kIpv4), 1u)
      << "one request, answered the first time";
}

TEST_F(StunCheck, AnswersOverIpv6) {
  testing::TestRelay relay(WithStun("[::1]:0"));
  const ProbeResult r = Check(StunNode("1a", "none", "::1", relay.server().stun_port()), true);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.latency.count(), 0);
  EXPECT_EQ(relay.server().stun_stats().Snapshot().AddrFamily(relay::StunAddrFamily::kIpv6), 1u);
}

TEST_F(StunCheck, AClosedPortIsRefusedAtOnce) {
  std::uint16_t port = 0;
  {
    asio::ip::udp::socket probe_port(io_, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe_port.local_endpoint().port();
  }
  StunCheckOptions options;
  options.timeout = 20s;  // a refusal must not wait for this
  const ProbeResult r = Check(StunNode("1b", "127.0.0.1", "none", port), false, options);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("1b (127.0.0.1:" + std::to_string(port) + "): STUN: ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("refused"), std::string::npos) << r.error;
}

TEST_F(StunCheck, ASilentServerGetsResendsThenTimesOut) {
  asio::ip::udp::socket silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t port = silent.local_endpoint().port();
  StunCheckOptions options;
  options.timeout = 1000ms;
  options.resend_after = 100ms;
  const ProbeResult r = Check(StunNode("1a", "127.0.0.1", "none", port), false, options);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("no answer from 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error;
  // The same transaction was sent more than once.
  silent.non_blocking(true);
  std::array<std::byte, 1500> buf;
  std::vector<std::vector<std::byte>> requests;
  for (int i = 0; i < 1000; ++i) {
    std::error_code ec;
    const std::size_t n = silent.receive(asio::buffer(buf), 0, ec);
    if (ec) break;
    requests.emplace_back(buf.begin(), buf.begin() + static_cast<long>(n));
  }
  ASSERT_GE(requests.size(), 2u);
  for (const auto& request : requests) EXPECT_EQ(request, requests.front()) << "same transaction";
}

TEST_F(StunCheck, ANodeWithoutALiteralOrWithoutStunFailsSayingSo) {
  const ProbeResult no_v6 = Check(StunNode("1a", "127.0.0.1", "", 3478), true);
  ASSERT_FALSE(no_v6.ok);
  EXPECT_EQ(no_v6.error,
            "1a: the map gives no IPv6 address literal (IPv6 \"\"), and the udp6 probe needs one");
  const ProbeResult no_stun = Check(StunNode("1a", "127.0.0.1", "none", -1), false);
  ASSERT_FALSE(no_stun.ok);
  EXPECT_EQ(no_stun.error, "1a: STUN is off for this node (STUNPort -1)");
}

}  // namespace
}  // namespace derpkit::probe
