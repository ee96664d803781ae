// derp-relay in-process on loopback, real sockets and TLS, spoken to by derpclient::Client:
// every client-facing frame, plain and TLS, one and two workers, and the relay's counters.
#include <gtest/gtest.h>

#include <string>

#include "lib/derp/messages.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::KeepAliveMessage;
using derpclient::PeerGoneMessage;
using derpclient::PongMessage;
using derpclient::RecvPacketMessage;
using relay::CloseReason;
using relay::DropReason;

Bytes DiscoPayload() {
  Bytes p = {std::byte{0x54}, std::byte{0x53}, std::byte{0xf0},
             std::byte{0x9f}, std::byte{0x92}, std::byte{0xac}};
  p.resize(70, std::byte{0});
  return p;
}

struct Mode {
  bool tls;
  int workers;
};

class RelayLoopback : public ::testing::TestWithParam<Mode> {
 protected:
  TestRelay relay_{TestRelayOptions{
      GetParam().tls, GetParam().workers, false,
      [](relay::RelayConfig& c) { c.keepalive_interval = std::chrono::milliseconds(300); }}};
  asio::io_context io_;

  std::unique_ptr<derpclient::Client> Connect(std::uint8_t seed, bool can_ack_pings = true) {
    auto opts = relay_.ClientOptionsFor();
    opts.key = TestKey(seed);
    opts.can_ack_pings = can_ack_pings;
    return ConnectClient(io_, opts);
  }
};

TEST_P(RelayLoopback, TwoClientsExchangePacketsBothWays) {
  auto a = Connect(1);
  auto b = Connect(2);
  ASSERT_TRUE(WaitUntil([&] { return relay_.stats().current_connections == 2; }));
  EXPECT_EQ(a->server_key(), relay_.server().public_key());
  if (GetParam().tls) {
    EXPECT_TRUE(a->used_fast_start()) << "TLS 1.3 with meta cert";
  }

  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("hello B, from A"))));
  auto got = RecvUntil<RecvPacketMessage>(io_, *b);
  EXPECT_EQ(got.src, a->public_key());
  EXPECT_EQ(got.packet, Payload("hello B, from A"));

  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("hello A, from B"))));
  auto back = RecvUntil<RecvPacketMessage>(io_, *a);
  EXPECT_EQ(back.src, b->public_key());
  EXPECT_EQ(back.packet, Payload("hello A, from B"));

  const auto s = relay_.stats();
  EXPECT_EQ(s.packets_received, 2u);
  EXPECT_EQ(s.bytes_received, 30u);
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().packets_sent == 2; }));
  EXPECT_EQ(s.derp_accepts, 2u);
  if (GetParam().workers == 2) {
    EXPECT_EQ(s.cross_shard_packets, 2u) << "clients on two shards";
  }
}

TEST_P(RelayLoopback, ManyPacketsArriveInOrder) {
  auto a = Connect(1);
  auto b = Connect(2);
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_FALSE(
        Await(io_, a->SendPacket(b->public_key(), Payload("packet " + std::to_string(i)))));
    // Read as we go: the point is ordering, not the queue limit.
    auto got = RecvUntil<RecvPacketMessage>(io_, *b);
    ASSERT_EQ(got.packet, Payload("packet " + std::to_string(i)));
  }
}

TEST_P(RelayLoopback, PingGetsPongWithTheSameBytes) {
  auto a = Connect(1);
  const derp::PingData data = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                               std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  ASSERT_FALSE(Await(io_, a->SendPing(data)));
  auto pong = RecvUntil<PongMessage>(io_, *a);
  EXPECT_EQ(pong.data, data);
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().sent_pong == 1; }));
  EXPECT_EQ(relay_.stats().got_ping, 1u);
}

TEST_P(RelayLoopback, KeepAliveArrivesOnSchedule) {
  auto a = Connect(1);
  RecvUntil<KeepAliveMessage>(io_, *a, 3000ms);
  EXPECT_GE(relay_.stats().keepalives_sent, 1u);
  // And again: the shard's keepalive wheel schedules the next one after each.
  RecvUntil<KeepAliveMessage>(io_, *a, 3000ms);
  RecvUntil<KeepAliveMessage>(io_, *a, 3000ms);
  EXPECT_GE(relay_.stats().keepalives_sent, 3u);
}

TEST_P(RelayLoopback, NotePreferredCountsHomeConnections) {
  auto a = Connect(1);
  ASSERT_FALSE(Await(io_, a->NotePreferred(true)));
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().home_connections == 1; }));
  ASSERT_FALSE(Await(io_, a->NotePreferred(false)));
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().home_connections == 0; }));
}

TEST_P(RelayLoopback, PeerGoneDisconnectedReachesThoseWhoHeardFromThePeer) {
  auto a = Connect(1);
  auto b = Connect(2);
  auto c = Connect(3);
  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("from B"))));
  RecvUntil<RecvPacketMessage>(io_, *a);
  const auto b_key = b->public_key();
  b->Close();
  auto gone = RecvUntil<PeerGoneMessage>(io_, *a);
  EXPECT_EQ(gone.key, b_key);
  EXPECT_EQ(gone.reason, derp::PeerGoneReason::kDisconnected);
  EXPECT_EQ(relay_.stats().peer_gone_disconnected_frames, 1u) << "C never heard from B";
}

TEST_P(RelayLoopback, DiscoToUnknownKeyGetsPeerGoneNotHere) {
  auto a = Connect(1);
  const auto unknown = TestKey(99).Public();
  ASSERT_FALSE(Await(io_, a->SendPacket(unknown, DiscoPayload())));
  auto gone = RecvUntil<PeerGoneMessage>(io_, *a);
  EXPECT_EQ(gone.key, unknown);
  EXPECT_EQ(gone.reason, derp::PeerGoneReason::kNotHere);
  // A non-disco packet to an unknown key is only dropped.
  ASSERT_FALSE(Await(io_, a->SendPacket(unknown, Payload("plain"))));
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().dropped(DropReason::kUnknownDest) == 2; }));
  EXPECT_EQ(relay_.stats().packets_dropped_kind[0], 1u);  // disco
  EXPECT_EQ(relay_.stats().peer_gone_not_here_frames, 1u);
}

TEST_P(RelayLoopback, DuplicateKeyLastWriterIsActive) {
  auto first = Connect(5);
  auto second = Connect(5);
  auto sender = Connect(6);
  ASSERT_TRUE(WaitUntil([&] { return relay_.stats().registry.dup_keys == 1; }));
  EXPECT_EQ(relay_.stats().registry.dup_conns, 2);
  // The newest connection is active.
  ASSERT_FALSE(Await(io_, sender->SendPacket(first->public_key(), Payload("to newest"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *second).packet, Payload("to newest"));
  // The older one speaks, so it becomes active. Its pong proves the frame was processed (and
  // the route change posted to every shard) before the next packet is sent.
  ASSERT_FALSE(Await(io_, first->NotePreferred(false)));
  ASSERT_FALSE(Await(io_, first->SendPing({})));
  RecvUntil<PongMessage>(io_, *first);
  ASSERT_FALSE(Await(io_, sender->SendPacket(first->public_key(), Payload("to speaker"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *first).packet, Payload("to speaker"));
  // When the active one leaves, the other takes over.
  first->Close();
  ASSERT_TRUE(WaitUntil([&] { return relay_.stats().registry.dup_keys == 0; }));
  ASSERT_FALSE(Await(io_, sender->SendPacket(second->public_key(), Payload("to survivor"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *second).packet, Payload("to survivor"));
  EXPECT_EQ(relay_.stats().registry.total_dup_conns, 1u);
}

TEST_P(RelayLoopback, UnknownFrameTypesAreSkipped) {
  auto a = Connect(1);
  auto b = Connect(2);
  // Type 0x30 with a 3-byte body, then a real packet.
  const Bytes unknown = BytesFromHex("30 00000003 aabbcc");
  ASSERT_FALSE(Await(io_, a->SendRaw(unknown)));
  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("after unknown"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *b).packet, Payload("after unknown"));
  EXPECT_EQ(relay_.stats().unknown_frames, 1u);
}

TEST_P(RelayLoopback, OversizedFrameClosesOnlyThatClient) {
  auto a = Connect(1);
  auto b = Connect(2);
  // SendPacket announcing 1 MiB: over the limit before any of it is read.
  ASSERT_FALSE(Await(io_, a->SendRaw(BytesFromHex("04 00100000"))));
  auto r = Await(io_, a->Recv());
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kFrameTooLarge) == 1; }));
  auto c = Connect(3);
  ASSERT_FALSE(Await(io_, c->SendPacket(b->public_key(), Payload("still here"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *b).packet, Payload("still here"));
}

TEST_P(RelayLoopback, MeshOnlyFramesFromOrdinaryClientsClose) {
  auto a = Connect(1);
  ASSERT_FALSE(Await(io_, a->WatchConns()));
  EXPECT_FALSE(Await(io_, a->Recv()).has_value());
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kNotAllowed) == 1; }));
}

INSTANTIATE_TEST_SUITE_P(Modes, RelayLoopback,
                         ::testing::Values(Mode{false, 1}, Mode{false, 2}, Mode{true, 1},
                                           Mode{true, 2}),
                         [](const auto& info) {
                           return std::string(info.param.tls ? "Tls" : "Plain") +
                                  std::to_string(info.param.workers) + "Workers";
                         });

}  // namespace
}  // namespace derpkit::testing
