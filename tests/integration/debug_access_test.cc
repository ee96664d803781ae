// /debug/ and who may read it: loopback yes, an X-Forwarded-For header no, and through a PROXY
// protocol header the vouched-for source decides (tailnet yes, outside no, the ChromeOS /23 no,
// trusted CIDRs and the debug key yes). Also the --debug-addr listener and the endpoints' content.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lib/http/proxy_protocol.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

using relay::CloseReason;

struct Reply {
  int status = 0;
  std::string body;
  bool closed_without_reply = false;
};

Reply Get(asio::io_context& io, std::uint16_t port, const std::string& target,
          const std::string& extra_headers = "", const std::string& prefix = "") {
  RawPeer peer(io, port);
  peer.Send(prefix + "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
            extra_headers + "\r\n");
  auto [raw, closed] = peer.ReadUntilClosed();
  Reply r;
  if (raw.rfind("HTTP/1.1 ", 0) != 0) {
    r.closed_without_reply = closed && raw.empty();
    return r;
  }
  r.status = std::stoi(raw.substr(9, 3));
  const auto body_at = raw.find("\r\n\r\n");
  if (body_at != std::string::npos) r.body = raw.substr(body_at + 4);
  return r;
}

std::string ProxyFrom(std::string_view ip) {
  return http::BuildProxyV1(*netaddr::ParseIp(ip), 40000, *netaddr::ParseIp("127.0.0.1"), 443);
}

TEST(DebugAccess, LoopbackReadsEveryEndpoint) {
  TestRelay relay{TestRelayOptions{false, 2, true, nullptr}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  auto client = ConnectClient(io, opts);

  auto index = Get(io, relay.port(), "/debug/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("/debug/varz"), std::string::npos);
  auto varz = Get(io, relay.port(), "/debug/varz");
  EXPECT_EQ(varz.status, 200);
  EXPECT_NE(varz.body.find("derp_accepts_total"), std::string::npos);
  auto vars = Get(io, relay.port(), "/debug/vars");
  EXPECT_EQ(vars.status, 200);
  EXPECT_FALSE(nlohmann::json::parse(vars.body, nullptr, false).is_discarded());
  auto check = Get(io, relay.port(), "/debug/check");
  EXPECT_EQ(check.status, 200);
  EXPECT_EQ(check.body, "derp.Server ConsistencyCheck okay");
  auto traffic = Get(io, relay.port(), "/debug/traffic");
  EXPECT_EQ(traffic.status, 200);
  EXPECT_NE(traffic.body.find(client->public_key().ShortString()), std::string::npos);
  EXPECT_EQ(Get(io, relay.port(), "/debug").status, 301);
  // The home page links /debug/ for those allowed to follow it.
  EXPECT_NE(Get(io, relay.port(), "/").body.find("/debug/"), std::string::npos);
}

TEST(DebugAccess, ForwardedRequestsAreRefused) {
  TestRelay relay{TestRelayOptions{false, 1, false, nullptr}};
  asio::io_context io;
  auto r = Get(io, relay.port(), "/debug/", "X-Forwarded-For: 100.64.0.1\r\n");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "debug access denied\n");
}

class DebugBehindProxy : public ::testing::Test {
 protected:
  void SetUp() override {
    key_file_ =
        std::filesystem::temp_directory_path() / ("derpkit-debugkey-" + std::to_string(::getpid()));
    std::ofstream(key_file_) << "  s3cret\n";
    relay_ = std::make_unique<TestRelay>(
        TestRelayOptions{false, 1, false, [this](relay::RelayConfig& c) {
                           c.proxy_protocol = {"main"};
                           c.debug_trusted_cidrs = {"203.0.113.0/24"};
                           c.debug_key_file = key_file_.string();
                           c.handshake_timeout = 500ms;
                         }});
  }
  void TearDown() override {
    relay_.reset();
    std::filesystem::remove(key_file_);
  }
  int StatusFrom(std::string_view ip, const std::string& target = "/debug/") {
    return Get(io_, relay_->port(), target, "", ProxyFrom(ip)).status;
  }

  std::filesystem::path key_file_;
  std::unique_ptr<TestRelay> relay_;
  asio::io_context io_;
};

TEST_F(DebugBehindProxy, TheProxiedSourceDecides) {
  EXPECT_EQ(StatusFrom("100.64.0.7"), 200) << "tailnet";
  EXPECT_EQ(StatusFrom("100.127.255.254"), 200) << "tailnet";
  EXPECT_EQ(StatusFrom("fd7a:115c:a1e0::7"), 200) << "tailnet IPv6";
  EXPECT_EQ(StatusFrom("198.51.100.7"), 403) << "outside";
  EXPECT_EQ(StatusFrom("100.115.92.7"), 403) << "ChromeOS VM range";
  EXPECT_EQ(StatusFrom("fd7a:115c:a1e1::7"), 403) << "outside the /48";
  EXPECT_EQ(StatusFrom("203.0.113.9"), 200) << "--debug-trusted-cidrs";
  EXPECT_EQ(StatusFrom("198.51.100.7", "/debug/?debugkey=s3cret"), 200) << "--debug-key-file";
  EXPECT_EQ(StatusFrom("198.51.100.7", "/debug/?debugkey=wrong"), 403);
  // The home page shows the link only to those allowed.
  EXPECT_EQ(Get(io_, relay_->port(), "/", "", ProxyFrom("198.51.100.7")).body.find("/debug/"),
            std::string::npos);
  // Non-debug pages are served to everyone.
  EXPECT_EQ(StatusFrom("198.51.100.7", "/generate_204"), 204);
}

TEST_F(DebugBehindProxy, AMissingOrMalformedHeaderClosesTheConnection) {
  EXPECT_TRUE(Get(io_, relay_->port(), "/debug/").closed_without_reply);
  EXPECT_TRUE(Get(io_, relay_->port(), "/debug/", "", "PROXY TCP4 1.2.3\r\n").closed_without_reply);
  EXPECT_TRUE(WaitUntil([&] { return relay_->stats().closed(CloseReason::kBadProxyHeader) == 2; }));
  // A v2 LOCAL header (a proxy's health check) keeps the TCP peer, here loopback.
  const Bytes local = http::BuildProxyV2(*netaddr::ParseIp("127.0.0.1"), 0,
                                         *netaddr::ParseIp("127.0.0.1"), 0, true);
  EXPECT_EQ(Get(io_, relay_->port(), "/debug/", "", std::string(AsText(local))).status, 200);
}

TEST(DebugAddr, ServesOnlyDebug) {
  TestRelay relay{TestRelayOptions{false, 1, false,
                                   [](relay::RelayConfig& c) { c.debug_addr = "127.0.0.1:0"; }}};
  asio::io_context io;
  const auto port = relay.server().debug_port();
  ASSERT_NE(port, 0);
  EXPECT_EQ(Get(io, port, "/debug/varz").status, 200);
  EXPECT_EQ(Get(io, port, "/").status, 404);
  EXPECT_EQ(Get(io, port, "/derp").status, 404);
}

}  // namespace
}  // namespace derpkit::testing
