// Issue #10's limits on an in-process relay (real sockets on 127.0.0.1): the accept rate limit
// on plain and TLS main listeners, the Restarting frame every client gets when the relay stops,
// and /bootstrap-dns answered from names resolved in the background (the system resolver for
// "localhost"; a resolver the test injects for names that must not reach any real DNS).
#include <gtest/gtest.h>

#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "relay/bootstrap_dns.h"
#include "relay/metrics.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

using relay::CloseReason;

TestRelayOptions With(bool tls, std::function<void(relay::RelayConfig&)> tweak) {
  TestRelayOptions o;
  o.tls = tls;
  o.tweak = std::move(tweak);
  return o;
}

// A resolver with fixed answers. LookupIp of a name in `hold` blocks until Release() (at most
// 30 s, so a broken test cannot hang its process forever).
class FixedResolver final : public relay::DnsResolver {
 public:
  std::map<std::string, std::vector<std::string>> ips;
  std::map<std::string, std::vector<std::string>> txt;
  std::set<std::string> hold;

  Expected<std::vector<std::string>, std::string> LookupIp(const std::string& name) override {
    std::unique_lock lock(mu_);
    ++ip_lookups_;
    cv_.notify_all();
    if (hold.count(name) != 0) {
      cv_.wait_for(lock, std::chrono::seconds(30), [this] { return released_; });
    }
    auto it = ips.find(name);
    if (it == ips.end()) return Unexpected{std::string("no such host")};
    return it->second;
  }
  Expected<std::vector<std::string>, std::string> LookupTxt(const std::string& name) override {
    std::lock_guard lock(mu_);
    auto it = txt.find(name);
    if (it == txt.end()) return Unexpected{std::string("no TXT record")};
    return it->second;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitForLookups(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ip_lookups_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int ip_lookups_ = 0;
  bool released_ = false;
};

// One HTTP/1.1 request on a fresh connection; returns the whole response.
std::string Get(asio::io_context& io, std::uint16_t port, const std::string& target,
                const std::string& proxy_header = "") {
  RawPeer peer(io, port);
  peer.Send(proxy_header + "GET " + target + " HTTP/1.1\r\nHost: relay.example\r\n\r\n");
  auto [got, closed] = peer.ReadUntilClosed();
  EXPECT_TRUE(closed) << "/bootstrap-dns always closes";
  return got;
}

std::string BodyOf(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  return at == std::string::npos ? "<no head end>" : response.substr(at + 4);
}

// ---- accept limit --------------------------------------------------------------------------

TEST(AcceptLimit, PlainListenerClosesConnectionsOverTheBurstAtOnce) {
  asio::io_context io;
  TestRelay relay{With(false, [](relay::RelayConfig& c) {
    c.accept_connection_limit = 0;  // no refill: exactly the burst is served
    c.accept_connection_burst = 2;
  })};
  for (int i = 0; i < 2; ++i) {
    const std::string resp = Get(io, relay.port(), "/bootstrap-dns");
    EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << "connection " << i << ": " << resp;
  }
  RawPeer third(io, relay.port());
  auto [got, closed] = third.ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(got, "") << "closed before a single byte, as derper";
  const auto s = relay.stats();
  EXPECT_EQ(s.listener_accepted, 2u);
  EXPECT_EQ(s.listener_rejected, 1u);
  const std::string metrics = relay::RenderPrometheus(relay.server());
  EXPECT_NE(metrics.find("\ntls_listener_accepted_connections_total 2\n"), std::string::npos);
  EXPECT_NE(metrics.find("\ntls_listener_rejected_connections_total 1\n"), std::string::npos);
}

TEST(AcceptLimit, TlsListenerRejectsBeforeTheHandshake) {
  asio::io_context io;
  TestRelay relay{With(true, [](relay::RelayConfig& c) {
    c.accept_connection_limit = 0;
    c.accept_connection_burst = 1;
  })};
  auto client = ConnectClient(io, relay.ClientOptionsFor());
  ASSERT_TRUE(client);
  RawPeer second(io, relay.port());
  auto [got, closed] = second.ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(got, "");
  EXPECT_EQ(relay.stats().listener_rejected, 1u);
  EXPECT_EQ(relay.stats().tls_handshake_failures, 0u) << "no handshake was attempted";
}

TEST(AcceptLimit, UnlimitedByDefault) {
  asio::io_context io;
  TestRelay relay{With(false, nullptr)};
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Get(io, relay.port(), "/bootstrap-dns").rfind("HTTP/1.1 200", 0), 0u);
  }
  EXPECT_EQ(relay.stats().listener_accepted, 20u);
  EXPECT_EQ(relay.stats().listener_rejected, 0u);
}

// ---- Restarting on shutdown ----------------------------------------------------------------

class Restarting : public ::testing::TestWithParam<bool> {};

TEST_P(Restarting, EveryClientIsToldToReconnectThenTheRelayHangsUp) {
  asio::io_context io;
  auto relay = std::make_unique<TestRelay>(With(GetParam(), [](relay::RelayConfig& c) {
    c.restart_reconnect_in = std::chrono::milliseconds(250);
    c.restart_try_for = std::chrono::milliseconds(3000);
    c.shutdown_grace = std::chrono::milliseconds(20000);  // the clients, not the grace, end it
  }));
  auto a = ConnectClient(io, relay->ClientOptionsFor());
  auto b = ConnectClient(io, relay->ClientOptionsFor());
  ASSERT_TRUE(WaitUntil([&] { return relay->stats().current_connections == 2; }));

  std::thread stopper([&] { relay->server().Stop(); });
  for (auto* c : {a.get(), b.get()}) {
    const auto m = RecvUntil<derpclient::RestartingMessage>(io, *c);
    EXPECT_EQ(m.restarting.reconnect_in_ms, 250u);
    EXPECT_EQ(m.restarting.try_for_ms, 3000u);
    // Nothing follows but the relay's end of the stream.
    auto next = Await(io, c->Recv());
    EXPECT_FALSE(next) << "a message after Restarting";
    c->Close();  // a real client hangs up and reconnects; that lets the relay finish at once
  }
  stopper.join();
  EXPECT_EQ(relay->stats().closed(CloseReason::kServerShutdown), 2u);
  EXPECT_EQ(relay->stats().current_connections, 0);
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, Restarting, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Tls" : "Plain"; });

TEST(RestartingDisabled, ZeroTryForClosesLikeDerper) {
  asio::io_context io;
  auto relay = std::make_unique<TestRelay>(
      With(false, [](relay::RelayConfig& c) { c.restart_try_for = std::chrono::milliseconds(0); }));
  auto a = ConnectClient(io, relay->ClientOptionsFor());
  ASSERT_TRUE(WaitUntil([&] { return relay->stats().current_connections == 1; }));
  std::thread stopper([&] { relay->server().Stop(); });
  bool restarting = false;
  for (int i = 0; i < 100; ++i) {  // KeepAlives may come first; the stream ends within the grace
    auto m = Await(io, a->Recv());
    if (!m) break;
    restarting = restarting || std::holds_alternative<derpclient::RestartingMessage>(*m);
  }
  stopper.join();
  EXPECT_FALSE(restarting);
}

// ---- /bootstrap-dns ------------------------------------------------------------------------

TEST(BootstrapDnsRelay, ResolvesLocalhostInTheBackgroundAndServesDerpersJson) {
  asio::io_context io;
  TestRelay relay{
      With(false, [](relay::RelayConfig& c) { c.bootstrap_dns_names = {"localhost"}; })};
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().bootstrap_dns.refreshes >= 1; }));
  const std::string resp = Get(io, relay.port(), "/bootstrap-dns");
  EXPECT_NE(resp.find("\r\nContent-Type: application/json\r\n"), std::string::npos) << resp;
  EXPECT_NE(resp.find("\r\nConnection: close\r\n"), std::string::npos) << resp;
  const std::string body = BodyOf(resp);
  EXPECT_EQ(body.rfind("{\n\t\"localhost\": [\n\t\t\"", 0), 0u) << body;
  const auto json = nlohmann::json::parse(body);
  ASSERT_TRUE(json.contains("localhost")) << body;
  const auto addrs = json["localhost"].get<std::vector<std::string>>();
  EXPECT_TRUE(std::find(addrs.begin(), addrs.end(), "127.0.0.1") != addrs.end()) << body;
  EXPECT_EQ(relay.stats().bootstrap_dns.published_names, 1u);
}

TEST(BootstrapDnsRelay, UnpublishedNamesFollowTheRolloutOfTheCallersAddress) {
  asio::io_context io;
  auto resolver = std::make_shared<FixedResolver>();
  resolver->ips = {{"controlplane.example", {"192.0.2.1"}},
                   {"hidden.example", {"192.0.2.9"}},
                   {"half.example", {"192.0.2.10"}}};
  resolver->txt = {{"rollout.example", {"45"}}};
  TestRelay relay{With(false, [&](relay::RelayConfig& c) {
    c.bootstrap_dns_names = {"controlplane.example"};
    c.unpublished_bootstrap_dns_names = {"hidden.example", "half.example/rollout.example"};
    c.bootstrap_dns_resolver = resolver;
    c.proxy_protocol = {"main"};  // so the test can speak as callers other than 127.0.0.1
  })};
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().bootstrap_dns.refreshes >= 1; }));
  const std::string published = "{\n\t\"controlplane.example\": [\n\t\t\"192.0.2.1\"\n\t]\n}";
  auto from = [](const std::string& ip) {
    return "PROXY TCP4 " + ip + " 192.0.2.200 40000 443\r\n";
  };
  EXPECT_EQ(BodyOf(Get(io, relay.port(), "/bootstrap-dns", from("198.51.100.20"))), published);
  EXPECT_EQ(BodyOf(Get(io, relay.port(), "/bootstrap-dns?q=hidden.example", from("198.51.100.20"))),
            "{\n\t\"hidden.example\": [\n\t\t\"192.0.2.9\"\n\t]\n}");
  // 45%: 203.0.113.7 is inside (its PCG draw is 0.447), 198.51.100.20 outside (0.693).
  EXPECT_EQ(BodyOf(Get(io, relay.port(), "/bootstrap-dns?q=half.example", from("203.0.113.7"))),
            "{\n\t\"half.example\": [\n\t\t\"192.0.2.10\"\n\t]\n}");
  EXPECT_EQ(BodyOf(Get(io, relay.port(), "/bootstrap-dns?q=half.example", from("198.51.100.20"))),
            published);
  const auto s = relay.stats().bootstrap_dns;
  using C = relay::BootstrapDnsCounter;
  EXPECT_EQ(s.counters[static_cast<std::size_t>(C::kUnpublishedHit)], 3u);
  EXPECT_EQ(s.counters[static_cast<std::size_t>(C::kUnpublishedPercentMiss)], 1u);
  EXPECT_EQ(s.queried_domains, 2u);
  const std::string metrics = relay::RenderPrometheus(relay.server());
  EXPECT_NE(metrics.find("\nbootstrap_dns_unpublished_hits_total 3\n"), std::string::npos);
  EXPECT_NE(metrics.find("\nbootstrap_dns_unpublished_percent_misses_total 1\n"),
            std::string::npos);
}

TEST(BootstrapDnsRelay, ASlowResolverNeverDelaysARequest) {
  asio::io_context io;
  auto resolver = std::make_shared<FixedResolver>();
  resolver->ips = {{"slow.example", {"192.0.2.3"}}};
  resolver->hold = {"slow.example"};
  TestRelay relay{With(false, [&](relay::RelayConfig& c) {
    c.bootstrap_dns_names = {"slow.example"};
    c.bootstrap_dns_resolver = resolver;
  })};
  ASSERT_TRUE(resolver->WaitForLookups(1));
  // The refresh is stuck in the resolver; the request is answered from what there is: nothing.
  const std::string resp = Get(io, relay.port(), "/bootstrap-dns");
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp;
  EXPECT_EQ(BodyOf(resp), "");
  EXPECT_EQ(relay.stats().bootstrap_dns.refreshes, 0u);
  resolver->Release();
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().bootstrap_dns.refreshes >= 1; }));
  EXPECT_EQ(BodyOf(Get(io, relay.port(), "/bootstrap-dns")),
            "{\n\t\"slow.example\": [\n\t\t\"192.0.2.3\"\n\t]\n}");
}

// ---- BootstrapDns on its own ---------------------------------------------------------------

TEST(BootstrapDns, ALookupPastTheRefreshTimeoutFailsAndTheRestIsKept) {
  auto resolver = std::make_shared<FixedResolver>();
  resolver->ips = {{"fast.example", {"192.0.2.1"}}, {"slow.example", {"192.0.2.2"}}};
  resolver->hold = {"slow.example"};
  relay::BootstrapDns dns(
      relay::BootstrapDnsOptions{.published = {"fast.example", "slow.example"},
                                 .unpublished = {},
                                 .resolver = resolver,
                                 .refresh_interval = std::chrono::minutes(10),
                                 .refresh_timeout = std::chrono::milliseconds(200)});
  dns.Refresh();
  EXPECT_EQ(dns.Answer("/bootstrap-dns", *netaddr::ParseIp("192.0.2.50")),
            "{\n\t\"fast.example\": [\n\t\t\"192.0.2.1\"\n\t]\n}");
  const auto s = dns.Stats();
  EXPECT_EQ(s.lookup_failures[static_cast<std::size_t>(relay::DnsLookupFailure::kIpTimeout)], 1u);
  resolver->Release();  // the abandoned lookup finishes on its own thread
}

TEST(BootstrapDns, EveryRefreshShufflesTheAddresses) {
  auto resolver = std::make_shared<FixedResolver>();
  resolver->ips = {{"many.example", {"192.0.2.1", "192.0.2.2", "2001:db8::1"}}};
  relay::BootstrapDns dns(relay::BootstrapDnsOptions{
      .published = {"many.example"}, .unpublished = {}, .resolver = resolver});
  std::set<std::string> orders;
  for (int i = 0; i < 200 && orders.size() < 3; ++i) {  // 1 in 6^199 to fail by chance
    dns.Refresh();
    orders.insert(dns.Answer("/bootstrap-dns", *netaddr::ParseIp("192.0.2.50")));
  }
  EXPECT_GE(orders.size(), 3u);
  for (const std::string& body : orders) {
    const auto addrs = nlohmann::json::parse(body)["many.example"].get<std::set<std::string>>();
    EXPECT_EQ(addrs, (std::set<std::string>{"192.0.2.1", "192.0.2.2", "2001:db8::1"}));
  }
}

TEST(BootstrapDns, TxtFailuresRollANameOutToNobody) {
  auto resolver = std::make_shared<FixedResolver>();
  resolver->ips = {{"a.example", {"192.0.2.1"}}, {"b.example", {"192.0.2.2"}}};
  resolver->txt = {{"bad.example", {"lots"}}};
  relay::BootstrapDns dns(relay::BootstrapDnsOptions{
      .published = {},
      .unpublished = {"a.example/missing.example", "b.example/bad.example"},
      .resolver = resolver});
  dns.Refresh();
  const auto anyone = *netaddr::ParseIp("203.0.113.7");
  EXPECT_EQ(dns.Answer("/bootstrap-dns?q=a.example", anyone), "");
  EXPECT_EQ(dns.Answer("/bootstrap-dns?q=b.example", anyone), "");
  const auto s = dns.Stats();
  using F = relay::DnsLookupFailure;
  EXPECT_EQ(s.lookup_failures[static_cast<std::size_t>(F::kTxtError)], 1u);
  EXPECT_EQ(s.lookup_failures[static_cast<std::size_t>(F::kTxtInvalid)], 1u);
  EXPECT_EQ(s.unpublished_names, 2u);
}

TEST(BootstrapDns, StopDoesNotWaitForAHangingLookup) {
  auto resolver = std::make_shared<FixedResolver>();
  resolver->hold = {"hang.example"};
  {
    relay::BootstrapDns dns(relay::BootstrapDnsOptions{
        .published = {"hang.example"}, .unpublished = {}, .resolver = resolver});
    dns.Start();
    ASSERT_TRUE(resolver->WaitForLookups(1));
    dns.Stop();  // returns although the lookup is still blocked (ctest's timeout would catch it)
    EXPECT_EQ(dns.Stats().refreshes, 0u) << "a refresh cut short by Stop() stores nothing";
  }
  resolver->Release();
}

// ---- the system resolver's TXT path, against a DNS server on loopback -------------------------

// A one-socket DNS server on 127.0.0.1 that answers TXT questions from a table (each record a
// list of character-strings) and NXDOMAIN otherwise. Its thread ends with the object.
class LoopbackTxtServer {
 public:
  explicit LoopbackTxtServer(std::map<std::string, std::vector<std::vector<std::string>>> records)
      : records_(std::move(records)),
        socket_(io_, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackTxtServer() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return socket_.local_endpoint().port(); }
  int queries() const { return queries_.load(); }

 private:
  void Serve() {
    auto loop = [this]() -> asio::awaitable<void> {
      std::array<unsigned char, 512> in;
      for (;;) {
        asio::ip::udp::endpoint from;
        auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(in), from, net::kAsTuple);
        if (ec) co_return;
        ++queries_;
        const std::string reply = Answer(std::span(in).first(n));
        if (!reply.empty()) {
          co_await socket_.async_send_to(asio::buffer(reply), from, net::kAsTuple);
        }
      }
    };
    asio::co_spawn(io_, loop(), asio::detached);
    io_.run();
  }
  std::string Answer(std::span<const unsigned char> q) {
    if (q.size() < 12) return "";
    std::size_t at = 12;
    std::string name;
    while (at < q.size() && q[at] != 0) {
      const std::size_t len = q[at];
      if (at + 1 + len > q.size()) return "";
      if (!name.empty()) name += '.';
      for (std::size_t i = 0; i < len; ++i) name += static_cast<char>(std::tolower(q[at + 1 + i]));
      at += 1 + len;
    }
    if (at + 5 > q.size()) return "";
    const std::size_t question_end = at + 5;  // the root label, QTYPE, QCLASS
    const bool is_txt = q[at + 1] == 0 && q[at + 2] == 16;
    auto it = records_.find(name);
    const bool found = is_txt && it != records_.end();
    std::string out(reinterpret_cast<const char*>(q.data()), 2);  // the query's ID
    out += found ? "\x81\x80" : std::string("\x81\x83", 2);       // response, RD, RA; NXDOMAIN
    out += std::string("\x00\x01\x00", 3);
    out += static_cast<char>(found ? it->second.size() : 0);
    out += std::string(4, '\0');
    out.append(reinterpret_cast<const char*>(q.data()) + 12, question_end - 12);
    if (found) {
      for (const auto& strings : it->second) {
        std::string rdata;
        for (const std::string& s : strings) rdata += static_cast<char>(s.size()) + s;
        out += std::string("\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c", 10);
        out += static_cast<char>(rdata.size() >> 8);
        out += static_cast<char>(rdata.size() & 0xff);
        out += rdata;
      }
    }
    return out;
  }

  std::map<std::string, std::vector<std::vector<std::string>>> records_;
  asio::io_context io_;
  asio::ip::udp::socket socket_;
  std::atomic<int> queries_{0};
  std::thread thread_;
};

TEST(SystemDnsResolver, ReadsTxtRecordsJoiningEachRecordsStrings) {
  LoopbackTxtServer server({{"rollout.test", {{"4", "2"}, {"junk"}}}});
  auto resolver = relay::SystemDnsResolver("127.0.0.1", server.port());
  auto txt = resolver->LookupTxt("rollout.test");
  ASSERT_TRUE(txt) << txt.error();
  EXPECT_EQ(*txt, (std::vector<std::string>{"42", "junk"}));
  EXPECT_EQ(relay::RolloutFraction(*txt), 0.42);
  auto missing = resolver->LookupTxt("nothing.test");
  EXPECT_FALSE(missing);
  EXPECT_GE(server.queries(), 2);
}

TEST(SystemDnsResolver, ResolvesLocalhostFromTheHostsFile) {
  auto ips = relay::SystemDnsResolver()->LookupIp("localhost");
  ASSERT_TRUE(ips) << ips.error();
  EXPECT_TRUE(std::find(ips->begin(), ips->end(), "127.0.0.1") != ips->end());
}

}  // namespace
}  // namespace derpkit::testing
