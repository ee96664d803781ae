// Bad input at every stage of a connection: each gets a clear reason, only that connection is
// closed, everyone else is served, and the relay counts the event.
#include <gtest/gtest.h>

#include <string>

#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::RecvPacketMessage;
using relay::CloseReason;
using relay::DropReason;

constexpr std::string_view kUpgrade =
    "GET /derp HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n";

class RelayBadInput : public ::testing::Test {
 protected:
  TestRelay relay_{TestRelayOptions{false, 2, false,
                                    [](relay::RelayConfig& c) { c.handshake_timeout = 300ms; }}};
  asio::io_context io_;

  // Proves the relay still serves: two fresh clients exchange a packet.
  void ExpectOthersServed() {
    auto opts = relay_.ClientOptionsFor();
    opts.key = TestKey(40);
    auto a = ConnectClient(io_, opts);
    opts.key = TestKey(41);
    auto b = ConnectClient(io_, opts);
    ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("still served"))));
    EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *b).packet, Payload("still served"));
  }

  // Upgrades a raw peer and reads the 101 head and the ServerKey frame.
  void Upgrade(RawPeer& peer) {
    peer.Send(kUpgrade);
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) head += peer.ReadExactly(1);
    EXPECT_NE(head.find("HTTP/1.1 101 Switching Protocols"), std::string::npos);
    const std::string key_frame = peer.ReadExactly(45);
    EXPECT_EQ(key_frame[0], '\x01');
  }
};

TEST_F(RelayBadInput, BytesThatAreNotHttpGet400AndClose) {
  RawPeer peer(io_, relay_.port());
  peer.Send(std::string_view("\x16\x03\x01\x02\x00 hello\r\n\r\n", 14));
  auto [reply, closed] = peer.ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << reply;
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kBadHttp) == 1; }));
  ExpectOthersServed();
}

TEST_F(RelayBadInput, HeadOverTheLimitGets431AndClose) {
  RawPeer peer(io_, relay_.port());
  peer.Send("GET /derp HTTP/1.1\r\nX-Big: " + std::string(20000, 'a'));
  auto [reply, closed] = peer.ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431 ", 0), 0u) << reply;
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kHeadTooLarge) == 1; }));
  ExpectOthersServed();
}

TEST_F(RelayBadInput, ClientInfoBoxThatDoesNotOpenCloses) {
  RawPeer peer(io_, relay_.port());
  Upgrade(peer);
  // A well-formed ClientInfo frame sealed to the wrong server key.
  Bytes frame;
  derp::AppendClientInfo(frame, TestKey(7), TestKey(8).Public(), derp::ClientInfo{},
                         derp::RandomNonce());
  peer.Send(frame);
  EXPECT_TRUE(peer.ReadUntilClosed().second);
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kBadClientInfo) == 1; }));
  ExpectOthersServed();
}

TEST_F(RelayBadInput, FrameBeforeTheHandshakeCloses) {
  RawPeer peer(io_, relay_.port());
  Upgrade(peer);
  Bytes frame;
  derp::AppendSendPacket(frame, TestKey(9).Public(), Payload("too early"));
  peer.Send(frame);
  EXPECT_TRUE(peer.ReadUntilClosed().second);
  EXPECT_TRUE(
      WaitUntil([&] { return relay_.stats().closed(CloseReason::kFrameBeforeHandshake) == 1; }));
  ExpectOthersServed();
}

TEST_F(RelayBadInput, SilentClientHitsTheHandshakeDeadline) {
  RawPeer silent_http(io_, relay_.port());
  RawPeer silent_derp(io_, relay_.port());
  Upgrade(silent_derp);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent_http.ReadUntilClosed().second);
  EXPECT_TRUE(silent_derp.ReadUntilClosed().second);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(
      WaitUntil([&] { return relay_.stats().closed(CloseReason::kHandshakeTimeout) == 2; }));
  ExpectOthersServed();
}

TEST(RelayBadInputTls, SilentTlsClientHitsTheHandshakeDeadline) {
  TestRelay relay{
      TestRelayOptions{true, 1, false, [](relay::RelayConfig& c) { c.handshake_timeout = 300ms; }}};
  asio::io_context io;
  RawPeer silent(io, relay.port());
  EXPECT_TRUE(silent.ReadUntilClosed().second);
  EXPECT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kHandshakeTimeout) == 1; }));
  // Plain text to a TLS port is a failed TLS handshake, not a hang.
  RawPeer plain(io, relay.port());
  plain.Send(kUpgrade);
  EXPECT_TRUE(plain.ReadUntilClosed().second);
  EXPECT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kTlsError) == 1; }));
}

// A client that never reads loses only its own packets: the sender and a third client carry on.
void RunNonReader(bool tls, int workers) {
  TestRelay relay{TestRelayOptions{tls, workers, false, [](relay::RelayConfig& c) {
                                     c.tcp_write_timeout = 0ms;  // watch the queue, not the clock
                                   }}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  auto sender = ConnectClient(io, opts);
  opts.key = TestKey(2);
  auto stuck = ConnectClient(io, opts);  // never calls Recv() again
  opts.key = TestKey(3);
  auto third = ConnectClient(io, opts);

  const Bytes big(1200, std::byte{0x42});
  // Enough to fill the kernel's socket buffers on loopback several times over.
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 1000; ++i) {
      ASSERT_FALSE(Await(io, sender->SendPacket(stuck->public_key(), big)));
    }
    ASSERT_FALSE(Await(
        io, sender->SendPacket(third->public_key(), Payload("round " + std::to_string(round)))));
    EXPECT_EQ(RecvUntil<RecvPacketMessage>(io, *third).packet,
              Payload("round " + std::to_string(round)));
    if (relay.stats().dropped(DropReason::kQueueHead) > 0 && round >= 5) break;
  }
  EXPECT_GT(relay.stats().dropped(DropReason::kQueueHead), 0u);
  EXPECT_EQ(relay.stats().current_connections, 3);
}

TEST(RelayBackPressure, NonReadingClientLosesOnlyItsOwnPackets) { RunNonReader(false, 1); }
TEST(RelayBackPressure, NonReadingClientLosesOnlyItsOwnPacketsAcrossShards) {
  RunNonReader(false, 2);
}
TEST(RelayBackPressure, NonReadingClientLosesOnlyItsOwnPacketsOverTls) { RunNonReader(true, 2); }

TEST(RelayBackPressure, WriteDeadlineClosesANonReadingClient) {
  TestRelay relay{TestRelayOptions{false, 1, false,
                                   [](relay::RelayConfig& c) { c.tcp_write_timeout = 300ms; }}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  auto sender = ConnectClient(io, opts);
  opts.key = TestKey(2);
  auto stuck = ConnectClient(io, opts);
  const Bytes big(1200, std::byte{0x42});
  for (int i = 0; i < 40000 && relay.stats().write_timeouts == 0; ++i) {
    ASSERT_FALSE(Await(io, sender->SendPacket(stuck->public_key(), big)));
  }
  EXPECT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kWriteTimeout) == 1; }));
  EXPECT_GE(relay.stats().write_timeouts, 1u);
  EXPECT_TRUE(WaitUntil([&] { return relay.stats().current_connections == 1; }));
}

}  // namespace
}  // namespace derpkit::testing
