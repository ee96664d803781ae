// Connections moving to the shard of the peer they talk to (relay/client_conn.h, "Moving"),
// against an in-process relay with --workers 2 on loopback, over plain TCP and over TLS 1.3
// (the relay's own record layer). Thread: the test's own, driving its io_context; the relay runs
// on its own threads.
//
// The relay accepts round robin, so clients connected one after another land on shards 0, 1,
// 0, ...: a pair connected A then B starts on two shards. What is checked is what a client sees
// (every packet arrives, KeepAlives and PeerGone still come) and where the relay says its
// connections are (derp_shard_connections, derp_shard_connections_moved_in_total).
//
// Where a pair goes depends on how busy the shards' threads are (relay/placement.h; its rules
// are tested figure by figure in placement_test.cc). Here the marks are set so that this test's
// load cannot cross them: split pairs always gather (--move-gather-below 1) and nothing spreads
// (--move-spread-above 1), except in the tests of shedding, which set them for what they test.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "lib/derp/messages.h"
#include "relay/server.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::KeepAliveMessage;
using derpclient::PeerGoneMessage;
using derpclient::RecvPacketMessage;

// Generous: a loaded machine only makes the test slower. What is asserted is what the relay did.
constexpr auto kRelayActsWithin = 30s;
// Packets sent before the test gives up waiting for a move (a move needs a window of 256).
constexpr int kMaxPacketsForAMove = 20000;
// Sent, then received, in rounds of this many: the receiver reads while the sender sends.
constexpr int kRound = 64;

Bytes Numbered(int n) { return Payload("packet " + std::to_string(n)); }

struct Mode {
  bool tls;
};

class RelayMoves : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    // The relay accepts round robin: one at a time, so that each client's shard is known.
    relay_ = std::make_unique<TestRelay>(
        TestRelayOptions{GetParam().tls, 2, false, [this](relay::RelayConfig& c) {
                           c.keepalive_interval = std::chrono::milliseconds(300);
                           c.move_connections = move_connections_;
                           c.move_gather_below = gather_below_;
                           c.move_spread_above = spread_above_;
                         }});
  }

  std::unique_ptr<derpclient::Client> Connect(std::uint8_t seed) {
    auto opts = relay_->ClientOptionsFor();
    opts.key = TestKey(seed);
    auto c = ConnectClient(io_, opts);
    const auto want = ++connected_;
    EXPECT_TRUE(WaitUntil([&] { return relay_->stats().current_connections == want; }));
    return c;
  }

  // Sends `count` numbered packets from `from` to `to` (numbers first .. first+count-1) and
  // receives as many; returns how many arrived in the order they were sent (derper's order: one
  // queue per receiver, so one sender's packets never overtake each other).
  int Exchange(derpclient::Client& from, derpclient::Client& to, int first, int count) {
    int in_order = 0;
    for (int sent = 0; sent < count;) {
      const int n = std::min(kRound, count - sent);
      for (int i = 0; i < n; ++i) {
        EXPECT_FALSE(Await(io_, from.SendPacket(to.public_key(), Numbered(first + sent + i))));
      }
      for (int i = 0; i < n; ++i) {
        const auto m = RecvUntil<RecvPacketMessage>(io_, to, 10000ms);
        EXPECT_EQ(m.src, from.public_key());
        if (m.packet == Numbered(first + sent + i)) ++in_order;
      }
      sent += n;
    }
    return in_order;
  }

  std::uint64_t MovesIn(std::size_t shard) const {
    return relay_->stats().shards[shard].connections_moved_in;
  }
  std::int64_t ConnsOn(std::size_t shard) const {
    return relay_->stats().shards[shard].connections;
  }
  std::uint64_t Crossed() const { return relay_->stats().cross_shard_packets; }

  // Sends A -> B until `moves` connections have moved (or kMaxPacketsForAMove); every packet
  // must arrive. Returns the packets sent.
  int SendUntilMoved(derpclient::Client& a, derpclient::Client& b, std::uint64_t moves = 1) {
    int sent = 0;
    while (MovesIn(0) + MovesIn(1) < moves && sent < kMaxPacketsForAMove) {
      EXPECT_EQ(Exchange(a, b, sent, 256), 256) << "packets lost or reordered around a move";
      sent += 256;
    }
    return sent;
  }

  // Starts the relay again with other marks for placement.
  void RestartWith(double gather_below, double spread_above) {
    gather_below_ = gather_below;
    spread_above_ = spread_above;
    relay_.reset();
    SetUp();
    connected_ = 0;
  }

  bool move_connections_ = true;
  double gather_below_ = 1.0;
  double spread_above_ = 1.0;
  std::unique_ptr<TestRelay> relay_;
  asio::io_context io_;
  std::int64_t connected_ = 0;
};

TEST_P(RelayMoves, APairOnTwoShardsEndsOnOneAndLosesNothing) {
  auto a = Connect(1);  // shard 0
  auto b = Connect(2);  // shard 1
  ASSERT_EQ(ConnsOn(0), 1);
  ASSERT_EQ(ConnsOn(1), 1);
  if (GetParam().tls) {
    EXPECT_EQ(relay_->stats().tls13_record_layer, 2u) << "TLS 1.3 hand-over";
  }

  SendUntilMoved(*a, *b);
  // Lightly loaded: the receiver on the higher index came over to the sender's (ProposeMove).
  ASSERT_EQ(MovesIn(0), 1u) << "no move after " << kMaxPacketsForAMove << " packets";
  EXPECT_EQ(MovesIn(1), 0u);
  EXPECT_EQ(ConnsOn(0), 2);
  EXPECT_EQ(ConnsOn(1), 0);

  // From now on nothing crosses, both ways, and every packet still arrives.
  const auto crossed = Crossed();
  EXPECT_EQ(Exchange(*a, *b, 100000, 1000), 1000);
  EXPECT_EQ(Exchange(*b, *a, 200000, 1000), 1000);
  EXPECT_EQ(Crossed(), crossed) << "packets between a colocated pair crossed shards";
  EXPECT_EQ(MovesIn(0) + MovesIn(1), 1u) << "a pair that talks both ways moved again";

  // The moved connection's KeepAlives come from its new shard's ticker.
  RecvUntil<KeepAliveMessage>(io_, *b, 5000ms);
  const auto s = relay_->stats();
  EXPECT_EQ(s.packets_dropped[static_cast<int>(relay::DropReason::kGoneDisconnected)], 0u);
  EXPECT_EQ(s.packets_dropped[static_cast<int>(relay::DropReason::kUnknownDest)], 0u);
  std::string problems;
  EXPECT_TRUE(relay_->server().registry().CheckConsistency(&problems)) << problems;
}

TEST_P(RelayMoves, ALightlyLoadedPairGathersOnTheLowerShardEvenWhenItIsTheFuller) {
  auto a = Connect(1);     // shard 0
  auto b = Connect(2);     // shard 1
  auto idle = Connect(3);  // shard 0: shard 0 is now the fuller
  SendUntilMoved(*a, *b);
  ASSERT_EQ(MovesIn(0), 1u) << "the receiver did not come over to the lower shard";
  EXPECT_EQ(MovesIn(1), 0u);
  EXPECT_EQ(ConnsOn(0), 3);
  EXPECT_EQ(ConnsOn(1), 0);
  const auto crossed = Crossed();
  EXPECT_EQ(Exchange(*a, *b, 100000, 1000), 1000);
  EXPECT_EQ(Crossed(), crossed);
}

// Shedding (relay/placement.h, ShedTarget): a pair that talks within one shard moves, both
// members, to another. The marks make this test's light load count as busy (spreading) or as
// light (gathering).
TEST_P(RelayMoves, ABusyShardSpreadsAPairThatTalksWithinItToAnIdleShard) {
  RestartWith(/*gather_below=*/0, /*spread_above=*/0.001);
  auto a = Connect(1);     // shard 0
  auto idle = Connect(2);  // shard 1: nothing there talks, so its thread is the less busy
  auto b = Connect(3);     // shard 0, with a
  ASSERT_EQ(ConnsOn(0), 2);
  SendUntilMoved(*a, *b, 2);
  ASSERT_EQ(MovesIn(1), 2u) << "the pair did not spread to shard 1 after " << kMaxPacketsForAMove
                            << " packets";
  EXPECT_EQ(MovesIn(0), 0u);
  EXPECT_EQ(ConnsOn(0), 0);
  EXPECT_EQ(ConnsOn(1), 3);
  // Together again: nothing crosses, both ways, and a shed pair is not shed back at once.
  const auto crossed = Crossed();
  EXPECT_EQ(Exchange(*a, *b, 100000, 1000), 1000);
  EXPECT_EQ(Exchange(*b, *a, 200000, 1000), 1000);
  EXPECT_EQ(Crossed(), crossed);
  EXPECT_EQ(MovesIn(0) + MovesIn(1), 2u);
  const auto s = relay_->stats();
  EXPECT_EQ(s.packets_dropped[static_cast<int>(relay::DropReason::kGoneDisconnected)], 0u);
  std::string problems;
  EXPECT_TRUE(relay_->server().registry().CheckConsistency(&problems)) << problems;
}

TEST_P(RelayMoves, LightlyLoadedShardsGatherAPairThatTalksOnTheHigherShard) {
  RestartWith(/*gather_below=*/1.0, /*spread_above=*/1.0);
  auto idle0 = Connect(1);  // shard 0
  auto a = Connect(2);      // shard 1
  auto idle1 = Connect(3);  // shard 0
  auto b = Connect(4);      // shard 1, with a
  SendUntilMoved(*a, *b, 2);
  ASSERT_EQ(MovesIn(0), 2u) << "the pair did not gather on shard 0 after " << kMaxPacketsForAMove
                            << " packets";
  EXPECT_EQ(MovesIn(1), 0u);
  EXPECT_EQ(ConnsOn(0), 4);
  EXPECT_EQ(ConnsOn(1), 0);
  const auto crossed = Crossed();
  EXPECT_EQ(Exchange(*a, *b, 100000, 1000), 1000);
  EXPECT_EQ(Crossed(), crossed);
}

TEST_P(RelayMoves, AMovedReceiverStillHearsPeerGoneOnce) {
  auto a = Connect(1);  // shard 0
  auto b = Connect(2);  // shard 1, moves to shard 0
  SendUntilMoved(*a, *b);
  ASSERT_EQ(MovesIn(0), 1u);
  // b heard from a on shard 1 and lives on shard 0 now: a's leaving must reach it from there.
  a->Close();
  const auto gone = RecvUntil<PeerGoneMessage>(io_, *b, 10000ms);
  EXPECT_EQ(gone.key, TestKey(1).Public());
  EXPECT_EQ(gone.reason, derp::PeerGoneReason::kDisconnected);
  EXPECT_TRUE(WaitUntil([&] { return relay_->stats().peer_gone_disconnected_frames == 1; }));
  // Only one: the stale entry on shard 1 finds no connection.
  EXPECT_THROW(RecvUntil<PeerGoneMessage>(io_, *b, 500ms), std::runtime_error);
}

TEST_P(RelayMoves, AClosedMovedConnectionLeavesNothingBehind) {
  auto a = Connect(1);
  auto b = Connect(2);
  SendUntilMoved(*a, *b);
  ASSERT_EQ(MovesIn(0) + MovesIn(1), 1u);
  a->Close();
  b->Close();
  ASSERT_TRUE(
      WaitUntil([&] { return relay_->stats().current_connections == 0; }, kRelayActsWithin));
  EXPECT_EQ(ConnsOn(0), 0);
  EXPECT_EQ(ConnsOn(1), 0);
  EXPECT_EQ(relay_->stats().registry.keys_local, 0);
  // A new pair after that starts from balanced shards.
  connected_ = 0;
  auto c = Connect(4);
  auto d = Connect(5);
  EXPECT_EQ(ConnsOn(0) + ConnsOn(1), 2);
  EXPECT_EQ(Exchange(*c, *d, 0, 300), 300);
}

TEST_P(RelayMoves, MoveConnectionsFalseKeepsEveryConnectionWhereItWasAccepted) {
  move_connections_ = false;
  SetUp();  // again, with the flag off
  connected_ = 0;
  auto a = Connect(1);
  auto b = Connect(2);
  const auto crossed = Crossed();
  EXPECT_EQ(Exchange(*a, *b, 0, 2048), 2048);
  EXPECT_EQ(MovesIn(0) + MovesIn(1), 0u);
  EXPECT_EQ(Crossed() - crossed, 2048u);
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, RelayMoves, ::testing::Values(Mode{false}, Mode{true}),
                         [](const auto& info) { return info.param.tls ? "Tls" : "Plain"; });

}  // namespace
}  // namespace derpkit::testing
