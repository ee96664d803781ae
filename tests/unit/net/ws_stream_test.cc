#include "lib/net/ws_stream.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/http/websocket.h"
#include "lib/util/bytes.h"
#include "tests/unit/net/stream_test_util.h"

// GCC 12 misreports asio's coroutine frame operator new/delete pair as mismatched (GCC PR 109224).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace derpkit::net {
namespace {

using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using Role = WsStream::Role;
using namespace derpkit::net::stream_test;

Bytes ReadTestdata(const std::string& relative) {
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/" + relative, std::ios::binary);
  EXPECT_TRUE(in.good()) << relative;
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Bytes(AsBytes(s).begin(), AsBytes(s).end());
}

Bytes Slice(const Bytes& b, std::size_t from, std::size_t to) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(to));
}

// A client-to-server frame as a browser would send it, masked with a fixed mask.
Bytes MaskedFrame(bool fin, http::WsOpcode op, ByteSpan payload) {
  const http::WsMask mask = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};
  Bytes out;
  http::AppendWsFrameHeader(out, fin, op, payload.size(), &mask);
  const std::size_t at = out.size();
  AppendBytes(out, payload);
  http::ApplyWsMask(std::span(out).subspan(at), mask, 0);
  return out;
}

Bytes UnmaskedFrame(bool fin, http::WsOpcode op, ByteSpan payload) {
  Bytes out;
  http::AppendWsFrameHeader(out, fin, op, payload.size(), nullptr);
  AppendBytes(out, payload);
  return out;
}

WsStream MakeWs(tcp::socket socket, Role role, Bytes read_ahead = {}) {
  return WsStream(std::make_unique<TcpStream>(std::move(socket)), role, std::move(read_ahead));
}

asio::awaitable<std::error_code> ReadError(Stream& s) {
  std::array<std::byte, 16> buf;
  const IoResult r = co_await s.ReadSome(buf);
  EXPECT_EQ(r.bytes, 0u);
  co_return r.ec;
}

asio::awaitable<void> RawWrite(tcp::socket& s, ByteSpan data) {
  co_await asio::async_write(s, asio::buffer(data.data(), data.size()), use_awaitable);
}

asio::awaitable<Bytes> RawRead(tcp::socket& s, std::size_t size) {
  Bytes out(size);
  co_await asio::async_read(s, asio::buffer(out), use_awaitable);
  co_return out;
}

struct RawFrame {
  http::WsFrameHeader header;
  Bytes payload;  // unmasked
};

// Reads one whole frame from a raw socket, as the side that expects (un)masked frames.
asio::awaitable<RawFrame> RawReadFrame(tcp::socket& s, bool expect_masked) {
  Bytes head = co_await RawRead(s, 2);
  for (;;) {
    const auto h = http::ParseWsFrameHeader(head, std::uint64_t{1} << 40, expect_masked);
    if (h.has_value()) {
      // Not `RawFrame f{*h, co_await ...}`: GCC 12 destroys that temporary too early.
      RawFrame f;
      f.header = *h;
      f.payload = co_await RawRead(s, static_cast<std::size_t>(h->payload_size));
      if (h->masked) http::ApplyWsMask(f.payload, h->mask, 0);
      co_return f;
    }
    if (h.error() != http::WsError::kShort) {
      ADD_FAILURE() << http::Describe(h.error());
      co_return RawFrame{};
    }
    AppendBytes(head, co_await RawRead(s, 1));
  }
}

// Expects the next bytes on `s` to be a Close frame with `code` (and no reason).
asio::awaitable<void> ExpectRawClose(tcp::socket& s, bool expect_masked, std::uint16_t code) {
  const RawFrame f = co_await RawReadFrame(s, expect_masked);
  EXPECT_EQ(f.header.opcode, http::WsOpcode::kClose);
  const auto close = http::ParseWsClosePayload(f.payload);
  EXPECT_TRUE(close.has_value());
  if (close.has_value()) {
    EXPECT_EQ(close->code, code);
  }
}

class WsStreamTest : public ::testing::Test {
 protected:
  // Runs `body` on the test's io_context, bounded by a 5 s steady_timer. Exceptions from the body
  // (asio errors thrown by use_awaitable) fail the test.
  void Run(asio::awaitable<void> body) {
    auto bounded = [](asio::awaitable<void> body) -> asio::awaitable<bool> {
      asio::steady_timer deadline(co_await asio::this_coro::executor, 5s);
      auto first = co_await (std::move(body) || deadline.async_wait(use_awaitable));
      co_return first.index() == 0;
    };
    std::future<bool> done = asio::co_spawn(io_, bounded(std::move(body)), asio::use_future);
    io_.run();
    io_.restart();
    ASSERT_EQ(done.wait_for(0s), std::future_status::ready);
    EXPECT_TRUE(done.get()) << "timed out after 5 s";
  }

  asio::io_context io_;
};

// ---------------------------------------------------------------------------------------------
// The Tailscale capture (derp/websocket, client W): 345-byte request head, 159-byte 101 head.

TEST_F(WsStreamTest, ServerReadsTheCapturedClientFramesStartingInTheReadAhead) {
  Run([]() -> asio::awaitable<void> {
    const Bytes wire = ReadTestdata("derp/websocket/W.c2s.bin");
    const Bytes derp = ReadTestdata("derp/websocket/W.c2s.derp.bin");
    SocketPair p = co_await ConnectedSockets();
    // The HTTP reader got the head plus 100 bytes of the first (116-byte) frame.
    WsStream server = MakeWs(std::move(p.server), Role::kServer, Slice(wire, 345, 445));
    co_await RawWrite(p.client, Slice(wire, 445, 500));
    co_await RawWrite(p.client, Slice(wire, 500, wire.size()));
    EXPECT_EQ(co_await ReadExactly(server, derp.size(), 7), derp);
    // The Go client ends with a bare TCP close, no Close frame.
    p.client.close();
    EXPECT_EQ(co_await ReadError(server), asio::error::eof);
    EXPECT_FALSE(server.peer_close_code().has_value());
  }());
}

TEST_F(WsStreamTest, ServerWritesTheCapturedServerFramesByteForByte) {
  Run([]() -> asio::awaitable<void> {
    const Bytes wire = ReadTestdata("derp/websocket/W.s2c.bin");
    const Bytes derp = ReadTestdata("derp/websocket/W.s2c.derp.bin");
    SocketPair p = co_await ConnectedSockets();
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    EXPECT_EQ(server.kind(), std::string("websocket"));
    EXPECT_FALSE(server.is_tls());
    EXPECT_EQ(server.tcp().remote_endpoint(), p.client.local_endpoint());

    const std::size_t bounds[] = {0, 45, 103, 170, 183};  // one DERP frame per WriteAll
    const IoResult empty = co_await server.WriteAll({});
    EXPECT_FALSE(empty.ec);
    EXPECT_EQ(empty.bytes, 0u);  // and nothing on the wire, as the byte comparison shows
    for (std::size_t i = 0; i + 1 < std::size(bounds); ++i) {
      // DERP writes a frame as its 5-byte header and its payload: a gather of two buffers.
      const asio::const_buffer bufs[] = {
          asio::buffer(derp.data() + bounds[i], 5),
          asio::buffer(derp.data() + bounds[i] + 5, bounds[i + 1] - bounds[i] - 5)};
      const IoResult r = co_await server.WriteAll(bufs);
      EXPECT_FALSE(r.ec);
      EXPECT_EQ(r.bytes, bounds[i + 1] - bounds[i]);
    }
    EXPECT_EQ(co_await RawRead(p.client, wire.size() - 159), Slice(wire, 159, wire.size()));
  }());
}

TEST_F(WsStreamTest, ClientReadsTheCapturedServerFrames) {
  Run([]() -> asio::awaitable<void> {
    const Bytes wire = ReadTestdata("derp/websocket/W.s2c.bin");
    const Bytes derp = ReadTestdata("derp/websocket/W.s2c.derp.bin");
    SocketPair p = co_await ConnectedSockets();
    WsStream client = MakeWs(std::move(p.client), Role::kClient, Slice(wire, 159, 170));
    co_await RawWrite(p.server, Slice(wire, 170, wire.size()));
    EXPECT_EQ(co_await ReadExactly(client, derp.size(), 1000), derp);
  }());
}

TEST_F(WsStreamTest, ClientWritesOneMaskedBinaryFramePerWriteWithFreshMasks) {
  Run([]() -> asio::awaitable<void> {
    const Bytes derp = ReadTestdata("derp/websocket/W.c2s.derp.bin");
    SocketPair p = co_await ConnectedSockets();
    WsStream client = MakeWs(std::move(p.client), Role::kClient);
    const std::size_t bounds[] = {0, 110, 116, 183, 196};
    for (std::size_t i = 0; i + 1 < std::size(bounds); ++i) {
      const IoResult r = co_await WriteBytes(client, Slice(derp, bounds[i], bounds[i + 1]));
      EXPECT_FALSE(r.ec);
      EXPECT_EQ(r.bytes, bounds[i + 1] - bounds[i]);
    }
    std::vector<http::WsMask> masks;
    for (std::size_t i = 0; i + 1 < std::size(bounds); ++i) {
      const RawFrame f = co_await RawReadFrame(p.server, /*expect_masked=*/true);
      EXPECT_TRUE(f.header.fin);
      EXPECT_EQ(f.header.opcode, http::WsOpcode::kBinary);
      EXPECT_EQ(f.payload, Slice(derp, bounds[i], bounds[i + 1]));
      masks.push_back(f.header.mask);
    }
    // Four random masks all equal would be a broken mask source (chance 2^-96 otherwise).
    EXPECT_FALSE(masks[0] == masks[1] && masks[1] == masks[2] && masks[2] == masks[3]);
  }());
}

// ---------------------------------------------------------------------------------------------
// Two WsStreams talking to each other.

TEST_F(WsStreamTest, ServerAndClientExchangeDataLargerThanOneReadBothWays) {
  Run([]() -> asio::awaitable<void> {
    SocketPair p = co_await ConnectedSockets();
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    WsStream client = MakeWs(std::move(p.client), Role::kClient);

    const Bytes up = Pattern(300 * 1024, 1);  // one frame, bigger than the socket buffers
    auto [wrote_up, got_up] =
        co_await (WriteBytes(client, up) && ReadExactly(server, up.size(), 4096));
    EXPECT_FALSE(wrote_up.ec);
    EXPECT_EQ(got_up, up);

    const Bytes down = Pattern(200 * 1024 + 3, 2);
    auto [wrote_down, got_down] =
        co_await (WriteBytes(server, down) && ReadExactly(client, down.size(), 64 * 1024));
    EXPECT_FALSE(wrote_down.ec);
    EXPECT_EQ(got_down, down);

    // Small writes in a row read as one stream, whatever the read size.
    for (const char* word : {"ping", "-", "pong"})
      EXPECT_FALSE((co_await WriteBytes(client, AsBytes(word))).ec);
    EXPECT_EQ(AsText(co_await ReadExactly(server, 9, 3)), "ping-pong");
  }());
}

TEST_F(WsStreamTest, CloseHandshakeEndsBothReadersWithEofAndStopsWrites) {
  Run([]() -> asio::awaitable<void> {
    SocketPair p = co_await ConnectedSockets();
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    WsStream client = MakeWs(std::move(p.client), Role::kClient);
    EXPECT_FALSE((co_await WriteBytes(client, AsBytes("last words"))).ec);
    co_await client.ShutdownGracefully();  // sends Close 1000

    EXPECT_EQ(AsText(co_await ReadExactly(server, 10, 64)), "last words");
    EXPECT_EQ(co_await ReadError(server), asio::error::eof);  // and answers the Close
    EXPECT_EQ(server.peer_close_code(), std::optional<std::uint16_t>(http::kWsCloseNormal));
    EXPECT_EQ(co_await ReadError(server), asio::error::eof);  // sticky

    EXPECT_EQ(co_await ReadError(client), asio::error::eof);  // the answer
    EXPECT_EQ(client.peer_close_code(), std::optional<std::uint16_t>(http::kWsCloseNormal));

    EXPECT_EQ((co_await WriteBytes(server, AsBytes("late"))).ec, asio::error::broken_pipe);
    EXPECT_EQ((co_await WriteBytes(client, AsBytes("late"))).ec, asio::error::broken_pipe);
    EXPECT_TRUE(server.protocol_error().empty());
    server.Close();
    client.Close();
  }());
}

// ---------------------------------------------------------------------------------------------
// A raw peer: fragments, control frames, protocol errors.

TEST_F(WsStreamTest, FragmentsAndFramesWithAPingBetweenReadAsOneStream) {
  Run([]() -> asio::awaitable<void> {
    using http::WsOpcode;
    SocketPair p = co_await ConnectedSockets();
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    Bytes in;
    AppendBytes(in, MaskedFrame(false, WsOpcode::kBinary, AsBytes("abc")));
    AppendBytes(in, MaskedFrame(true, WsOpcode::kPing, AsBytes("p1")));  // between fragments
    AppendBytes(in, MaskedFrame(false, WsOpcode::kContinuation, AsBytes("def")));
    AppendBytes(in, MaskedFrame(true, WsOpcode::kPong, AsBytes("unsolicited")));  // ignored
    AppendBytes(in, MaskedFrame(true, WsOpcode::kContinuation, AsBytes("gh")));
    AppendBytes(in, MaskedFrame(true, WsOpcode::kBinary, {}));  // empty: yields nothing
    AppendBytes(in, MaskedFrame(true, WsOpcode::kBinary, AsBytes("ij")));
    co_await RawWrite(p.client, in);
    EXPECT_EQ(AsText(co_await ReadExactly(server, 10, 64)), "abcdefghij");
    // The Pong echoes the Ping's payload, unmasked, byte for byte.
    EXPECT_EQ(co_await RawRead(p.client, 4), BytesFromHex("8a 02 70 31"));
  }());
}

TEST_F(WsStreamTest, ClientAnswersAServerPingWithAMaskedPong) {
  Run([]() -> asio::awaitable<void> {
    using http::WsOpcode;
    SocketPair p = co_await ConnectedSockets();
    WsStream client = MakeWs(std::move(p.client), Role::kClient);
    Bytes in = UnmaskedFrame(true, WsOpcode::kPing, AsBytes("1234"));
    AppendBytes(in, UnmaskedFrame(true, WsOpcode::kBinary, AsBytes("data")));
    co_await RawWrite(p.server, in);
    EXPECT_EQ(AsText(co_await ReadExactly(client, 4, 64)), "data");
    const RawFrame pong = co_await RawReadFrame(p.server, /*expect_masked=*/true);
    EXPECT_EQ(pong.header.opcode, WsOpcode::kPong);
    EXPECT_EQ(AsText(pong.payload), "1234");
  }());
}

TEST_F(WsStreamTest, PeerCloseIsAnsweredWithItsCodeAndThenEof) {
  Run([]() -> asio::awaitable<void> {
    SocketPair p = co_await ConnectedSockets();
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    co_await RawWrite(p.client, MaskedFrame(true, http::WsOpcode::kBinary, AsBytes("x")));
    co_await RawWrite(p.client,
                      MaskedFrame(true, http::WsOpcode::kClose, BytesFromHex("03e9 627965")));
    EXPECT_EQ(AsText(co_await ReadExactly(server, 1, 64)), "x");
    EXPECT_EQ(co_await ReadError(server), asio::error::eof);
    EXPECT_EQ(server.peer_close_code(), std::optional<std::uint16_t>(http::kWsCloseGoingAway));
    EXPECT_EQ(co_await RawRead(p.client, 4), BytesFromHex("88 02 03 e9"));
  }());
}

struct BadInput {
  const char* name;
  Role role;
  Bytes wire;
  std::uint16_t close_code;  // what the stream answers with
};

TEST_F(WsStreamTest, ProtocolViolationsFailTheReadAndAreAnsweredWithClose) {
  using http::WsOpcode;
  Bytes data_then_binary = MaskedFrame(false, WsOpcode::kBinary, AsBytes("a"));
  AppendBytes(data_then_binary, MaskedFrame(true, WsOpcode::kBinary, AsBytes("b")));
  const BadInput cases[] = {
      {"unmasked frame from a client", Role::kServer, BytesFromHex("82 03 616263"), 1002},
      {"text frame", Role::kServer, MaskedFrame(true, WsOpcode::kText, AsBytes("hi")), 1003},
      {"masked frame from a server", Role::kClient,
       MaskedFrame(true, WsOpcode::kBinary, AsBytes("x")), 1002},
      {"text frame to a client", Role::kClient, UnmaskedFrame(true, WsOpcode::kText, AsBytes("x")),
       1003},
      {"continuation without a message", Role::kServer,
       MaskedFrame(true, WsOpcode::kContinuation, AsBytes("x")), 1002},
      {"new message inside a fragmented one", Role::kServer, data_then_binary, 1002},
      {"reserved opcode", Role::kServer, BytesFromHex("83 80 00000000"), 1002},
      {"bad close code", Role::kServer, MaskedFrame(true, WsOpcode::kClose, BytesFromHex("03ed")),
       1002},
      // Only the 14-byte header of a 2 MiB frame: refused without waiting for the payload.
      {"oversized frame", Role::kServer, BytesFromHex("82 ff 0000000000200000 01020304"), 1009},
  };
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.name);
    Run([](const BadInput& c) -> asio::awaitable<void> {
      SocketPair p = co_await ConnectedSockets();
      const bool is_server = c.role == Role::kServer;
      tcp::socket& raw = is_server ? p.client : p.server;
      WsStream ws = MakeWs(std::move(is_server ? p.server : p.client), c.role);
      co_await RawWrite(raw, c.wire);
      std::array<std::byte, 64> buf;
      IoResult r = co_await ws.ReadSome(buf);
      // "new message inside a fragmented one" delivers its first fragment before failing.
      if (!r.ec) r = co_await ws.ReadSome(buf);
      EXPECT_EQ(r.ec, std::make_error_code(std::errc::protocol_error));
      EXPECT_FALSE(ws.protocol_error().empty());
      EXPECT_EQ(co_await ReadError(ws), std::make_error_code(std::errc::protocol_error));
      co_await ExpectRawClose(raw, /*expect_masked=*/!is_server, c.close_code);
      EXPECT_EQ((co_await WriteBytes(ws, AsBytes("x"))).ec, asio::error::broken_pipe);
    }(c));
  }
}

// While a large WriteAll is stuck on a slow reader, the ReadLoop gets a Ping. The Pong must not
// be written into the middle of the data frame: the in-flight write sends it after its data.
// The write is over kWsMaxWriteFramePayloadSize, so it also shows the split into frames.
TEST_F(WsStreamTest, PongQueuedDuringAWriteFollowsTheWrittenFrames) {
  Run([]() -> asio::awaitable<void> {
    using http::WsOpcode;
    SocketPair p = co_await ConnectedSockets(/*buffer_bytes=*/16 * 1024);
    WsStream server = MakeWs(std::move(p.server), Role::kServer);
    const Bytes big = Pattern(2 * kWsMaxWriteFramePayloadSize + 10, 3);

    auto peer = [](tcp::socket& raw, WsStream& server,
                   std::size_t expected) -> asio::awaitable<void> {
      // The first frame's header has arrived, so the write is in flight (and stays so: 2 MiB
      // do not fit the 16 KiB socket buffers).
      const Bytes first = co_await RawRead(raw, 10);
      EXPECT_EQ(first, BytesFromHex("82 7f 0000000000100000"));
      Bytes in = MaskedFrame(true, WsOpcode::kPing, AsBytes("during"));
      AppendBytes(in, MaskedFrame(true, WsOpcode::kBinary, AsBytes("y")));
      co_await RawWrite(raw, in);
      EXPECT_EQ(AsText(co_await ReadExactly(server, 1, 64)), "y");  // the Ping was handled

      Bytes got = co_await RawRead(raw, kWsMaxWriteFramePayloadSize);
      std::vector<std::uint64_t> sizes = {kWsMaxWriteFramePayloadSize};
      while (got.size() < expected) {
        const RawFrame f = co_await RawReadFrame(raw, /*expect_masked=*/false);
        EXPECT_EQ(f.header.opcode, WsOpcode::kBinary);
        if (f.header.opcode != WsOpcode::kBinary) co_return;
        sizes.push_back(f.header.payload_size);
        AppendBytes(got, f.payload);
      }
      EXPECT_EQ(sizes, (std::vector<std::uint64_t>{kWsMaxWriteFramePayloadSize,
                                                   kWsMaxWriteFramePayloadSize, 10}));
      EXPECT_EQ(got, Pattern(expected, 3));
      const RawFrame pong = co_await RawReadFrame(raw, false);
      EXPECT_EQ(pong.header.opcode, WsOpcode::kPong);
      EXPECT_EQ(AsText(pong.payload), "during");
    };
    const IoResult wrote = co_await (WriteBytes(server, big) && peer(p.client, server, big.size()));
    EXPECT_FALSE(wrote.ec);
    EXPECT_EQ(wrote.bytes, big.size());
  }());
}

}  // namespace
}  // namespace derpkit::net
