// Issue #10's small mends, each against an in-process relay on loopback (thread: the test's own,
// driving its io_context; the relay runs on its own threads):
// - frames the relay does not act on are skipped exactly as derper skips them (its read loop
//   handles SendPacket, NotePreferred, Ping, WatchConns, ClosePeer and ForwardPacket; every other
//   type, whatever its length, goes to handleUnknownFrame and is discarded), while the lengths
//   derper refuses still close;
// - a client that floods Pings and never reads is closed by --tcp-write-timeout (write_timeout),
//   and nobody else notices;
// - a shard routes with every route the Registry made before, even one whose post its loop has
//   not run yet.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <numeric>
#include <string>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"
#include "relay/client_conn.h"
#include "relay/metrics.h"
#include "relay/shard.h"
#include "relay/stalled_reader.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::RecvPacketMessage;
using relay::CloseReason;

// How long a test waits for the relay to act on its own: generous, so that a slow or loaded
// machine only makes the test slower. What is asserted is what the relay did, never how fast.
constexpr auto kRelayActsWithin = 30s;

// The value of one series in the relay's /debug/varz text, as printed.
std::string Series(relay::Server& server, const std::string& series) {
  const std::string text = relay::RenderPrometheus(server);
  const std::string line_start = "\n" + series + " ";
  const std::size_t at = text.find(line_start);
  if (at == std::string::npos) return "<missing>";
  const std::size_t value = at + line_start.size();
  return text.substr(value, text.find('\n', value) - value);
}

std::uint64_t TotalCloses(const TestRelay& relay) {
  const auto closes = relay.stats().closes;
  return std::accumulate(closes.begin(), closes.end(), std::uint64_t{0});
}

// A frame of `type` with `length` payload bytes of 0x11.
Bytes Frame(std::uint8_t type, std::uint32_t length) {
  Bytes frame;
  derp::AppendFrameHeader(frame, static_cast<derp::FrameType>(type), length);
  frame.resize(frame.size() + length, std::byte{0x11});
  return frame;
}

// Only the header of a frame announcing `length` bytes: the relay judges the length first.
Bytes Header(std::uint8_t type, std::uint32_t length) {
  Bytes frame;
  derp::AppendFrameHeader(frame, static_cast<derp::FrameType>(type), length);
  return frame;
}

struct SkippedFrame {
  const char* name;
  // Builds the frame; gets the relay's public key (for a real second ClientInfo).
  std::function<Bytes(const derp::PublicKey& server)> make;
};

class RelaySkipsFrames : public ::testing::TestWithParam<SkippedFrame> {
 protected:
  TestRelay relay_{TestRelayOptions{false, 1, false, nullptr}};
  asio::io_context io_;

  std::unique_ptr<derpclient::Client> Connect(std::uint8_t seed) {
    auto opts = relay_.ClientOptionsFor();
    opts.key = TestKey(seed);
    return ConnectClient(io_, opts);
  }
};

TEST_P(RelaySkipsFrames, KeepsTheConnectionAndStillRelaysBothWays) {
  auto a = Connect(1);
  auto b = Connect(2);
  EXPECT_EQ(Series(relay_.server(), "derp_unknown_frames_total"), "0");

  ASSERT_FALSE(Await(io_, a->SendRaw(GetParam().make(relay_.server().public_key()))));
  // The frame is behind us once a packet sent after it arrives; then the other direction.
  const std::string name = GetParam().name;
  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("after " + name))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *b).packet, Payload("after " + name));
  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("back to " + name))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *a).packet, Payload("back to " + name));

  EXPECT_EQ(relay_.stats().unknown_frames, 1u);
  EXPECT_EQ(Series(relay_.server(), "derp_unknown_frames_total"), "1");
  EXPECT_EQ(TotalCloses(relay_), 0u) << "no connection was closed";
  EXPECT_EQ(relay_.stats().current_connections, 2);
}

Bytes SecondClientInfo(const derp::PublicKey& server) {
  Bytes frame;
  derp::AppendClientInfo(frame, TestKey(1), server, derp::ClientInfo{}, derp::RandomNonce());
  return frame;
}

INSTANTIATE_TEST_SUITE_P(
    LikeDerper, RelaySkipsFrames,
    ::testing::Values(
        // Pong: the relay never pings, so a Pong answers nothing, whatever its length.
        SkippedFrame{"PongOfNoBytes", [](auto&) { return Frame(0x13, 0); }},
        SkippedFrame{"PongOfSevenBytes", [](auto&) { return Frame(0x13, 7); }},
        SkippedFrame{"PongOfEightBytes", [](auto&) { return Frame(0x13, 8); }},
        SkippedFrame{"PongOfNineBytes", [](auto&) { return Frame(0x13, 9); }},
        SkippedFrame{"PongOfTwoThousandBytes", [](auto&) { return Frame(0x13, 2000); }},
        // ClientInfo after the handshake: a real one, a short one, and one over the 256 KiB
        // handshake limit (skipped across many reads).
        SkippedFrame{"SecondClientInfo", SecondClientInfo},
        SkippedFrame{"SecondClientInfoOfTenBytes", [](auto&) { return Frame(0x02, 10); }},
        SkippedFrame{"SecondClientInfoOver256KiB", [](auto&) { return Frame(0x02, 300000); }},
        // Server-to-client types sent by a client.
        SkippedFrame{"ServerKey", [](auto&) { return Frame(0x01, 40); }},
        SkippedFrame{"ServerInfo", [](auto&) { return Frame(0x03, 24); }},
        SkippedFrame{"RecvPacket", [](auto&) { return Frame(0x05, 40); }},
        SkippedFrame{"KeepAlive", [](auto&) { return Frame(0x06, 0); }},
        SkippedFrame{"PeerGone", [](auto&) { return Frame(0x08, 33); }},
        SkippedFrame{"PeerPresent", [](auto&) { return Frame(0x09, 51); }},
        SkippedFrame{"Health", [](auto&) { return Frame(0x14, 5); }},
        SkippedFrame{"Restarting", [](auto&) { return Frame(0x15, 8); }},
        // Unassigned types, one longer than any frame the relay buffers.
        SkippedFrame{"Unassigned0x0b", [](auto&) { return Frame(0x0b, 3); }},
        SkippedFrame{"Unassigned0xffOf70000Bytes", [](auto&) { return Frame(0xff, 70000); }}),
    [](const ::testing::TestParamInfo<SkippedFrame>& info) { return info.param.name; });

// The other side of the line: the lengths derper refuses for the frames it acts on still close
// (relay_bad_input_test covers the too-short NotePreferred, SendPacket and Ping).
struct ClosingFrame {
  const char* name;
  Bytes frame;
  CloseReason reason;
};

class RelayClosesOnFrames : public ::testing::TestWithParam<ClosingFrame> {};

TEST_P(RelayClosesOnFrames, LikeDerper) {
  TestRelay relay{TestRelayOptions{false, 1, false, nullptr}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  auto a = ConnectClient(io, opts);
  ASSERT_FALSE(Await(io, a->SendRaw(GetParam().frame)));
  std::string ended;
  for (int i = 0; i < 8 && ended.empty(); ++i) {  // a KeepAlive may come first
    auto message = Await(io, a->Recv(), kRelayActsWithin);
    if (!message) ended = message.error();
  }
  EXPECT_NE(ended, "") << "the relay kept the connection open";
  EXPECT_TRUE(
      WaitUntil([&] { return relay.stats().closed(GetParam().reason) == 1; }, kRelayActsWithin));
  EXPECT_EQ(TotalCloses(relay), 1u);
  EXPECT_EQ(relay.stats().unknown_frames, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    WrongLengths, RelayClosesOnFrames,
    ::testing::Values(
        ClosingFrame{"NotePreferredOfTwoBytes", Frame(0x07, 2), CloseReason::kFrameTooLarge},
        ClosingFrame{"PingOver1000Bytes", Frame(0x12, 1001), CloseReason::kFrameTooLarge},
        ClosingFrame{"SendPacketOver64KiB", Header(0x04, 32 + 65537), CloseReason::kFrameTooLarge},
        ClosingFrame{"WatchConnsWithAPayload", Frame(0x10, 1), CloseReason::kFrameTooLarge},
        ClosingFrame{"ClosePeerOf31Bytes", Frame(0x11, 31), CloseReason::kBadFrame},
        ClosingFrame{"ForwardPacketWithoutTheMeshKey", Frame(0x0a, 64), CloseReason::kNotAllowed}),
    [](const ::testing::TestParamInfo<ClosingFrame>& info) { return info.param.name; });

// derper notes activity for every frame it reads, skipped ones included, so a duplicate
// connection that sends only a frame of an unknown type becomes the active one.
TEST(RelaySkipsFramesDup, ASkippedFrameMakesADuplicateTheActiveOne) {
  TestRelay relay{TestRelayOptions{false, 1, false, nullptr}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  auto sender = ConnectClient(io, opts);
  opts.key = TestKey(2);
  auto first = ConnectClient(io, opts);
  auto second = ConnectClient(io, opts);  // the newest connection of a key is active
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().registry.dup_keys == 1; }));
  ASSERT_FALSE(Await(io, first->SendRaw(Frame(0x30, 3))));
  // One worker: once the skip is counted, the route change was made before anything the sender
  // sends next is read.
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().unknown_frames == 1; }));
  ASSERT_FALSE(Await(io, sender->SendPacket(first->public_key(), Payload("to the speaker"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io, *first).packet, Payload("to the speaker"));
}

// StalledReaderCheck against a real loopback connection whose reader stops reading, then reads
// again. Time is passed in, so the deadline is checked without waiting for it.
TEST(StalledReaderCheck, JudgesAPeerThatTakesNoBytesAndForgivesOneThatReads) {
  using Clock = relay::StalledReaderCheck::Clock;
  constexpr auto kTick = relay::StalledReaderCheck::kCheckInterval;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket reader(io);
  reader.open(asio::ip::tcp::v4());
  // Fixed and small, so that its window closes after a few KB (see FloodPingsWithoutReading).
  reader.set_option(asio::socket_base::receive_buffer_size(4096));
  reader.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket writer = acceptor.accept();
  writer.non_blocking(true);
  const int fd = writer.native_handle();
  const auto before = relay::ReadSendProgress(fd);
  ASSERT_TRUE(before) << "this kernel's TCP_INFO has no tcpi_bytes_acked";
  EXPECT_EQ(before->unacked_bytes, 0u);

  // A Pong the reader takes (its kernel acknowledges it) ends the watch at the next check.
  relay::StalledReaderCheck check;
  const std::array<std::byte, 13> pong{};
  writer.write_some(asio::buffer(pong));
  const auto t0 = Clock::now();
  check.AfterPongWrite(t0);
  ASSERT_TRUE(check.watching());
  ASSERT_TRUE(WaitUntil([&] { return relay::ReadSendProgress(fd)->unacked_bytes == 0; }));
  EXPECT_FALSE(check.Poll(fd, t0 + kTick / 2, 500ms)) << "not due yet";
  EXPECT_TRUE(check.watching());
  EXPECT_FALSE(check.Poll(fd, t0 + kTick, 500ms));
  EXPECT_FALSE(check.watching());

  // The reader stops reading: write until the kernel refuses more, bounded in count and time.
  const std::array<std::byte, 1000> chunk{};
  const auto give_up = Clock::now() + kRelayActsWithin;
  bool refused = false;
  for (int i = 0; i < 100'000 && !refused && Clock::now() < give_up; ++i) {
    asio::error_code ec;
    writer.write_some(asio::buffer(chunk), ec);
    if (ec && ec != asio::error::would_block) FAIL() << ec.message();
    refused = ec == asio::error::would_block;
  }
  ASSERT_TRUE(refused);

  // A Pong now is judged once a whole timeout passed without a byte taken: polled in made-up
  // time, 100 ms apart; a late acknowledgement of bytes in flight only restarts the count.
  const auto t1 = Clock::now();
  check.AfterPongWrite(t1);
  ASSERT_TRUE(check.watching());
  std::optional<Clock::duration> judged_after;
  for (int i = 1; i <= 60 && !judged_after; ++i) {
    if (check.Poll(fd, t1 + i * kTick, 500ms)) judged_after = i * kTick;
  }
  ASSERT_TRUE(judged_after) << "never judged stalled";
  EXPECT_GE(*judged_after, 500ms);
  relay::StalledReaderCheck no_deadline;
  no_deadline.AfterPongWrite(t1);
  for (int i = 1; i <= 60; ++i) EXPECT_FALSE(no_deadline.Poll(fd, t1 + i * kTick, 0ms));

  // The reader drains everything: every byte is taken and the watch ends.
  std::array<std::byte, 65536> sink;
  EXPECT_TRUE(WaitUntil(
      [&] {
        asio::error_code ec;
        while (reader.available(ec) > 0 && !ec) reader.read_some(asio::buffer(sink), ec);
        return relay::ReadSendProgress(fd)->unacked_bytes == 0;
      },
      kRelayActsWithin));
  EXPECT_FALSE(check.Poll(fd, t1 + 60s, 500ms));
  EXPECT_FALSE(check.watching());
}

// A client that sends Pings and never reads: every Pong the relay owes it stays in the relay's
// socket, so it is a non-reader like any other and --tcp-write-timeout closes it.
void FloodPingsWithoutReading(bool tls) {
  TestRelay relay{
      TestRelayOptions{tls, 2, false, [](relay::RelayConfig& c) { c.tcp_write_timeout = 500ms; }}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(2);
  auto a = ConnectClient(io, opts);
  opts.key = TestKey(3);
  auto b = ConnectClient(io, opts);
  // The flooder has its own io_context: its writes stall once the relay stops taking them, and
  // the test must keep running the others meanwhile.
  asio::io_context flood_io;
  opts.key = TestKey(1);
  auto flooder = ConnectClient(flood_io, opts);
  // A fixed receive buffer, so the flooder's window closes once a few Pongs wait in it: Linux
  // otherwise grows a non-reading socket's buffer up to tcp_rmem's maximum (32 MiB on some
  // hosts), and a client is a non-reader to TCP only once its window is closed.
  flooder->stream()->tcp().set_option(asio::socket_base::receive_buffer_size(4096));

  Bytes pings;
  for (std::uint8_t i = 0; i < 200; ++i) derp::AppendPing(pings, derp::PingData{std::byte{i}});
  std::uint64_t pings_sent = 0;
  bool flood_ended = false;
  asio::co_spawn(
      flood_io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 2'000'000; ++i) {  // ends early at the relay's close or ours
          const std::error_code ec = co_await flooder->SendRaw(pings);
          if (ec) break;
          pings_sent += 200;
        }
        flood_ended = true;
      },
      asio::detached);
  // Flood until the relay closes the flooder, or the generous bound.
  const auto run_flood_until = [&](auto done, std::chrono::milliseconds bound) {
    const auto give_up = std::chrono::steady_clock::now() + bound;
    while (!done() && std::chrono::steady_clock::now() < give_up) {
      flood_io.restart();
      flood_io.run_for(20ms);
    }
  };
  run_flood_until([&] { return flood_ended || TotalCloses(relay) > 0; }, kRelayActsWithin);

  EXPECT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kWriteTimeout) == 1; },
                        kRelayActsWithin))
      << "closes: write_timeout " << relay.stats().closed(CloseReason::kWriteTimeout)
      << ", io_error " << relay.stats().closed(CloseReason::kIoError) << " after " << pings_sent
      << " Pings";
  EXPECT_EQ(TotalCloses(relay), 1u) << "closed once, as write_timeout only";
  EXPECT_GE(relay.stats().write_timeouts, 1u);
  // One Pong pending at most, as derper: Pings that arrive meanwhile are dropped, not queued.
  EXPECT_LT(relay.stats().sent_pong, relay.stats().got_ping);
  EXPECT_EQ(Series(relay.server(), "derp_connections_closed_total{reason=\"write_timeout\"}"), "1");
  // Everyone else is served.
  ASSERT_FALSE(Await(io, a->SendPacket(b->public_key(), Payload("unaffected"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io, *b).packet, Payload("unaffected"));
  EXPECT_EQ(relay.stats().current_connections, 2);

  // End the flood: closing cancels its pending write, and the coroutine finishes here.
  flooder->Close();
  run_flood_until([&] { return flood_ended; }, 5s);
  EXPECT_TRUE(flood_ended);
}

TEST(RelayPingFlood, ANonReadingPingFlooderIsClosedByTheWriteTimeout) {
  FloodPingsWithoutReading(false);
}
TEST(RelayPingFlood, ANonReadingPingFlooderIsClosedByTheWriteTimeoutOverTls) {
  FloodPingsWithoutReading(true);
}

// Runs `f` on shard `index`'s thread and waits for it.
void OnShard(relay::Server& server, int index, const std::function<void(relay::Shard&)>& f) {
  std::promise<void> done;
  relay::Shard& shard = server.shard(index);
  asio::post(shard.io(), [&] {
    f(shard);
    done.set_value();
  });
  done.get_future().wait();
}

// A reader's wake-up queued ahead of a route's post (the shard thread descheduled meanwhile) once
// read a packet its client sent after the receiver had its ServerInfo, and dropped it as
// unknown_dest (seen in CI under load; derper's one locked map never does). Here the route is
// made and the packet routed in one handler on the sender's shard, before that shard's loop can
// run the route's post: the packet must arrive all the same.
TEST(RelayRoutes, APacketFindsARouteMadeJustBeforeItIsRouted) {
  TestRelay relay{TestRelayOptions{false, 2, false, nullptr}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(50);
  auto sender = ConnectClient(io, opts);
  opts.key = TestKey(51);
  auto receiver = ConnectClient(io, opts);
  relay::Server& server = relay.server();
  struct Found {
    int shard = -1;
    relay::ClientConn* conn = nullptr;
  };
  Found from;
  Found to;
  for (int i = 0; i < server.shard_count(); ++i) {
    OnShard(server, i, [&](relay::Shard& shard) {
      shard.ForEachConn([&](relay::ClientConn& conn) {
        if (conn.key() == sender->public_key()) from = Found{i, &conn};
        if (conn.key() == receiver->public_key()) to = Found{i, &conn};
      });
    });
  }
  ASSERT_NE(from.conn, nullptr);
  ASSERT_NE(to.conn, nullptr);
  // A second key for the receiver's connection, made known and used at once.
  const derp::PublicKey alias = TestKey(52).Public();
  const std::uint64_t to_id = to.conn->id();
  OnShard(server, from.shard, [&](relay::Shard& shard) {
    derp::PeerPresent presence;
    presence.key = alias;
    server.registry().Register(presence, to.shard, to_id);
    relay::Packet packet;
    packet.src = sender->public_key();
    packet.payload = Payload("routed at once");  // Enqueue stamps `enqueued`
    shard.RoutePacket(alias, std::move(packet), *from.conn);
    shard.FlushOutbox();
    shard.FlushWrites();
  });
  const auto got = RecvUntil<RecvPacketMessage>(io, *receiver);
  EXPECT_EQ(got.src, sender->public_key());
  EXPECT_EQ(got.packet, Payload("routed at once"));
  EXPECT_EQ(
      relay.stats().packets_dropped[static_cast<std::size_t>(relay::DropReason::kUnknownDest)], 0u);
  server.registry().Unregister(alias, to_id);
}

}  // namespace
}  // namespace derpkit::testing
