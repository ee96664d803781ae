// CheckConnect against our real relay on loopback: over TLS with a sha256-raw pin, through nginx
// configured to drop `Upgrade: DERP` (only WebSocket passes: websocket_only), through a web
// server that is not a relay, and through HAProxy balancing two relays with different keys (the
// "load balancer in front?" warning). nginx and HAProxy are required (scripts/install-deps.sh):
// a missing one fails the test instead of silently skipping it.
#include "netcheck/connect_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <asio.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "lib/net/certs.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"
#include "tests/unit/netcheck_side/running_proxy.h"

namespace derpkit::netcheck {
namespace {

using namespace std::chrono_literals;
using testing::Await;

constexpr std::int64_t kRegion = 900;

std::string PinOf(const std::filesystem::path& cert_file) {
  return "sha256-raw:" + net::CertSha256Hex(cert_file.string());
}

derpmap::Node NodeAt(std::string name, std::uint16_t port, std::string cert_name) {
  derpmap::Node n;
  n.name = std::move(name);
  n.region_id = kRegion;
  n.host_name = "localhost";
  n.ipv4 = "127.0.0.1";
  n.ipv6 = "none";
  n.derp_port = port;
  n.cert_name = std::move(cert_name);
  return n;
}

derpmap::DerpMap MapOf(std::vector<derpmap::Node> nodes, std::int64_t id = kRegion) {
  derpmap::Region region;
  region.region_id = id;
  region.region_code = "test" + std::to_string(id);
  region.region_name = "loopback";
  for (auto& n : nodes) n.region_id = id;
  region.nodes = std::move(nodes);
  derpmap::DerpMap map;
  map.regions[id] = std::move(region);
  return map;
}

std::uint16_t DeadPort() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

testing::TestRelayOptions RelayOptions(bool tls, std::optional<derp::PrivateKey> key = std::nullopt,
                                       std::function<void(relay::RelayConfig&)> tweak = {}) {
  testing::TestRelayOptions o;
  o.tls = tls;
  o.key = std::move(key);
  o.tweak = std::move(tweak);
  return o;
}

std::string Warnings(const RegionConnectResult& r) {
  std::string all;
  for (const auto& w : r.warnings) all += w + "\n";
  return all;
}

class ConnectCheck : public ::testing::Test {
 protected:
  std::vector<RegionConnectResult> Check(const derpmap::DerpMap& map, std::vector<std::int64_t> ids,
                                         ConnectOptions o = {}) {
    return Await(io_, CheckConnect(io_, map, std::move(ids), o), 30s);
  }
  RegionConnectResult CheckOne(const derpmap::DerpMap& map, ConnectOptions o = {}) {
    auto results = Check(map, {kRegion}, o);
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? RegionConnectResult{} : results[0];
  }
  asio::io_context io_;
};

TEST_F(ConnectCheck, RelaysOurOwnPacketOverTlsWithAPin) {
  testing::TestRelay relay(RelayOptions(true, testing::TestKey(1)));
  const auto map =
      MapOf({NodeAt("900a", relay.port(), PinOf(relay.dir() / "certs/localhost.crt"))});
  const RegionConnectResult r = CheckOne(map);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.region_id, kRegion);
  EXPECT_EQ(r.region_code, "test900");
  EXPECT_EQ(r.node_name, "900a");
  EXPECT_EQ(r.transport, "derp");
  EXPECT_FALSE(r.websocket_only);
  EXPECT_GT(r.round_trip.count(), 0);
  EXPECT_EQ(r.server_keys, std::vector<std::string>{relay.server().public_key().ToText()});
  EXPECT_TRUE(r.warnings.empty()) << Warnings(r);
}

TEST_F(ConnectCheck, InsecureForTestsSkipsVerification) {
  testing::TestRelay relay(RelayOptions(true));
  auto node = NodeAt("900a", relay.port(), "");
  node.insecure_for_tests = true;
  const RegionConnectResult r = CheckOne(MapOf({node}));
  EXPECT_TRUE(r.ok) << r.error;
}

TEST_F(ConnectCheck, SkipsStunOnlyNodesAndMovesPastDeadOnes) {
  testing::TestRelay relay(RelayOptions(true));
  const std::string pin = PinOf(relay.dir() / "certs/localhost.crt");
  auto stun_only = NodeAt("900s", relay.port(), pin);
  stun_only.stun_only = true;
  const auto map =
      MapOf({stun_only, NodeAt("900d", DeadPort(), pin), NodeAt("900a", relay.port(), pin)});
  const RegionConnectResult r = CheckOne(map);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.node_name, "900a");
  // The dead node is asked again for its server key, and says so.
  EXPECT_NE(Warnings(r).find("node 900d: a connection for the server-key check failed"),
            std::string::npos)
      << Warnings(r);
  EXPECT_EQ(Warnings(r).find("900s"), std::string::npos) << Warnings(r);
}

TEST_F(ConnectCheck, WrongPinIsAnError) {
  testing::TestRelay relay(RelayOptions(true));
  const auto map = MapOf({NodeAt("900a", relay.port(), "sha256-raw:" + std::string(64, '0'))});
  const RegionConnectResult r = CheckOne(map);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("900a: TLS"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("pin"), std::string::npos) << r.error;
}

TEST_F(ConnectCheck, RegionsAreCheckedTogetherAndReportedInOrder) {
  testing::TestRelay relay(RelayOptions(true));
  auto map = MapOf({NodeAt("900a", relay.port(), PinOf(relay.dir() / "certs/localhost.crt"))});
  map.regions[901] = MapOf({NodeAt("901a", DeadPort(), "")}, 901).regions[901];
  auto stun_only = NodeAt("902s", relay.port(), "");
  stun_only.stun_only = true;
  map.regions[902] = MapOf({stun_only}, 902).regions[902];
  const auto results = Check(map, {901, 900, 902, 999});
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].region_id, 901);
  EXPECT_FALSE(results[0].ok);
  EXPECT_NE(results[0].error.find("901a: connect 127.0.0.1:"), std::string::npos)
      << results[0].error;
  EXPECT_EQ(results[1].region_id, 900);
  EXPECT_TRUE(results[1].ok) << results[1].error;
  EXPECT_FALSE(results[2].ok);
  EXPECT_NE(results[2].error.find("STUNOnly"), std::string::npos) << results[2].error;
  EXPECT_FALSE(results[3].ok);
  EXPECT_NE(results[3].error.find("not in the DERP map"), std::string::npos) << results[3].error;
}

// nginx terminating TLS in front of a plain relay. {port0} passes only `Upgrade: websocket` (a
// common hand-written config that breaks DERP); {port1} is a web server that is not a relay.
constexpr std::string_view kNginxConfig = R"(
worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $upgrade_to_pass {
    ~*^websocket$ $http_upgrade;
    default "";
  }
  map $upgrade_to_pass $connection_to_pass {
    "" "";
    default upgrade;
  }
  server {
    listen 127.0.0.1:{port0} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {
      proxy_pass http://127.0.0.1:{relay};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $upgrade_to_pass;
      proxy_set_header Connection $connection_to_pass;
      proxy_buffering off;
    }
  }
  server {
    listen 127.0.0.1:{port1} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / { return 200 "a web server, not a DERP relay\n"; }
  }
}
)";

class ConnectThroughNginx : public ConnectCheck {
 protected:
  void SetUp() override {
    const auto ensured = net::EnsureSelfSignedCert(certs_.path().string(), "localhost");
    pin_ = "sha256-raw:" + ensured.sha256_der_hex;
    std::string config(kNginxConfig);
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"{cert}", ensured.files.cert_file},
             {"{key}", ensured.files.key_file},
             {"{relay}", std::to_string(relay_.port())}}) {
      for (auto at = config.find(key); at != std::string::npos; at = config.find(key)) {
        config.replace(at, key.size(), value);
      }
    }
    std::string failure;
    nginx_ = testing::RunningProxy::Start(testing::ProxyKind::kNginx, config, 2, failure);
    ASSERT_NE(nginx_, nullptr) << failure;
  }

  testing::ScratchDir certs_;
  testing::TestRelay relay_{RelayOptions(false)};
  std::string pin_;
  std::unique_ptr<testing::RunningProxy> nginx_;
};

TEST_F(ConnectThroughNginx, ProxyDroppingUpgradeDerpLeavesOnlyWebSocket) {
  const RegionConnectResult r = CheckOne(MapOf({NodeAt("900a", nginx_->port(0), pin_)}));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.websocket_only);
  EXPECT_EQ(r.transport, "websocket");
  EXPECT_EQ(r.server_keys, std::vector<std::string>{relay_.server().public_key().ToText()});
  const std::string warnings = Warnings(r);
  EXPECT_NE(warnings.find("drops `Upgrade: DERP`"), std::string::npos) << warnings;
  // What the relay answered the plain GET /derp that nginx made of our upgrade.
  EXPECT_NE(warnings.find("426"), std::string::npos) << warnings;
  EXPECT_EQ(warnings.find("different server keys"), std::string::npos) << warnings;
}

TEST_F(ConnectThroughNginx, WebServerThatIsNotARelayFailsBothWays) {
  const RegionConnectResult r = CheckOne(MapOf({NodeAt("900a", nginx_->port(1), pin_)}));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("server answered 200"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("over WebSocket"), std::string::npos) << r.error;
}

// HAProxy passing TLS through, round robin over two relays that share a certificate but not a
// key: what an operator gets by putting several unmeshed relays behind one name.
constexpr std::string_view kHaproxyConfig = R"(
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend derp
  bind 127.0.0.1:{port0}
  default_backend relays
backend relays
  balance roundrobin
  server a 127.0.0.1:{a}
  server b 127.0.0.1:{b}
)";

TEST_F(ConnectCheck, TwoRelaysBehindOneNameShowTwoServerKeys) {
  testing::TestRelay a(RelayOptions(true, testing::TestKey(1)));
  const auto shared_certs = (a.dir() / "certs").string();
  testing::TestRelay b(RelayOptions(true, testing::TestKey(2),
                                    [&](relay::RelayConfig& c) { c.cert_dir = shared_certs; }));
  std::string config(kHaproxyConfig);
  config.replace(config.find("{a}"), 3, std::to_string(a.port()));
  config.replace(config.find("{b}"), 3, std::to_string(b.port()));
  std::string failure;
  auto haproxy = testing::RunningProxy::Start(testing::ProxyKind::kHaproxy, config, 1, failure);
  ASSERT_NE(haproxy, nullptr) << failure;

  const auto map =
      MapOf({NodeAt("900a", haproxy->port(0), PinOf(a.dir() / "certs/localhost.crt"))});
  const RegionConnectResult r = CheckOne(map);
  ASSERT_TRUE(r.ok) << r.error;
  // Round robin: any three consecutive connections reach both relays.
  const std::string warnings = Warnings(r);
  EXPECT_NE(warnings.find("node 900a: 2 different server keys in 3 connections: load balancer"),
            std::string::npos)
      << warnings;
  std::vector<std::string> keys = r.server_keys;
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> want = {a.server().public_key().ToText(),
                                   b.server().public_key().ToText()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(keys, want);
}

}  // namespace
}  // namespace derpkit::netcheck
