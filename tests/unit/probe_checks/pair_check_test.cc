// CheckMesh, CheckBandwidth and RunQueuingDelay against our relays on loopback: one relay with
// itself, two relays meshed with each other (both directions), two that are not meshed, a
// receiver that cannot connect, fixed keys and the flags the relay sees (a mesh-key watcher
// observes PeerPresent), a receiver whose relay stops mid-run, and cancellation by the caller.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <set>

#include "lib/derp/protocol.h"
#include "probe/checks.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"
#include "tests/unit/probe_checks/check_test_util.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using testing::Await;
using testing_util::NodeAt;
using testing_util::PinOf;
using testing_util::RelayPair;

testing::TestRelayOptions Tls() {
  testing::TestRelayOptions o;
  o.tls = true;
  return o;
}

derpmap::Node PinnedNode(const std::string& name, testing::TestRelay& relay) {
  return NodeAt(name, relay.port(), PinOf(relay.dir() / "certs/localhost.crt"));
}

DerpCheckOptions WithCa(const RelayPair& pair, std::chrono::milliseconds timeout = 12000ms) {
  DerpCheckOptions o;
  o.ca_file = pair.ca_file();
  o.timeout = timeout;
  return o;
}

class PairCheck : public ::testing::Test {
 protected:
  ProbeResult Mesh(const derpmap::Node& from, const derpmap::Node& to, DerpCheckOptions o = {}) {
    return Await(io_, CheckMesh(io_, from, to, o), 30s);
  }
  ProbeResult Bw(const derpmap::Node& from, const derpmap::Node& to, std::uint64_t size,
                 DerpCheckOptions o = {}) {
    return Await(io_, CheckBandwidth(io_, from, to, size, o), 60s);
  }
  asio::io_context io_;
};

// --- mesh --------------------------------------------------------------------------------------

TEST_F(PairCheck, MeshPassesThroughOneRelayWithItself) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  const ProbeResult r = Mesh(node, node);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.latency.count(), 0);
  EXPECT_FALSE(r.cert.has_value());
}

TEST_F(PairCheck, MeshPassesBetweenTwoMeshedRelaysBothWays) {
  RelayPair relays;
  const ProbeResult ab = Mesh(relays.NodeA(), relays.NodeB(), WithCa(relays));
  EXPECT_TRUE(ab.ok) << ab.error;
  const ProbeResult ba = Mesh(relays.NodeB(), relays.NodeA(), WithCa(relays));
  EXPECT_TRUE(ba.ok) << ba.error;
  // Each direction crossed the mesh (the relays count a forward once its write completes).
  EXPECT_TRUE(testing::WaitUntil([&] { return relays.a().stats().packets_forwarded_out >= 1; }));
  EXPECT_TRUE(testing::WaitUntil([&] { return relays.b().stats().packets_forwarded_out >= 1; }));
}

TEST_F(PairCheck, MeshFailsBetweenUnmeshedRelaysAndSaysWhy) {
  RelayPair relays(/*meshed=*/false);
  const ProbeResult r = Mesh(relays.NodeA(), relays.NodeB(), WithCa(relays, 1500ms));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("1a→1b: sent ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find(" copies over "), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(", none arrived at 1b: are 1a and 1b meshed (--mesh-with) with the same "
                         "mesh key?"),
            std::string::npos)
      << r.error;
}

TEST_F(PairCheck, MeshNamesTheSideThatCannotConnect) {
  testing::TestRelay relay(Tls());
  const std::uint16_t dead = testing_util::DeadTcpPort();
  const ProbeResult r = Mesh(PinnedNode("1a", relay), NodeAt("1b", dead));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("1a→1b: connect to 1b: ", 0), 0u) << r.error;
  EXPECT_NE(r.error.find("Connection refused"), std::string::npos) << r.error;

  const ProbeResult reverse = Mesh(NodeAt("1b", dead), PinnedNode("1a", relay));
  ASSERT_FALSE(reverse.ok);
  EXPECT_EQ(reverse.error.rfind("1b→1a: connect to 1b: ", 0), 0u) << reverse.error;
}

TEST_F(PairCheck, MeshTimesOutNamingTheStep) {
  // Accepts TCP (backlog) and never answers: the sender's TLS handshake hangs.
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  DerpCheckOptions o;
  o.timeout = 300ms;
  const auto node = NodeAt("1a", silent.local_endpoint().port());
  const ProbeResult r = Mesh(node, node, o);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "1a→1a: timed out after 300ms connecting to 1a");
}

// A client holding the mesh key that watches the relay's connections, to see which keys and
// flags the checks' clients present.
class Watcher {
 public:
  Watcher(asio::io_context& io, const RelayPair& relays, testing::TestRelay& relay) : io_(io) {
    derpclient::ClientOptions o = relay.ClientOptionsFor();
    o.tls.ca_file = relays.ca_file();
    o.mesh_key = *derp::MeshKey::Parse(testing_util::kMeshKey);
    client_ = testing::ConnectClient(io, o);
    EXPECT_FALSE(Await(io, client_->WatchConns()));
  }
  // Reads PeerPresent messages until `key` has been seen; returns its flags.
  std::uint8_t FlagsOf(const derp::PublicKey& key) {
    for (int i = 0; i < 100; ++i) {
      auto present = testing::RecvUntil<derpclient::PeerPresentMessage>(io_, *client_, 5000ms);
      seen_[present.peer.key] = present.peer.flags;
      if (auto it = seen_.find(key); it != seen_.end()) return it->second;
    }
    ADD_FAILURE() << "never saw " << key.ToText();
    return 0;
  }

 private:
  asio::io_context& io_;
  std::unique_ptr<derpclient::Client> client_;
  std::map<derp::PublicKey, std::uint8_t> seen_;
};

TEST_F(PairCheck, FixedKeysAreUsedAndTheFlagsSayProberOnlyForMesh) {
  RelayPair relays;
  Watcher watcher(io_, relays, relays.a());
  DerpCheckOptions o = WithCa(relays);
  o.mesh_key = *derp::MeshKey::Parse(testing_util::kMeshKey);
  o.sender_key = testing::TestKey(1);
  o.receiver_key = testing::TestKey(2);
  const ProbeResult mesh = Mesh(relays.NodeA(), relays.NodeA(), o);
  ASSERT_TRUE(mesh.ok) << mesh.error;
  const std::uint8_t sender_flags = watcher.FlagsOf(testing::TestKey(1).Public());
  const std::uint8_t receiver_flags = watcher.FlagsOf(testing::TestKey(2).Public());
  EXPECT_TRUE(sender_flags & derp::PeerPresentFlags::kIsProber);
  EXPECT_TRUE(sender_flags & derp::PeerPresentFlags::kIsMeshPeer) << "the mesh key was presented";
  EXPECT_TRUE(receiver_flags & derp::PeerPresentFlags::kIsProber);

  o.sender_key = testing::TestKey(3);
  o.receiver_key = testing::TestKey(4);
  const ProbeResult bw = Bw(relays.NodeA(), relays.NodeA(), 1000, o);
  ASSERT_TRUE(bw.ok) << bw.error;
  const std::uint8_t bw_flags = watcher.FlagsOf(testing::TestKey(3).Public());
  EXPECT_FALSE(bw_flags & derp::PeerPresentFlags::kIsProber) << "bw spares the relay's logs";
  EXPECT_TRUE(bw_flags & derp::PeerPresentFlags::kIsMeshPeer);
  EXPECT_FALSE(watcher.FlagsOf(testing::TestKey(4).Public()) & derp::PeerPresentFlags::kIsProber);
}

TEST_F(PairCheck, MeshEndsCleanlyWhenTheCallerCancels) {
  RelayPair relays(/*meshed=*/false);
  asio::cancellation_signal cancel;
  std::optional<ProbeResult> result;
  bool threw = false;
  asio::co_spawn(
      io_, CheckMesh(io_, relays.NodeA(), relays.NodeB(), WithCa(relays, 20000ms)),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, ProbeResult r) {
        threw = e != nullptr;
        result = std::move(r);
      }));
  asio::steady_timer later(io_, 500ms);
  later.async_wait([&](std::error_code) { cancel.emit(asio::cancellation_type::terminal); });
  io_.restart();
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!result && std::chrono::steady_clock::now() < deadline) io_.run_one_for(100ms);
  ASSERT_TRUE(result.has_value()) << "the check ended soon after the cancellation";
  EXPECT_FALSE(threw);
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->error, "1a→1b: cancelled while sending a packet to 1b") << result->error;
}

// --- bw ----------------------------------------------------------------------------------------

TEST_F(PairCheck, BandwidthThroughOneRelay) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  const ProbeResult r = Bw(node, node, 200000);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.bw_bytes, 200000u);
  EXPECT_GT(r.bw_transfer_time.count(), 0);
  EXPECT_EQ(r.latency, r.bw_transfer_time);
}

TEST_F(PairCheck, BandwidthThroughTwoMeshedRelays) {
  RelayPair relays;
  const ProbeResult r = Bw(relays.NodeA(), relays.NodeB(), 200000, WithCa(relays));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.bw_bytes, 200000u);
  EXPECT_GT(r.bw_transfer_time.count(), 0);
  // 200000 bytes are 4 packets (3 of 64 KiB); plus at least one warm-up copy.
  EXPECT_TRUE(testing::WaitUntil([&] { return relays.a().stats().packets_forwarded_out >= 5; }));
}

TEST_F(PairCheck, BandwidthOfManyPacketsKeepsOrderUnderTheInFlightLimit) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  // 100 packets, more than three times the 30 in flight; the last one short.
  const std::uint64_t size = 99 * derp::kMaxPacketSize + 123;
  const ProbeResult r = Bw(node, node, size);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.bw_bytes, size);
  const auto stats = relay.stats();
  std::uint64_t drops = 0;
  for (const std::uint64_t n : stats.packets_dropped) drops += n;
  EXPECT_EQ(drops, 0u) << "never more in flight than the queue holds";
}

TEST_F(PairCheck, BandwidthFailsBetweenUnmeshedRelays) {
  RelayPair relays(/*meshed=*/false);
  const ProbeResult r = Bw(relays.NodeA(), relays.NodeB(), 200000, WithCa(relays, 1000ms));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("none arrived at 1b"), std::string::npos) << r.error;
  EXPECT_EQ(r.bw_bytes, 0u);
}

// --- qd ----------------------------------------------------------------------------------------

struct QdCounts {
  int delays = 0;
  int drops = 0;
  double max_delay_seconds = 0;
};

TEST_F(PairCheck, QueuingDelayFor1sAt50PacketsPerSecond) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  QdCheckOptions o;
  o.packets_per_second = 50;
  o.run_for = 1000ms;
  QdCounts counts;
  const ProbeResult r = Await(io_,
                              RunQueuingDelay(
                                  io_, node, node, o,
                                  [&](double seconds) {
                                    ++counts.delays;
                                    counts.max_delay_seconds =
                                        std::max(counts.max_delay_seconds, seconds);
                                  },
                                  [&] { ++counts.drops; }),
                              30s);
  ASSERT_TRUE(r.ok) << r.error;
  // About 50 packets in one second; loose bounds, as the machine may be slow.
  EXPECT_GE(counts.delays, 20);
  EXPECT_LE(counts.delays, 52);
  EXPECT_EQ(counts.drops, 0);
  EXPECT_GT(r.latency.count(), 0);
  EXPECT_LE(std::chrono::duration<double>(r.latency).count(), counts.max_delay_seconds);
}

TEST_F(PairCheck, QueuingDelayFailsWhenTheReceiversRelayStopsMidRun) {
  RelayPair relays;
  QdCheckOptions o;
  o.derp = WithCa(relays);
  o.packets_per_second = 50;
  o.run_for = 20000ms;
  QdCounts counts;
  bool stopping = false;
  const ProbeResult r = Await(io_,
                              RunQueuingDelay(
                                  io_, relays.NodeA(), relays.NodeB(), o,
                                  [&](double) {
                                    if (++counts.delays == 5 && !stopping) {
                                      stopping = true;
                                      asio::post(io_, [&] { relays.StopB(); });
                                    }
                                  },
                                  [&] { ++counts.drops; }),
                              30s);
  ASSERT_FALSE(r.ok);
  EXPECT_GE(counts.delays, 5);
  EXPECT_EQ(r.error.rfind("1a→1b: receive at 1b: ", 0), 0u) << r.error;
}

TEST_F(PairCheck, QueuingDelayEndsCleanlyWhenCancelledAndCallsNothingAfterwards) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  QdCheckOptions o;
  o.packets_per_second = 100;
  o.run_for = 0ms;  // until cancelled
  asio::cancellation_signal cancel;
  std::optional<ProbeResult> result;
  bool threw = false;
  int delays = 0;
  int delays_at_end = -1;
  asio::co_spawn(
      io_,
      RunQueuingDelay(
          io_, node, node, o,
          [&](double) {
            if (++delays == 10) {
              asio::post(io_, [&] { cancel.emit(asio::cancellation_type::terminal); });
            }
          },
          [] {}),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, ProbeResult r) {
        threw = e != nullptr;
        result = std::move(r);
        delays_at_end = delays;
      }));
  io_.restart();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!result && std::chrono::steady_clock::now() < deadline) io_.run_one_for(100ms);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(threw);
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->error, "1a→1a: cancelled");
  // Let anything still queued run: no callback fires after the run has ended.
  io_.restart();
  io_.run_for(300ms);
  EXPECT_EQ(delays, delays_at_end);
}

TEST_F(PairCheck, QueuingDelayRefusesAZeroRate) {
  testing::TestRelay relay(Tls());
  const auto node = PinnedNode("1a", relay);
  QdCheckOptions o;
  const ProbeResult r = Await(io_, RunQueuingDelay(io_, node, node, o, nullptr, nullptr), 5s);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "1a→1a: the queuing-delay probe needs packets_per_second above 0");
}

}  // namespace
}  // namespace derpkit::probe
