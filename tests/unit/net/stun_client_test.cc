// StunSocket against a small STUN responder built from lib/stun, on 127.0.0.1 and ::1: answers,
// concurrent transactions answered out of order, timeouts, foreign transaction IDs, ICMP port
// unreachable, resends with the same transaction ID, unusable answers, Close() and destruction
// while waiting.
//
// Threads: the client runs on the test thread's io_context; each responder owns a thread that
// blocks in recvfrom (with a short receive timeout so that it notices its stop flag).
#include "lib/net/stun_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "lib/stun/stun.h"
#include "tests/support/run.h"

namespace derpkit::net {
namespace {

using namespace std::chrono_literals;
using asio::ip::udp;
using derpkit::testing::Await;
using Kind = StunFailure::Kind;

// What the responder does with the requests it receives.
struct Behaviour {
  int drop_first = 0;               // ignore this many requests before answering
  bool silent = false;              // never answer
  bool foreign_txid_first = false;  // send an answer with a different txid before the real one
  bool only_foreign_txid = false;   // answer only with a different txid
  bool error_response = false;      // answer with a Binding Error Response (0x0111)
  int answer_in_reverse = 0;        // collect this many requests, then answer newest first
  bool mapped_v6_form = false;      // IPv4 clients get family 2, ::ffff:a.b.c.d (dual-stack derper)
};

// A UDP STUN responder on loopback, on its own thread.
class Responder {
 public:
  Responder(const char* ip, Behaviour behaviour)
      : behaviour_(behaviour), socket_(io_, udp::endpoint(asio::ip::make_address(ip), 0)) {
    timeval tv{0, 50'000};  // lets the thread see stop_ within 50 ms
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { Run(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
  }

  udp::endpoint endpoint() const { return socket_.local_endpoint(); }
  std::vector<stun::TxId> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void Run() {
    std::vector<std::pair<stun::TxId, udp::endpoint>> held;
    int received = 0;
    while (!stop_) {
      std::array<std::byte, 1500> buf;
      // Plain recvfrom: Asio's blocking receive would wait again after SO_RCVTIMEO's EAGAIN.
      udp::endpoint from;
      socklen_t from_len = static_cast<socklen_t>(from.capacity());
      const ssize_t got =
          ::recvfrom(socket_.native_handle(), buf.data(), buf.size(), 0, from.data(), &from_len);
      if (got < 0) continue;  // the receive timeout, or a transient error
      from.resize(from_len);
      const std::size_t n = static_cast<std::size_t>(got);
      auto req = stun::ParseBindingRequest(std::span(buf).first(n));
      if (!req) continue;
      {
        std::lock_guard lock(mu_);
        seen_.push_back(req->txid);
      }
      ++received;
      if (behaviour_.silent || received <= behaviour_.drop_first) continue;
      if (behaviour_.answer_in_reverse > 0) {
        held.emplace_back(req->txid, from);
        if (static_cast<int>(held.size()) < behaviour_.answer_in_reverse) continue;
        for (auto it = held.rbegin(); it != held.rend(); ++it) Answer(it->first, it->second);
        held.clear();
        continue;
      }
      if (behaviour_.foreign_txid_first || behaviour_.only_foreign_txid) {
        stun::TxId other = req->txid;
        other.bytes[0] ^= std::byte{0xff};
        Answer(other, from);
        if (behaviour_.only_foreign_txid) continue;
      }
      if (behaviour_.error_response) {
        Bytes reply = stun::BuildBindingResponse(req->txid, Ip(from), from.port());
        reply[1] = std::byte{0x11};  // 0x0111 Binding Error Response
        Send(reply, from);
        continue;
      }
      Answer(req->txid, from);
    }
  }

  static netaddr::IpAddress Ip(const udp::endpoint& ep) {
    if (ep.address().is_v4()) {
      const auto b = ep.address().to_v4().to_bytes();
      return netaddr::IpAddress::V4(b[0], b[1], b[2], b[3]);
    }
    const auto b = ep.address().to_v6().to_bytes();
    std::array<std::byte, 16> out;
    std::memcpy(out.data(), b.data(), out.size());
    return netaddr::IpAddress::V6(out);
  }

  void Answer(const stun::TxId& txid, const udp::endpoint& to) {
    const auto form =
        behaviour_.mapped_v6_form ? stun::FamilyForm::kMappedV6 : stun::FamilyForm::kNative;
    Send(stun::BuildBindingResponse(txid, Ip(to), to.port(), form), to);
  }

  void Send(const Bytes& bytes, const udp::endpoint& to) {
    asio::error_code ignored;
    socket_.send_to(asio::buffer(bytes), to, 0, ignored);
  }

  Behaviour behaviour_;
  asio::io_context io_;  // only to own the socket; never run
  udp::socket socket_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<stun::TxId> seen_;
  std::thread thread_;
};

struct FamilyCase {
  const char* name;
  StunSocketOptions::Family family;
  const char* loopback;
};

class StunClientTest : public ::testing::TestWithParam<FamilyCase> {
 protected:
  std::unique_ptr<StunSocket> OpenSocket() {
    auto s = StunSocket::Open(io_, {.family = GetParam().family});
    if (!s) ADD_FAILURE() << s.error();
    return s ? std::move(*s) : nullptr;
  }
  Expected<StunAnswer, StunFailure> Run(StunSocket& s, const udp::endpoint& to,
                                        StunTransactOptions options = {}) {
    return Await(io_, s.Transact(to, options), 10s);
  }
  // A loopback port on which nothing listens (bound, read back, closed).
  udp::endpoint ClosedPort() {
    udp::socket probe(io_, udp::endpoint(asio::ip::make_address(GetParam().loopback), 0));
    const udp::endpoint ep = probe.local_endpoint();
    probe.close();
    return ep;
  }

  asio::io_context io_;
};

TEST_P(StunClientTest, AnswerCarriesOurSourceAddress) {
  Responder responder(GetParam().loopback, {});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  for (auto form : {stun::RequestForm::kTailscale, stun::RequestForm::kBare}) {
    auto answer = Run(*sock, responder.endpoint(), {.form = form});
    ASSERT_TRUE(answer) << answer.error().message;
    EXPECT_EQ(answer->mapped_ip.ToString(), GetParam().loopback);
    EXPECT_EQ(answer->mapped_port, sock->local_endpoint().port());
    EXPECT_EQ(answer->from, responder.endpoint());
    EXPECT_EQ(answer->sent_to, responder.endpoint());
    EXPECT_EQ(answer->response_bytes, GetParam().family == StunSocketOptions::Family::kIpv4
                                          ? stun::kIpv4ResponseSize
                                          : stun::kIpv6ResponseSize);
    EXPECT_GT(answer->rtt.count(), 0);
    ASSERT_FALSE(responder.seen().empty());
    EXPECT_EQ(answer->txid, responder.seen().back());
  }
  // The reader stopped with the last transaction: nothing is left to run on the io_context.
  io_.restart();
  io_.run_for(5s);
  EXPECT_TRUE(io_.stopped());
}

TEST_P(StunClientTest, ConcurrentTransactionsMatchedByTxidNotOrder) {
  constexpr int kCount = 16;
  Responder reversing(GetParam().loopback, {.answer_in_reverse = kCount});
  Responder plain(GetParam().loopback, {});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  std::vector<std::optional<Expected<StunAnswer, StunFailure>>> results(kCount + 1);
  int done = 0;
  for (int i = 0; i <= kCount; ++i) {
    const udp::endpoint to = i < kCount ? reversing.endpoint() : plain.endpoint();
    asio::co_spawn(io_, sock->Transact(to, {.timeout = 10s}), [&, i](std::exception_ptr e, auto r) {
      ASSERT_FALSE(e);
      results[i].emplace(std::move(r));
      ++done;
    });
  }
  io_.run_for(20s);
  ASSERT_EQ(done, kCount + 1);
  std::set<std::string> txids;
  for (int i = 0; i <= kCount; ++i) {
    ASSERT_TRUE(*results[i]) << results[i]->error().message;
    const StunAnswer& a = results[i]->value();
    EXPECT_EQ(a.sent_to, i < kCount ? reversing.endpoint() : plain.endpoint());
    EXPECT_EQ(a.from, a.sent_to);
    EXPECT_EQ(a.mapped_port, sock->local_endpoint().port());
    txids.insert(a.txid.ToHex());
  }
  EXPECT_EQ(txids.size(), static_cast<std::size_t>(kCount + 1)) << "transaction IDs must differ";
  // The reversing responder saw the requests in one order and answered in the other; each
  // transaction still got the answer carrying its own ID.
  const auto seen = reversing.seen();
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) EXPECT_TRUE(txids.contains(seen[i].ToHex()));
}

TEST_P(StunClientTest, SilenceTimesOut) {
  Responder silent(GetParam().loopback, {.silent = true});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  auto answer = Run(*sock, silent.endpoint(), {.timeout = 200ms});
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind, Kind::kTimeout);
  const std::string where = netaddr::JoinHostPort(GetParam().loopback, silent.endpoint().port());
  EXPECT_EQ(answer.error().message, "no answer from " + where + " within 200ms");
  EXPECT_EQ(silent.seen().size(), 1u) << "no resend was asked for";
}

TEST_P(StunClientTest, ForeignTransactionIdIsIgnored) {
  Responder first_foreign(GetParam().loopback, {.foreign_txid_first = true});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  auto answer = Run(*sock, first_foreign.endpoint());
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->txid, first_foreign.seen().at(0));

  Responder only_foreign(GetParam().loopback, {.only_foreign_txid = true});
  auto none = Run(*sock, only_foreign.endpoint(), {.timeout = 300ms});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, Kind::kTimeout) << none.error().message;
}

TEST_P(StunClientTest, ClosedPortIsRefusedWithoutDisturbingOthers) {
  Responder live(GetParam().loopback, {});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  const udp::endpoint closed = ClosedPort();
  std::optional<Expected<StunAnswer, StunFailure>> refused, answered;
  // A long timeout: the refusal must come from the ICMP error, not the clock.
  asio::co_spawn(io_, sock->Transact(closed, {.timeout = 30s}),
                 [&](std::exception_ptr, auto r) { refused.emplace(std::move(r)); });
  asio::co_spawn(io_, sock->Transact(live.endpoint(), {.timeout = 30s}),
                 [&](std::exception_ptr, auto r) { answered.emplace(std::move(r)); });
  io_.run_for(20s);
  ASSERT_TRUE(refused && answered);
  ASSERT_FALSE(*refused);
  EXPECT_EQ(refused->error().kind, Kind::kRefused);
  EXPECT_NE(
      refused->error().message.find(netaddr::JoinHostPort(GetParam().loopback, closed.port())),
      std::string::npos)
      << refused->error().message;
  ASSERT_TRUE(*answered) << answered->error().message;

  // The socket stays usable after a refusal, and a second refusal is reported again.
  auto again = Run(*sock, closed, {.timeout = 30s});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind, Kind::kRefused);
  EXPECT_TRUE(Run(*sock, live.endpoint()));
}

TEST_P(StunClientTest, ResendUsesTheSameTransactionId) {
  Responder lossy(GetParam().loopback, {.drop_first = 2});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  auto answer = Run(*sock, lossy.endpoint(), {.timeout = 8s, .resend_interval = 50ms});
  ASSERT_TRUE(answer) << answer.error().message;
  const auto seen = lossy.seen();
  ASSERT_GE(seen.size(), 3u);
  for (const auto& txid : seen) EXPECT_EQ(txid, answer->txid);
}

TEST_P(StunClientTest, WithoutResendALostRequestTimesOut) {
  Responder lossy(GetParam().loopback, {.drop_first = 1});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  auto answer = Run(*sock, lossy.endpoint(), {.timeout = 300ms});
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind, Kind::kTimeout);
  EXPECT_EQ(lossy.seen().size(), 1u);
}

TEST_P(StunClientTest, ErrorResponseIsABadAnswer) {
  Responder erring(GetParam().loopback, {.error_response = true});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  auto answer = Run(*sock, erring.endpoint());
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind, Kind::kBadAnswer);
  EXPECT_NE(answer.error().message.find("0x0111"), std::string::npos) << answer.error().message;
}

TEST_P(StunClientTest, CloseAndDestructionFailWaitingTransactions) {
  Responder silent(GetParam().loopback, {.silent = true});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  std::optional<Expected<StunAnswer, StunFailure>> a, b;
  asio::co_spawn(io_, sock->Transact(silent.endpoint(), {.timeout = 30s}),
                 [&](std::exception_ptr, auto r) { a.emplace(std::move(r)); });
  asio::co_spawn(io_, sock->Transact(silent.endpoint(), {.timeout = 30s}),
                 [&](std::exception_ptr, auto r) { b.emplace(std::move(r)); });
  // Run until both requests reached the responder, then close.
  for (int i = 0; i < 400 && silent.seen().size() < 2; ++i) io_.run_for(10ms);
  ASSERT_EQ(silent.seen().size(), 2u);
  sock->Close();
  io_.run_for(5s);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->error().kind, Kind::kClosed);
  EXPECT_EQ(b->error().kind, Kind::kClosed);
  auto after = Run(*sock, silent.endpoint());
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind, Kind::kClosed);

  // Destroying the socket while a transaction waits completes it; ASan checks nobody touches
  // the freed socket afterwards.
  auto doomed = OpenSocket();
  ASSERT_TRUE(doomed);
  std::optional<Expected<StunAnswer, StunFailure>> c;
  asio::co_spawn(io_, doomed->Transact(silent.endpoint(), {.timeout = 30s}),
                 [&](std::exception_ptr, auto r) { c.emplace(std::move(r)); });
  io_.restart();  // the io_context ran out of work above
  for (int i = 0; i < 400 && silent.seen().size() < 3; ++i) io_.run_for(10ms);
  ASSERT_EQ(silent.seen().size(), 3u);
  doomed.reset();
  io_.restart();
  io_.run_for(5s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->error().kind, Kind::kClosed);
  EXPECT_TRUE(io_.stopped());
}

TEST_P(StunClientTest, DestroyedBeforeItsReaderFirstRuns) {
  Responder silent(GetParam().loopback, {.silent = true});
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  std::optional<Expected<StunAnswer, StunFailure>> r;
  asio::co_spawn(io_, sock->Transact(silent.endpoint(), {.timeout = 30s}),
                 [&](std::exception_ptr, auto result) { r.emplace(std::move(result)); });
  // One handler: the transaction starts, sends, queues the reader and sleeps. The reader has not
  // run when the socket goes away; ASan checks that neither coroutine touches it afterwards.
  ASSERT_EQ(io_.poll_one(), 1u);
  sock.reset();
  io_.run_for(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error().kind, Kind::kClosed);
  EXPECT_TRUE(io_.stopped());
}

// derp-probe's shape: the socket is a local of the coroutine that awaits Transact. When the
// io_context is torn down (SIGTERM) with both frames suspended, the frames are destroyed
// without resuming, in an order the compiler picks; ASan checks that the socket's Close() does
// not complete the Pending freed with Transact's frame.
TEST_P(StunClientTest, FramesDestroyedMidWaitAtShutdown) {
  Responder silent(GetParam().loopback, {.silent = true});
  const StunSocketOptions options{.family = GetParam().family};
  const udp::endpoint to = silent.endpoint();
  bool finished = false;
  {
    asio::io_context io;
    auto owner = [&]() -> asio::awaitable<void> {
      auto sock = StunSocket::Open(io, options);
      if (!sock) co_return;
      auto answer = co_await (*sock)->Transact(to, {.timeout = 30s});
      finished = true;
    };
    asio::co_spawn(io, owner(), asio::detached);
    for (int i = 0; i < 400 && silent.seen().empty(); ++i) io.run_for(10ms);
    ASSERT_EQ(silent.seen().size(), 1u);
  }  // ~io_context destroys both suspended frames
  EXPECT_FALSE(finished);
}

TEST_P(StunClientTest, WrongFamilyDestinationFailsToSend) {
  auto sock = OpenSocket();
  ASSERT_TRUE(sock);
  const bool v4 = GetParam().family == StunSocketOptions::Family::kIpv4;
  const udp::endpoint other(asio::ip::make_address(v4 ? "::1" : "127.0.0.1"), 3478);
  auto answer = Run(*sock, other);
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().kind, Kind::kSendFailed);
  EXPECT_NE(answer.error().message.find(v4 ? "IPv4 socket" : "IPv6 socket"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Loopback, StunClientTest,
    ::testing::Values(FamilyCase{"v4", StunSocketOptions::Family::kIpv4, "127.0.0.1"},
                      FamilyCase{"v6", StunSocketOptions::Family::kIpv6, "::1"}),
    [](const auto& info) { return std::string(info.param.name); });

// An IPv4 client of a dual-stack server gets ::ffff:a.b.c.d back; the answer is unmapped.
TEST(StunClient, MappedIpv4AnswerIsUnmapped) {
  asio::io_context io;
  Responder dual(("127.0.0.1"), {.mapped_v6_form = true});
  auto sock = StunSocket::Open(io, {});
  ASSERT_TRUE(sock) << sock.error();
  auto answer = Await(io, (*sock)->Transact(dual.endpoint(), {}), 10s);
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->response_bytes, stun::kIpv6ResponseSize);
  EXPECT_TRUE(answer->mapped_ip.is_v4());
  EXPECT_EQ(answer->mapped_ip.ToString(), "127.0.0.1");
}

TEST(StunClient, OpenReportsBadBindAddresses) {
  asio::io_context io;
  auto not_ip = StunSocket::Open(io, {.bind_address = "localhost"});
  ASSERT_FALSE(not_ip);
  EXPECT_NE(not_ip.error().find("not an IP address"), std::string::npos) << not_ip.error();
  auto wrong_family = StunSocket::Open(
      io, {.family = StunSocketOptions::Family::kIpv6, .bind_address = "127.0.0.1"});
  ASSERT_FALSE(wrong_family);
  EXPECT_NE(wrong_family.error().find("not an IPv6 address"), std::string::npos);
  // 192.0.2.1 (TEST-NET-1) is not on any interface here, so binding it must fail; no datagram
  // is ever sent to it.
  auto unbindable = StunSocket::Open(io, {.bind_address = "192.0.2.1"});
  ASSERT_FALSE(unbindable);
  EXPECT_NE(unbindable.error().find("cannot bind UDP 192.0.2.1:0"), std::string::npos)
      << unbindable.error();
  auto bound = StunSocket::Open(io, {.bind_address = "127.0.0.1"});
  ASSERT_TRUE(bound) << bound.error();
  EXPECT_EQ((*bound)->local_endpoint().address().to_string(), "127.0.0.1");
  EXPECT_NE((*bound)->local_endpoint().port(), 0);
}

}  // namespace
}  // namespace derpkit::net
