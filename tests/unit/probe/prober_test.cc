// probe/prober.h against real in-process relays (TLS with pinned self-signed certificates, STUN)
// and a DERP map file on disk: --once runs everything once; the daemon's probes follow the map
// as it changes, a broken map fails only derpmap-probe, and run-now works from another thread.
#include "probe/prober.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

#include "lib/derpmap/derpmap.h"
#include "lib/net/certs.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using derpkit::testing::AwaitFor;
using derpkit::testing::TestRelay;
using derpkit::testing::TestRelayOptions;

derpmap::Node NodeFor(const TestRelay& relay, std::int64_t region, const std::string& name) {
  derpmap::Node n;
  n.name = name;
  n.region_id = region;
  n.host_name = "localhost";
  n.ipv4 = "127.0.0.1";
  n.ipv6 = "none";
  n.derp_port = relay.port();
  n.stun_port = const_cast<TestRelay&>(relay).server().stun_port();
  n.cert_name =
      "sha256-raw:" + net::CertSha256Hex((relay.dir() / "certs" / "localhost.crt").string());
  return n;
}

TestRelayOptions TlsWithStun() {
  TestRelayOptions o;
  o.tls = true;
  o.stun = true;
  return o;
}

class ProberTest : public ::testing::Test {
 protected:
  ProberTest() : one_(TlsWithStun()), two_(TlsWithStun()) {
    map_path_ = (one_.dir() / "map.json").string();
    WriteMap(true);
  }

  void WriteMap(bool both) {
    derpmap::DerpMap m;
    derpmap::Region r1;
    r1.region_id = 901;
    r1.region_code = "r1";
    r1.nodes = {NodeFor(one_, 901, "1a")};
    m.regions.emplace(901, r1);
    if (both) {
      derpmap::Region r2;
      r2.region_id = 902;
      r2.region_code = "r2";
      r2.nodes = {NodeFor(two_, 902, "2a")};
      m.regions.emplace(902, r2);
    }
    WriteText(derpmap::ToJson(m));
  }

  void WriteText(const std::string& text) {
    const std::string tmp = map_path_ + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, map_path_);
  }

  // `interval`: how often the daemon runs each probe. A run gets 80% of it: 3 s lets the daemon
  // tests see several runs; --once tests pass more, since an ASan build on a busy machine has
  // been seen to take over 2 s for one TLS handshake.
  ProberOptions Options(std::chrono::milliseconds interval = 3s) const {
    ProberOptions o;
    o.sources = {map_path_};
    o.map_interval = 500ms;
    o.plan.tls_interval = interval;
    o.plan.stun_interval = interval;
    o.plan.mesh_interval = interval;
    o.spread = false;
    return o;
  }

  TestRelay one_;
  TestRelay two_;
  std::string map_path_;
};

const ProbeSnapshot* Find(const ProberSnapshot& s, const std::string& name) {
  for (const auto& p : s.probes) {
    if (p.spec.name == name) return &p;
  }
  return nullptr;
}

// Polls `pred` on fresh snapshots for up to `limit`.
template <typename Pred>
bool WaitFor(const Prober& prober, Pred pred, std::chrono::milliseconds limit = 15000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(prober.Snapshot())) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST_F(ProberTest, OnceRunsEveryProbeOnceAndAllPass) {
  asio::io_context io;
  Prober prober(io, Options(15s));
  auto ok = AwaitFor(io, prober.RunOnce(), 30000ms);
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(*ok);
  const ProberSnapshot s = prober.Snapshot();
  std::set<std::string> names;
  for (const auto& p : s.probes) {
    names.insert(p.spec.name);
    EXPECT_EQ(p.status, ProbeSnapshot::Status::kSucceeded)
        << p.spec.name << ": " << (p.last ? p.last->error : "never ran");
    EXPECT_EQ(p.attempts_ok, 1u) << p.spec.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"derpmap-probe", "derp/r1/1a/tls", "derp/r1/1a/udp",
                                          "derp/r1/1a/1a/mesh", "derp/r2/2a/tls", "derp/r2/2a/udp",
                                          "derp/r2/2a/2a/mesh"}));
  const ProbeSnapshot* tls = Find(s, "derp/r1/1a/tls");
  ASSERT_NE(tls, nullptr);
  ASSERT_TRUE(tls->cert.has_value());
  EXPECT_TRUE(tls->cert->pinned);
  EXPECT_EQ(s.regions, 2u);
  EXPECT_EQ(s.nodes, 2u);
}

TEST_F(ProberTest, OnceReportsAnUnusableMap) {
  WriteText("{\"Regions\": {\"1\": {\"RegionID\": 2}}}");
  asio::io_context io;
  Prober prober(io, Options());
  auto ok = AwaitFor(io, prober.RunOnce(), 20000ms);
  ASSERT_TRUE(ok.has_value());
  EXPECT_FALSE(*ok);
  const ProberSnapshot s = prober.Snapshot();
  const ProbeSnapshot* map = Find(s, "derpmap-probe");
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->status, ProbeSnapshot::Status::kFailed);
  EXPECT_NE(map->last->error.find("map.json"), std::string::npos) << map->last->error;
}

TEST_F(ProberTest, DaemonFollowsTheMapAndKeepsTheLastGoodOneWhenAFetchFails) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  Prober prober(io, Options());
  prober.Start();
  std::thread runner([&] { io.run(); });
  auto all_green = [](const ProberSnapshot& s) {
    if (s.probes.size() < 7) return false;
    for (const auto& p : s.probes) {
      if (p.status != ProbeSnapshot::Status::kSucceeded) return false;
    }
    return true;
  };
  EXPECT_TRUE(WaitFor(prober, all_green)) << "not every probe passed";

  // Run-now from this (non-io) thread, as the HTTP server does.
  auto ran = prober.RunNow("derp/r2/2a/udp");
  ASSERT_TRUE(ran.has_value());
  EXPECT_EQ(ran->status, ProbeSnapshot::Status::kSucceeded);
  EXPECT_FALSE(prober.RunNow("derp/nope/tls").has_value());
  const auto all = prober.RunAll({"derp/r1/1a/tls"});
  EXPECT_EQ(all.size(), 6u);  // 7 minus the excluded one

  // Region 902 leaves the map: its probes go.
  WriteMap(false);
  EXPECT_TRUE(WaitFor(prober, [](const ProberSnapshot& s) {
    return Find(s, "derp/r2/2a/tls") == nullptr && Find(s, "derp/r1/1a/tls") != nullptr;
  }));

  // The map breaks: derpmap-probe fails, the node probes keep running on the last good map.
  WriteText("not a map");
  EXPECT_TRUE(WaitFor(prober, [](const ProberSnapshot& s) {
    const ProbeSnapshot* m = Find(s, "derpmap-probe");
    return m != nullptr && m->status == ProbeSnapshot::Status::kFailed;
  }));
  const ProberSnapshot broken = prober.Snapshot();
  const ProbeSnapshot* m = Find(broken, "derpmap-probe");
  EXPECT_NE(m->last->error.find("last good map"), std::string::npos) << m->last->error;
  const ProbeSnapshot* tls = Find(broken, "derp/r1/1a/tls");
  ASSERT_NE(tls, nullptr);
  const auto runs_before = tls->attempts_ok;
  EXPECT_TRUE(WaitFor(prober, [runs_before](const ProberSnapshot& s) {
    const ProbeSnapshot* t = Find(s, "derp/r1/1a/tls");
    return t != nullptr && t->attempts_ok > runs_before;
  })) << "node probes stopped when the map broke";

  asio::post(io, [&] { prober.Stop(); });
  guard.reset();
  runner.join();
}

}  // namespace
}  // namespace derpkit::probe
