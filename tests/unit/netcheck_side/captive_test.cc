// CheckCaptivePortal against tiny HTTP servers on 127.0.0.1:0 (a good /generate_204, a portal
// page, a redirect, a rewritten or missing challenge response, a dead port, a silent server) and
// against our real derp-relay's plain HTTP listener.
#include "netcheck/captive.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <memory>
#include <string>
#include <vector>

#include "lib/http/head.h"
#include "lib/net/stream.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using testing::Await;

constexpr std::string_view kGood =
    "HTTP/1.1 204 No Content\r\nX-Tailscale-Response: response ts_127.0.0.1\r\n"
    "Connection: close\r\n\r\n";

// One canned answer per connection, after reading the request head; records the heads. With an
// empty answer it reads the request and then says nothing, holding the connection open.
class TinyHttpServer {
 public:
  TinyHttpServer(asio::io_context& io, std::string answer)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        answer_(std::move(answer)) {
    asio::co_spawn(io, Accept(), asio::detached);
  }
  ~TinyHttpServer() {
    std::error_code ignored;
    acceptor_.close(ignored);
    for (auto& s : held_) s->close(ignored);
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::vector<http::RequestHead>& requests() const { return requests_; }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(acceptor_.get_executor());
      auto [ec] = co_await acceptor_.async_accept(*socket, net::kAsTuple);
      if (ec) co_return;
      asio::co_spawn(acceptor_.get_executor(), Serve(socket), asio::detached);
    }
  }

  asio::awaitable<void> Serve(std::shared_ptr<tcp::socket> socket) {
    Bytes buf;
    std::array<std::byte, 1024> chunk{};
    for (;;) {
      auto [ec, n] = co_await socket->async_read_some(asio::buffer(chunk), net::kAsTuple);
      if (ec) co_return;
      buf.insert(buf.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
      auto head = http::ParseRequestHead(buf);
      if (!head && head.error() == http::ParseError::kIncomplete) continue;
      if (head) requests_.push_back(*head);
      break;
    }
    if (answer_.empty()) {
      held_.push_back(socket);
      co_return;
    }
    co_await asio::async_write(*socket, asio::buffer(answer_), net::kAsTuple);
    std::error_code ignored;
    socket->shutdown(tcp::socket::shutdown_both, ignored);
  }

  tcp::acceptor acceptor_;
  std::string answer_;
  std::vector<http::RequestHead> requests_;
  std::vector<std::shared_ptr<tcp::socket>> held_;
};

std::uint16_t DeadPort() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();  // closed when `a` goes: nothing listens there any more
}

CaptiveTarget Target(std::uint16_t port, std::string name = "900a") {
  return CaptiveTarget{"127.0.0.1", port, std::move(name)};
}

std::string Notes(const CaptiveResult& r) {
  std::string all;
  for (const auto& n : r.notes) all += n + "\n";
  return all;
}

class Captive : public ::testing::Test {
 protected:
  CaptiveResult Check(std::vector<CaptiveTarget> targets, CaptiveOptions options = {}) {
    return Await(io_, CheckCaptivePortal(std::move(targets), options), 10s);
  }
  asio::io_context io_;
};

TEST_F(Captive, GoodEndpointMeansNoPortalAndTheRequestIsTheReferences) {
  TinyHttpServer server(io_, std::string(kGood));
  const CaptiveResult r = Check({Target(server.port())});
  EXPECT_EQ(r.captive, false) << Notes(r);
  ASSERT_EQ(server.requests().size(), 1u);
  const http::RequestHead& req = server.requests()[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/generate_204");
  ASSERT_EQ(req.query.rfind("t=", 0), 0u) << req.query;
  EXPECT_GT(std::stoll(req.query.substr(2)), 1'600'000'000);  // unix seconds, not milliseconds
  EXPECT_LT(std::stoll(req.query.substr(2)), 100'000'000'000);
  ASSERT_NE(req.Find("Host"), nullptr);
  EXPECT_EQ(*req.Find("Host"), "127.0.0.1:" + std::to_string(server.port()));
  ASSERT_NE(req.Find("Cache-Control"), nullptr);
  EXPECT_EQ(*req.Find("Cache-Control"),
            "no-cache, no-store, must-revalidate, no-transform, max-age=0");
  ASSERT_NE(req.Find("X-Tailscale-Challenge"), nullptr);
  EXPECT_EQ(*req.Find("X-Tailscale-Challenge"), "ts_127.0.0.1");
  ASSERT_NE(req.Find("Connection"), nullptr);
  EXPECT_EQ(*req.Find("Connection"), "close");
  EXPECT_NE(Notes(r).find("900a (127.0.0.1:"), std::string::npos) << Notes(r);
}

TEST_F(Captive, OurRelaysPlainHttpListenerAnswersTheChallenge) {
  testing::TestRelayOptions options;
  options.tls = true;
  options.tweak = [](relay::RelayConfig& c) { c.http_port = 0; };
  testing::TestRelay relay(options);
  ASSERT_NE(relay.server().http_port(), 0);
  const CaptiveResult r = Check({Target(relay.server().http_port())});
  EXPECT_EQ(r.captive, false) << Notes(r);
  EXPECT_NE(Notes(r).find("204 with the expected X-Tailscale-Response"), std::string::npos)
      << Notes(r);
}

TEST_F(Captive, PortalPageIsCaptive) {
  TinyHttpServer portal(io_,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 38\r\n\r\n"
                        "<html><body>Please log in</body></html>");
  const CaptiveResult r = Check({Target(portal.port())});
  EXPECT_EQ(r.captive, true);
  EXPECT_NE(Notes(r).find("answered 200 OK instead of 204"), std::string::npos) << Notes(r);
}

TEST_F(Captive, RedirectIsCaptiveAndNotFollowed) {
  TinyHttpServer portal(io_,
                        "HTTP/1.1 302 Found\r\nLocation: http://192.0.2.80/login\r\n"
                        "Content-Length: 0\r\n\r\n");
  const CaptiveResult r = Check({Target(portal.port())});
  EXPECT_EQ(r.captive, true);
  EXPECT_NE(Notes(r).find("redirect to http://192.0.2.80/login"), std::string::npos) << Notes(r);
  EXPECT_EQ(portal.requests().size(), 1u);
}

TEST_F(Captive, WrongChallengeResponseIsCaptive) {
  TinyHttpServer rewriter(
      io_, "HTTP/1.1 204 No Content\r\nX-Tailscale-Response: response ts_192.0.2.1\r\n\r\n");
  const CaptiveResult r = Check({Target(rewriter.port())});
  EXPECT_EQ(r.captive, true);
  EXPECT_NE(Notes(r).find("want \"response ts_127.0.0.1\""), std::string::npos) << Notes(r);
}

TEST_F(Captive, MissingChallengeResponseIsCaptive) {
  TinyHttpServer stripper(io_, "HTTP/1.1 204 No Content\r\n\r\n");
  const CaptiveResult r = Check({Target(stripper.port())});
  EXPECT_EQ(r.captive, true);
  EXPECT_NE(Notes(r).find("without X-Tailscale-Response"), std::string::npos) << Notes(r);
}

TEST_F(Captive, DeadPortIsNoAnswer) {
  const CaptiveResult r = Check({Target(DeadPort())});
  EXPECT_FALSE(r.captive.has_value());
  EXPECT_NE(Notes(r).find("connect:"), std::string::npos) << Notes(r);
}

TEST_F(Captive, SilentServerIsNoAnswerAfterThePerRequestTimeout) {
  TinyHttpServer silent(io_, "");
  CaptiveOptions o;
  o.timeout = 200ms;
  const CaptiveResult r = Check({Target(silent.port())}, o);
  EXPECT_FALSE(r.captive.has_value());
  EXPECT_NE(Notes(r).find("no response within 200 ms"), std::string::npos) << Notes(r);
}

TEST_F(Captive, MalformedResponseIsNoAnswer) {
  TinyHttpServer garbage(io_, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  const CaptiveResult r = Check({Target(garbage.port())});
  EXPECT_FALSE(r.captive.has_value());
  EXPECT_NE(Notes(r).find("malformed HTTP response"), std::string::npos) << Notes(r);
}

TEST_F(Captive, OneGoodAnswerAmongDeadOnesIsEnoughForFalse) {
  TinyHttpServer good(io_, std::string(kGood));
  const CaptiveResult r = Check({Target(DeadPort(), "dead"), Target(good.port(), "good")});
  EXPECT_EQ(r.captive, false) << Notes(r);
}

TEST_F(Captive, OneCaptiveAnswerWinsOverGoodOnes) {
  TinyHttpServer good(io_, std::string(kGood));
  TinyHttpServer portal(io_, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  const CaptiveResult r = Check({Target(good.port(), "good"), Target(portal.port(), "portal")});
  EXPECT_EQ(r.captive, true) << Notes(r);
}

TEST_F(Captive, AsksOnlyTheFirstMaxConcurrentEndpoints) {
  TinyHttpServer a(io_, std::string(kGood));
  TinyHttpServer b(io_, std::string(kGood));
  TinyHttpServer c(io_, std::string(kGood));
  CaptiveOptions o;
  o.max_concurrent = 2;
  const CaptiveResult r = Check({Target(a.port()), Target(b.port()), Target(c.port())}, o);
  EXPECT_EQ(r.captive, false);
  EXPECT_EQ(a.requests().size(), 1u);
  EXPECT_EQ(b.requests().size(), 1u);
  EXPECT_EQ(c.requests().size(), 0u);
  EXPECT_NE(Notes(r).find("1 more endpoints not asked"), std::string::npos) << Notes(r);
}

TEST_F(Captive, NoTargetsIsNotChecked) {
  const CaptiveResult r = Check({});
  EXPECT_FALSE(r.captive.has_value());
  EXPECT_FALSE(r.notes.empty());
}

TEST_F(Captive, CancellingTheCheckEndsIt) {
  TinyHttpServer silent(io_, "");
  CaptiveOptions o;
  o.timeout = 60s;  // only the caller's cancellation can end it
  const std::vector<CaptiveTarget> targets = {Target(silent.port())};
  auto race = [&]() -> asio::awaitable<bool> {
    asio::steady_timer stop(io_, 100ms);
    auto r = co_await (CheckCaptivePortal(targets, o) || stop.async_wait(net::kAsTuple));
    co_return r.index() == 1;
  };
  EXPECT_TRUE(Await(io_, race(), 10s));
}

}  // namespace
}  // namespace derpkit::netcheck
