// derpclient against what a real (v1.36.2) derper sent: a loopback server replays the captured
// server-to-client bytes, and the client must accept the old forms (PeerPresent with only a key,
// PeerGone without a reason byte) and open the real ServerInfo box.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lib/derpclient/client.h"
#include "tests/support/run.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using namespace derpclient;

// Accepts one connection, reads the request head, writes `reply`, then keeps the socket open
// until the test ends.
class ReplayServer {
 public:
  ReplayServer(asio::io_context& io, std::string reply)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), socket_(io) {
    asio::co_spawn(io, Serve(std::move(reply)), asio::detached);
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::awaitable<void> Serve(std::string reply) {
    auto [ec, s] = co_await acceptor_.async_accept(net::kAsTuple);
    if (ec) co_return;
    socket_ = std::move(s);
    std::string head;
    std::array<char, 1024> buf;
    while (head.find("\r\n\r\n") == std::string::npos) {
      auto [rec, n] = co_await socket_.async_read_some(asio::buffer(buf), net::kAsTuple);
      if (rec) co_return;
      head.append(buf.data(), n);
    }
    co_await asio::async_write(socket_, asio::buffer(reply), net::kAsTuple);
  }
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::socket socket_;
};

template <typename M>
M Next(asio::io_context& io, Client& c) {
  auto m = Await(io, c.Recv());
  if (!m) throw std::runtime_error(m.error());
  if (!std::holds_alternative<M>(*m)) throw std::runtime_error("unexpected message type");
  return std::get<M>(*m);
}

TEST(DerpClientCompat, AcceptsOldServerFramesFromTheMeshWatcherCapture) {
  asio::io_context io;
  ReplayServer server(io, ReadTestdata("derp/plain/M.s2c.bin"));
  ClientOptions opts;
  opts.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/derp";
  opts.key = CapturedKey("M");
  Client client(io, opts);
  auto ok = Await(io, client.Connect());
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(client.server_key(), CapturedKey("server").Public());

  EXPECT_EQ(Next<ServerInfoMessage>(io, client).info.version, 2);
  const derp::PublicKey a = CapturedKey("A").Public(), b = CapturedKey("B").Public(),
                        c = CapturedKey("C").Public(), m = CapturedKey("M").Public();
  // Three key-only PeerPresent frames (A, B and M itself, in Go's map order), then C's.
  std::vector<derp::PublicKey> present;
  for (int i = 0; i < 4; ++i) {
    auto p = Next<PeerPresentMessage>(io, client);
    EXPECT_FALSE(p.peer.has_endpoint);
    EXPECT_FALSE(p.peer.has_flags);
    present.push_back(p.peer.key);
  }
  std::sort(present.begin(), present.begin() + 3);
  std::vector<derp::PublicKey> want = {a, b, m};
  std::sort(want.begin(), want.end());
  want.push_back(c);
  EXPECT_EQ(present, want);
  // 32-byte PeerGone frames: reason Disconnected.
  for (const auto& want : {c, b}) {
    auto g = Next<PeerGoneMessage>(io, client);
    EXPECT_EQ(g.key, want);
    EXPECT_EQ(g.reason, derp::PeerGoneReason::kDisconnected);
  }
  Next<KeepAliveMessage>(io, client);
  EXPECT_EQ(Next<PeerGoneMessage>(io, client).key, a);
}

TEST(DerpClientCompat, ReceivesPacketsPongAndPeerGoneFromTheClientACapture) {
  asio::io_context io;
  ReplayServer server(io, ReadTestdata("derp/plain/A.s2c.bin"));
  ClientOptions opts;
  opts.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/derp";
  opts.key = CapturedKey("A");
  Client client(io, opts);
  ASSERT_TRUE(Await(io, client.Connect()).has_value());
  Next<ServerInfoMessage>(io, client);
  auto from_b = Next<RecvPacketMessage>(io, client);
  EXPECT_EQ(from_b.src, CapturedKey("B").Public());
  EXPECT_EQ(std::string(AsText(from_b.packet)), "hello A, from B");
  const auto pong = Next<PongMessage>(io, client);
  EXPECT_EQ(HexEncode(pong.data), "0102030405060708");
  auto forwarded = Next<RecvPacketMessage>(io, client);
  EXPECT_EQ(std::string(AsText(forwarded.packet)), "forwarded to A, from X via mesh");
  EXPECT_EQ(Next<PeerGoneMessage>(io, client).key, CapturedKey("B").Public());
  Next<KeepAliveMessage>(io, client);
}

}  // namespace
}  // namespace derpkit::testing
