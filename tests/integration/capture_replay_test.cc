// Replays the exact bytes real Tailscale v1.36.2 clients sent to the real derper
// (../shared/testdata/derp) into our relay, running with the captured derper's own key, and
// compares what comes back with what derper answered: byte for byte where the protocol is
// deterministic (101 head, ServerKey, RecvPacket, Pong, WebSocket framing of those), by content
// where it is not (ServerInfo's random nonce), and by the documented difference where current
// derper behaves differently from v1.36.2 (PeerGone NotHere). Also the two /debug/ answers whose
// Route() result depends on the listener (http/debug-index and http/debug-xff-denied): the exact
// captured requests sent to a real relay, the responses compared with derper's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"
#include "lib/http/head.h"
#include "lib/http/websocket.h"
#include "relay/server.h"
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
  const std::string head = w.ReadHead();  // stops at EOF and at a deadline, failing the test
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
  // One WebSocket message per DERP frame (4 in the capture); a few more are allowed before the
  // loop gives up, so a relay that sends too little ends the test instead of spinning.
  for (int messages = 0; messages < 16 && derp_stream.size() < expected.size(); ++messages) {
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

// --- /debug/ --------------------------------------------------------------------------------

// Sends the captured request http/NAME.req to `port` and returns everything the relay wrote
// before it closed the connection (the captured requests all say "Connection: close").
std::string ReplayHttp(asio::io_context& io, std::uint16_t port, const std::string& name) {
  RawPeer peer(io, port);
  peer.Send(ReadTestdata("http/" + name + ".req"));
  auto [response, closed] = peer.ReadUntilClosed(10000ms);
  EXPECT_TRUE(closed) << name << ": the relay did not close after Connection: close";
  return response;
}

// Replaces the value of the header line `name: ...` in a response head with `<name>`.
std::string BlankHeader(std::string response, const std::string& name) {
  const std::regex line("\r\n" + name + ": [^\r]*\r\n");
  return std::regex_replace(response, line, "\r\n" + name + ": <" + name + ">\r\n",
                            std::regex_constants::format_first_only);
}

// Replaces the value of the debug page item `<li><b>key:</b> value</li>` with `<key>`, and
// returns the value it had.
std::string BlankItem(std::string& page, const std::string& key) {
  const std::string open = "<li><b>" + key + ":</b> ";
  const std::size_t at = page.find(open);
  if (at == std::string::npos) return "<no " + key + " item>";
  const std::size_t value = at + open.size();
  const std::size_t end = page.find("</li>", value);
  const std::string was = page.substr(value, end - value);
  page.replace(value, end - value, "<" + key + ">");
  return was;
}

TEST(CaptureReplayDebug, XForwardedForIsRefusedWithDerpersBytes) {
  TestRelay relay;
  asio::io_context io;
  EXPECT_EQ(BlankHeader(ReplayHttp(io, relay.port(), "debug-xff-denied"), "Date"),
            BlankHeader(ReadTestdata("http/debug-xff-denied.resp"), "Date"));
}

// derper's /debug/ index and ours, byte for byte once the parts that describe the running
// process rather than the page are blanked in both: the Date and Content-Length values, the
// program in the title (derper / derp-relay), and the Uptime, Version and Machine items (each is
// checked first). The TLS hostname (derper's default, given to ours too) and the mesh key flag
// (both run with the captures' mesh key) are compared as they are. Two documented differences are
// applied to the capture: the browser security headers current derper adds to /debug/
// (derp-protocol.md §3.9, with inline styles allowed), and the four links to pages this relay does
// not have (pprof, two goroutine dumps, /debug/gc).
TEST(CaptureReplayDebug, IndexIsDerpersPageWithTheProcessDetailsBlanked) {
  const std::string mesh_key = std::string(DERPKIT_TESTDATA_DIR) + "/keys/mesh.key";
  TestRelay relay{TestRelayOptions{false, 1, false, [&](relay::RelayConfig& c) {
                                     c.mesh_psk_file = mesh_key;
                                     c.hostname = "derp.tailscale.com";  // derper's default
                                   }}};
  asio::io_context io;
  std::string ours = ReplayHttp(io, relay.port(), "debug-index");
  std::string theirs = ReadTestdata("http/debug-index.resp");

  const std::size_t body_at = ours.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos) << ours;
  const std::string body = ours.substr(body_at + 4);
  EXPECT_NE(ours.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos)
      << "Content-Length is the body's length, " << body.size();
  EXPECT_TRUE(
      std::regex_match(BlankItem(ours, "Uptime"), std::regex("([1-9][0-9]*h)?([0-9]+m)?[0-9]+s")))
      << "Go's duration format, whole seconds";
  EXPECT_EQ(BlankItem(ours, "Version"), "derpkit " + std::string(relay::kDerpkitVersion));
  std::array<char, 256> host{};
  ASSERT_EQ(::gethostname(host.data(), host.size() - 1), 0);
  EXPECT_EQ(BlankItem(ours, "Machine"), host.data());
  EXPECT_NE(BlankItem(theirs, "Uptime"), "<no Uptime item>");
  EXPECT_NE(BlankItem(theirs, "Version"), "<no Version item>");
  EXPECT_NE(BlankItem(theirs, "Machine"), "<no Machine item>");

  for (std::string* page : {&ours, &theirs}) {
    *page = BlankHeader(BlankHeader(*page, "Date"), "Content-Length");
    *page =
        std::regex_replace(*page, std::regex("<h1>[a-z-]+ debug</h1>"), "<h1><program> debug</h1>");
  }
  for (const std::string url : {"/debug/pprof/", "/debug/pprof/goroutine?debug=1",
                                "/debug/pprof/goroutine?debug=2", "/debug/gc"}) {
    const std::size_t at = theirs.find("<li><a href=\"" + url + "\">");
    ASSERT_NE(at, std::string::npos) << url;
    theirs.erase(at, theirs.find("</li>", at) + 5 - at);
  }
  const std::string security_headers =
      "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
      "base-uri 'self'; block-all-mixed-content; object-src 'none'; style-src 'self' "
      "'unsafe-inline'\r\n"
      "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n"
      "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n";
  theirs.insert(theirs.find("\r\n") + 2, security_headers);
  EXPECT_EQ(ours, theirs);
}

}  // namespace
}  // namespace derpkit::testing
