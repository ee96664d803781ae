// Replays the exact bytes real Tailscale v1.36.2 clients sent to the real derper
// (../shared/testdata/derp) into our relay, running with the captured derper's own key, and
// compares what comes back with what derper answered: byte for byte where the protocol is
// deterministic (101 head, ServerKey, RecvPacket, Pong, WebSocket framing of those), by content
// where it is not (ServerInfo's random nonce), and by the documented difference where current
// derper behaves differently from v1.36.2 (PeerGone NotHere).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"
#include "lib/http/head.h"
#include "lib/http/websocket.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

struct Frame {
  derp::FrameType type;
  std::string raw;  // header + payload
  ByteSpan payload() const { return AsBytes(raw).subspan(derp::kFrameHeaderSize); }
};

Frame ReadFrame(RawPeer& peer) {
  Frame f;
  std::string head = peer.ReadExactly(derp::kFrameHeaderSize);
  auto hdr = derp::ParseFrameHeader(AsBytes(head), 1 << 20);
  EXPECT_TRUE(hdr.has_value());
  f.type = hdr ? hdr->type : derp::FrameType{0};
  f.raw = head + (hdr ? peer.ReadExactly(hdr->length) : "");
  return f;
}

// Splits a capture into its frames (after `skip` bytes of HTTP).
std::vector<std::string> CapturedFrames(const std::string& bytes, std::size_t skip) {
  std::vector<std::string> out;
  for (std::size_t at = skip; at < bytes.size();) {
    auto hdr = derp::ParseFrameHeader(AsBytes(bytes).subspan(at), 1 << 20);
    if (!hdr) break;
    out.push_back(bytes.substr(at, derp::kFrameHeaderSize + hdr->length));
    at += derp::kFrameHeaderSize + hdr->length;
  }
  return out;
}

class CaptureReplay : public ::testing::Test {
 protected:
  TestRelay relay_{TestRelayOptions{false, 1, false, nullptr, CapturedKey("server")}};
  asio::io_context io_;
};

TEST_F(CaptureReplay, PlainClientsAAndBGetDerpersBytes) {
  const std::string a_c2s = ReadTestdata("derp/plain/A.c2s.bin");
  const std::string a_s2c = ReadTestdata("derp/plain/A.s2c.bin");
  const std::string b_c2s = ReadTestdata("derp/plain/B.c2s.bin");
  RawPeer a(io_, relay_.port());
  a.Send(a_c2s.substr(0, 228));  // request, ClientInfo, NotePreferred
  // Our 101 head and ServerKey are derper's, byte for byte (same key, same header order).
  EXPECT_EQ(a.ReadExactly(217), a_s2c.substr(0, 217));
  Frame info = ReadFrame(a);
  ASSERT_EQ(info.type, derp::FrameType::kServerInfo);
  auto opened =
      derp::OpenServerInfo(info.payload(), CapturedKey("A"), relay_.server().public_key());
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->version, 2);

  RawPeer b(io_, relay_.port());
  b.Send(b_c2s);  // request, ClientInfo, SendPacket to A
  EXPECT_EQ(b.ReadExactly(172), a_s2c.substr(0, 172)) << "the same 101 head";
  EXPECT_EQ(ReadFrame(b).type, derp::FrameType::kServerKey);
  EXPECT_EQ(ReadFrame(b).type, derp::FrameType::kServerInfo);
  // A receives B's packet exactly as derper delivered it.
  EXPECT_EQ(ReadFrame(a).raw, a_s2c.substr(275, 327 - 275));

  a.Send(a_c2s.substr(228));  // SendPacket to B, Ping, disco packet to unknown Z
  const std::string b_s2c = ReadTestdata("derp/plain/B.s2c.bin");
  EXPECT_EQ(ReadFrame(b).raw, CapturedFrames(b_s2c, 217).back()) << "RecvPacket from A";
  // The Pong is derper's byte for byte. Current derper (v1.40+) also answers a disco packet for
  // an unknown key with PeerGone NotHere, which v1.36.2 in the capture did not; the two may
  // leave in either order.
  Frame first = ReadFrame(a);
  Frame second = ReadFrame(a);
  if (first.type == derp::FrameType::kPeerGone) std::swap(first, second);
  EXPECT_EQ(first.raw, a_s2c.substr(327, 340 - 327)) << "Pong";
  ASSERT_EQ(second.type, derp::FrameType::kPeerGone);
  auto pg = derp::ParsePeerGone(second.payload());
  ASSERT_TRUE(pg.has_value());
  EXPECT_EQ(pg->reason, derp::PeerGoneReason::kNotHere);
  EXPECT_EQ(pg->key.ToHex(), "5d1abd852ed2212cd0cebfbcee8e26af80dad353c57179e67068a8abd09a2b77");
}

TEST_F(CaptureReplay, FastStartClientFGetsNoHttpResponse) {
  const std::string f_c2s = ReadTestdata("derp/faststart/F.c2s.bin");
  const std::string f_s2c = ReadTestdata("derp/faststart/F.s2c.bin");
  RawPeer f(io_, relay_.port());
  f.Send(f_c2s);
  // No HTTP at all: ServerKey first, exactly derper's, then ServerInfo, RecvPacket, Pong.
  EXPECT_EQ(ReadFrame(f).raw, f_s2c.substr(0, 45));
  EXPECT_EQ(ReadFrame(f).type, derp::FrameType::kServerInfo);
  EXPECT_EQ(ReadFrame(f).raw, f_s2c.substr(103, 168 - 103));
  EXPECT_EQ(ReadFrame(f).raw, f_s2c.substr(168));
}

TEST_F(CaptureReplay, WebSocketClientWGetsDerpersFrames) {
  const std::string w_c2s = ReadTestdata("derp/websocket/W.c2s.bin");
  const std::string w_s2c = ReadTestdata("derp/websocket/W.s2c.bin");
  RawPeer w(io_, relay_.port());
  w.Send(w_c2s);
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) head += w.ReadExactly(1);
  auto ours = http::ParseResponseHead(AsBytes(head));
  auto theirs = http::ParseResponseHead(AsBytes(w_s2c));
  ASSERT_TRUE(ours.has_value());
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(ours->status, 101);
  EXPECT_EQ(*ours->Find("Sec-WebSocket-Accept"), *theirs->Find("Sec-WebSocket-Accept"));
  EXPECT_EQ(*ours->Find("Sec-WebSocket-Protocol"), "derp");
  EXPECT_EQ(ours->Find("Sec-WebSocket-Extensions"), nullptr) << "no permessage-deflate";

  // Unwrap our binary messages into the DERP stream.
  std::string derp_stream;
  const std::string expected = ReadTestdata("derp/websocket/W.s2c.derp.bin");
  while (derp_stream.size() < expected.size()) {
    std::string h = w.ReadExactly(2);
    const std::size_t len7 = static_cast<unsigned char>(h[1]) & 0x7f;
    if (len7 == 126) h += w.ReadExactly(2);
    if (len7 == 127) h += w.ReadExactly(8);
    auto hdr = http::ParseWsFrameHeader(AsBytes(h), 1 << 20, false);
    ASSERT_TRUE(hdr.has_value());
    ASSERT_EQ(hdr->opcode, http::WsOpcode::kBinary);
    derp_stream += w.ReadExactly(hdr->payload_size);
  }
  ASSERT_EQ(derp_stream.size(), expected.size());
  // ServerKey, RecvPacket and Pong are byte-identical; ServerInfo differs only by its nonce.
  auto ours_frames = CapturedFrames(derp_stream, 0);
  auto their_frames = CapturedFrames(expected, 0);
  ASSERT_EQ(ours_frames.size(), 4u);
  ASSERT_EQ(their_frames.size(), 4u);
  EXPECT_EQ(ours_frames[0], their_frames[0]);
  EXPECT_EQ(ours_frames[1].size(), their_frames[1].size());
  EXPECT_EQ(ours_frames[2], their_frames[2]);
  EXPECT_EQ(ours_frames[3], their_frames[3]);
  EXPECT_EQ(relay_.stats().websocket_accepts, 1u);
}

}  // namespace
}  // namespace derpkit::testing
