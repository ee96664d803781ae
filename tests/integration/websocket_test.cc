// DERP inside WebSocket binary messages (browser and restricted clients): a WebSocket client and
// a plain client exchange packets through the relay; broken framing ends only that connection.
#include "lib/http/websocket.h"

#include <gtest/gtest.h>

#include "lib/net/ws_stream.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::PongMessage;
using derpclient::RecvPacketMessage;
using relay::CloseReason;

class WebSocket : public ::testing::TestWithParam<bool> {
 protected:
  TestRelay relay_{TestRelayOptions{GetParam(), 2, false, nullptr}};
  asio::io_context io_;
};

TEST_P(WebSocket, WebSocketClientAndPlainClientExchangePackets) {
  auto opts = relay_.ClientOptionsFor();
  opts.key = TestKey(1);
  opts.websocket = true;
  auto ws = ConnectClient(io_, opts);
  EXPECT_EQ(std::string(ws->stream()->kind()), "websocket");
  EXPECT_FALSE(ws->used_fast_start());
  opts.key = TestKey(2);
  opts.websocket = false;
  auto plain = ConnectClient(io_, opts);

  ASSERT_FALSE(Await(io_, ws->SendPacket(plain->public_key(), Payload("from websocket"))));
  auto got = RecvUntil<RecvPacketMessage>(io_, *plain);
  EXPECT_EQ(got.src, ws->public_key());
  EXPECT_EQ(got.packet, Payload("from websocket"));

  const Bytes big(60000, std::byte{0x5a});  // spans several reads on the relay side
  ASSERT_FALSE(Await(io_, plain->SendPacket(ws->public_key(), big)));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *ws).packet, big);

  ASSERT_FALSE(Await(io_, ws->SendPing({std::byte{9}})));
  EXPECT_EQ(RecvUntil<PongMessage>(io_, *ws).data[0], std::byte{9});
  EXPECT_EQ(relay_.stats().websocket_accepts, 1u);
  EXPECT_EQ(relay_.stats().derp_accepts, 2u);
}

TEST_P(WebSocket, MalformedFramingClosesOnlyThatConnection) {
  auto opts = relay_.ClientOptionsFor();
  opts.key = TestKey(1);
  opts.websocket = true;
  auto ws = ConnectClient(io_, opts);
  opts.key = TestKey(2);
  auto other = ConnectClient(io_, opts);
  // An unmasked client frame violates RFC 6455 §5.1 and must end the connection.
  Bytes frame;
  http::AppendWsFrameHeader(frame, true, http::WsOpcode::kBinary, 5, nullptr);
  frame.resize(frame.size() + 5, std::byte{0});
  ASSERT_FALSE(Await(io_, static_cast<net::WsStream*>(ws->stream())->WriteRawForTest(frame)));
  EXPECT_FALSE(Await(io_, ws->Recv()).has_value());
  EXPECT_TRUE(WaitUntil([&] { return relay_.stats().closed(CloseReason::kBadFrame) == 1; }));

  opts.key = TestKey(3);
  auto third = ConnectClient(io_, opts);
  ASSERT_FALSE(Await(io_, third->SendPacket(other->public_key(), Payload("unaffected"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *other).packet, Payload("unaffected"));
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, WebSocket, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

}  // namespace
}  // namespace derpkit::testing
