// Client admission end to end (relay/admission.h, derp-protocol.md §10): an in-process relay on
// loopback, real DERP clients, and stand-ins that speak the real HTTP exchanges: tailscaled's
// LocalAPI on a unix socket (tests/support/fake_localapi.h) and a Headscale-style /verify
// admission controller (cpp-httplib on 127.0.0.1:0). An admitted client relays packets; a
// refused one sees its connection close before ServerInfo; slow and dead verifiers do what the
// fail-open setting says; the cache and the in-flight bound keep a reconnect storm off the
// verifier; --allow-keys-file reloads; mesh peers are never asked about.
#include "relay/admission.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/support/fake_localapi.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

using relay::AdmitVia;
using relay::CloseReason;
using relay::Refusal;

// --- the admission controller stand-in --------------------------------------------------------

// POST /verify as Headscale answers it: 200 {"Allow": true|false} by the node keys allowed here.
// Tests can make it slow, hold every answer until released, or answer something else.
class StandInVerifier {
 public:
  struct Seen {
    std::string method, path, content_type, body;
  };

  StandInVerifier() {
    server_.Post("/verify",
                 [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("stand-in verifier: cannot bind 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    if (!WaitUntil([this] { return server_.is_running(); })) {
      throw std::runtime_error("stand-in verifier did not start");
    }
  }
  ~StandInVerifier() {
    Release();
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/verify"; }
  void Allow(const derp::PublicKey& key) {
    std::lock_guard lock(mu_);
    allowed_.insert(key.ToText());
  }
  // Answers every request with this status and body instead (0: the normal answer).
  void AnswerWith(int status, std::string body) {
    std::lock_guard lock(mu_);
    status_ = status;
    body_ = std::move(body);
  }
  void SetDelay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  // Holds every answer until Release() (bounded: 10 s at most).
  void Hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  int requests() const { return requests_.load(); }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    ++requests_;
    std::unique_lock lock(mu_);
    seen_.push_back({req.method, req.path, req.get_header_value("Content-Type"), req.body});
    cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !held_; });
    const long long delay = delay_ms_.load();
    if (delay > 0) {
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      lock.lock();
    }
    if (status_ != 0) {
      res.status = status_;
      res.set_content(body_, "application/json");
      return;
    }
    const auto json = nlohmann::json::parse(req.body, nullptr, false);
    const bool allow = json.is_object() && json.contains("NodePublic") &&
                       json["NodePublic"].is_string() &&
                       allowed_.contains(json["NodePublic"].get<std::string>());
    res.set_content(allow ? "{\"Allow\":true}\n" : "{\"Allow\":false}\n", "application/json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> allowed_;
  int status_ = 0;
  std::string body_;
  bool held_ = false;
  std::vector<Seen> seen_;
  std::atomic<long long> delay_ms_{0};
  std::atomic<int> requests_{0};
};

// A loopback port with nothing listening on it.
std::uint16_t DeadPort() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// --- connecting ---------------------------------------------------------------------------------

enum class Outcome { kServerInfo, kClosed, kNoAnswer };

// Connects (ClientInfo sent) and reads the first message: ServerInfo when admitted; a refused
// client must see the connection close instead.
asio::awaitable<Outcome> TryConnect(asio::io_context& io, derpclient::ClientOptions opts,
                                    std::string* error) {
  derpclient::Client client(io, std::move(opts));
  auto connected = co_await client.Connect();
  if (!connected) {
    *error = connected.error();
    co_return Outcome::kClosed;
  }
  auto m = co_await client.Recv();
  if (!m) {
    *error = m.error();
    co_return Outcome::kClosed;
  }
  co_return std::holds_alternative<derpclient::ServerInfoMessage>(*m) ? Outcome::kServerInfo
                                                                      : Outcome::kNoAnswer;
}

class Admission : public ::testing::Test {
 protected:
  std::unique_ptr<TestRelay> MakeRelay(std::function<void(relay::AdmissionConfig&)> set) {
    TestRelayOptions o;
    o.tweak = [set](relay::RelayConfig& c) {
      c.admission.worker_threads = 2;
      set(c.admission);
    };
    return std::make_unique<TestRelay>(o);
  }

  Outcome Try(TestRelay& relay, std::uint8_t seed, std::string* error = nullptr) {
    auto opts = relay.ClientOptionsFor();
    opts.key = TestKey(seed);
    std::string ignored;
    return Await(io_, TryConnect(io_, opts, error ? error : &ignored), 15000ms);
  }

  // `seeds` connect at the same time; returns their outcomes in order.
  std::vector<Outcome> TryAll(TestRelay& relay, const std::vector<std::uint8_t>& seeds) {
    std::vector<Outcome> out(seeds.size(), Outcome::kNoAnswer);
    std::vector<std::string> errors(seeds.size());
    int done = 0;
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      auto opts = relay.ClientOptionsFor();
      opts.key = TestKey(seeds[i]);
      asio::co_spawn(io_, TryConnect(io_, opts, &errors[i]),
                     [&out, &done, i](std::exception_ptr, Outcome o) {
                       out[i] = o;
                       ++done;
                     });
    }
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (done < static_cast<int>(seeds.size()) && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(100ms);
    }
    EXPECT_EQ(done, static_cast<int>(seeds.size())) << "every connection attempt ended";
    return out;
  }

  static relay::AdmissionStats Stats(TestRelay& relay) {
    return relay.server().admission().Snapshot();
  }
  static std::uint64_t Refused(TestRelay& relay, Refusal r) {
    return Stats(relay).refused[static_cast<std::size_t>(r)];
  }
  static std::uint64_t Admitted(TestRelay& relay, AdmitVia v) {
    return Stats(relay).admitted[static_cast<std::size_t>(v)];
  }

  // An admitted pair relays a packet.
  void ExpectRelays(TestRelay& relay, std::uint8_t a_seed, std::uint8_t b_seed) {
    auto a_opts = relay.ClientOptionsFor();
    a_opts.key = TestKey(a_seed);
    auto b_opts = relay.ClientOptionsFor();
    b_opts.key = TestKey(b_seed);
    auto a = ConnectClient(io_, a_opts);
    auto b = ConnectClient(io_, b_opts);
    ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("through the relay"))));
    auto got = RecvUntil<derpclient::RecvPacketMessage>(io_, *b);
    EXPECT_EQ(got.src, a->public_key());
    EXPECT_EQ(got.packet, Payload("through the relay"));
  }

  static Bytes Payload(std::string_view s) {
    Bytes b(s.size());
    std::memcpy(b.data(), s.data(), s.size());
    return b;
  }

  struct Reply {
    int status = 0;
    std::string body;
  };
  Reply GetPage(TestRelay& relay, const std::string& target) {
    RawPeer peer(io_, relay.port());
    peer.Send("GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    auto [raw, closed] = peer.ReadUntilClosed();
    Reply r;
    if (raw.rfind("HTTP/1.1 ", 0) != 0) return r;
    r.status = std::stoi(raw.substr(9, 3));
    const auto body_at = raw.find("\r\n\r\n");
    if (body_at != std::string::npos) r.body = raw.substr(body_at + 4);
    return r;
  }

  asio::io_context io_;
};

// --- --verify-clients: tailscaled -------------------------------------------------------------

TEST_F(Admission, TailscaledKnowsTheClientsSoTheyRelay) {
  FakeLocalApi api;
  api.AddNode(TestKey(1).Public().ToText());
  api.AddNode(TestKey(2).Public().ToText());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = api.socket_path();
  });
  ExpectRelays(*relay, 1, 2);
  EXPECT_EQ(api.whois_requests(), 2);
  // The exchange tailscaled's Go client makes (client/local WhoIsNodeKey).
  const auto last = api.last_request();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->method, "GET");
  EXPECT_EQ(last->target, "/localapi/v0/whois?addr=nodekey%3A" + TestKey(2).Public().ToHex());
  EXPECT_EQ(*last->Find("Host"), "local-tailscaled.sock");
  EXPECT_EQ(Admitted(*relay, AdmitVia::kVerifier), 2u);
  EXPECT_EQ(Stats(*relay).tailscaled_requests, 2u);
}

TEST_F(Admission, AKeyTailscaledDoesNotKnowIsClosedBeforeServerInfo) {
  FakeLocalApi api;
  api.AddNode(TestKey(1).Public().ToText());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = api.socket_path();
  });
  std::string error;
  EXPECT_EQ(Try(*relay, 9, &error), Outcome::kClosed);
  EXPECT_EQ(error, "connection closed by the server") << "EOF, not ServerInfo, not a frame";
  EXPECT_TRUE(WaitUntil([&] { return relay->stats().closed(CloseReason::kNotAdmitted) == 1; }));
  EXPECT_EQ(Refused(*relay, Refusal::kNotInTailnet), 1u);
  EXPECT_EQ(relay->stats().current_connections, 0);
  EXPECT_EQ(relay->stats().registry.keys_local, 0u) << "never registered";
  // Refusing one client closes only that connection.
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
}

TEST_F(Admission, TailscaledFailuresFailClosed) {
  FakeLocalApi api;
  api.AddNode(TestKey(1).Public().ToText());
  api.SetWhoisFailure(403, "whois access denied\n");
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = api.socket_path();
    a.tailscaled_timeout = 300ms;
    a.cache_deny_ttl = 0ms;  // every attempt asks again
  });
  EXPECT_EQ(Try(*relay, 1), Outcome::kClosed) << "403 refuses";
  api.SetWhoisFailure(0, "");
  api.SetWhoisDelay(1500ms);
  EXPECT_EQ(Try(*relay, 1), Outcome::kClosed) << "no answer within the timeout refuses";
  EXPECT_EQ(Refused(*relay, Refusal::kTailscaledError), 2u);
  EXPECT_EQ(Admitted(*relay, AdmitVia::kVerifier), 0u);
}

TEST_F(Admission, NoTailscaledAtAllFailsClosed) {
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = "/nonexistent/derpkit-test/tailscaled.sock";
  });
  EXPECT_EQ(Try(*relay, 1), Outcome::kClosed);
  EXPECT_EQ(Refused(*relay, Refusal::kTailscaledError), 1u);
}

TEST_F(Admission, MeshPeersAreNeverAskedAbout) {
  FakeLocalApi api;  // knows nobody
  const std::string mesh_key(64, '7');
  struct TempDir {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("derpkit-admission-mesh-" + std::to_string(::getpid()));
    TempDir() { std::filesystem::create_directories(path); }
    ~TempDir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } temp;
  const std::filesystem::path& dir = temp.path;
  std::ofstream(dir / "mesh.key") << mesh_key << "\n";
  TestRelayOptions o;
  o.tweak = [&](relay::RelayConfig& c) {
    c.mesh_psk_file = (dir / "mesh.key").string();
    c.admission.verify_clients = true;
    c.admission.tailscaled_socket = api.socket_path();
  };
  TestRelay relay(o);
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(5);
  opts.mesh_key = *derp::MeshKey::Parse(mesh_key);
  std::string error;
  EXPECT_EQ(Await(io_, TryConnect(io_, opts, &error)), Outcome::kServerInfo) << error;
  EXPECT_EQ(api.whois_requests(), 0);
  EXPECT_EQ(Try(relay, 6), Outcome::kClosed) << "the same relay refuses an unknown non-mesh key";
  EXPECT_EQ(api.whois_requests(), 1);
}

// --- --verify-client-url: the admission controller ---------------------------------------------

TEST_F(Admission, TheControllerGetsDerpersRequestAndItsAnswerDecides) {
  StandInVerifier verifier;
  verifier.Allow(TestKey(1).Public());
  verifier.Allow(TestKey(2).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) { a.verify_client_url = verifier.url(); });
  ExpectRelays(*relay, 1, 2);
  const auto seen = verifier.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/verify");
  EXPECT_EQ(seen[0].body,
            "{\"NodePublic\":\"" + TestKey(1).Public().ToText() + "\",\"Source\":\"127.0.0.1\"}");
  std::string error;
  EXPECT_EQ(Try(*relay, 3, &error), Outcome::kClosed);
  EXPECT_EQ(error, "connection closed by the server");
  EXPECT_EQ(Refused(*relay, Refusal::kUrlDenied), 1u);
  EXPECT_EQ(Stats(*relay).url_requests, 3u);
}

TEST_F(Admission, ANon200OrUnreadableAnswerRefusesEvenWhenFailingOpen) {
  StandInVerifier verifier;
  verifier.Allow(TestKey(1).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_client_url = verifier.url();
    a.verify_client_url_fail_open = true;
    a.cache_allow_ttl = 0ms;  // every attempt asks again
    a.cache_deny_ttl = 0ms;
  });
  const std::vector<std::pair<int, std::string>> answers = {
      {500, "{\"Allow\":true}"},     // the status decides, not the body
      {403, "forbidden"},            //
      {200, "{\"Allow\":\"yes\"}"},  // not a boolean
      {200, "<html>allowed</html>"},
      {200, "{\"Allow\":tru"},
      {200, "{\"Allow\":true," + std::string(5000, ' ') + "}"},  // past the 4 KiB derper reads
  };
  for (const auto& [status, body] : answers) {
    verifier.AnswerWith(status, body);
    EXPECT_EQ(Try(*relay, 1), Outcome::kClosed) << status << " " << body;
  }
  EXPECT_EQ(Refused(*relay, Refusal::kUrlBadAnswer), answers.size());
  // And the well-formed answers, read as Go's decoder reads them: names in any case, and only
  // the first JSON value.
  verifier.AnswerWith(200, "{\"allow\": true}\n");
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  verifier.AnswerWith(200, "{\"Allow\":true} and then some");
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  verifier.AnswerWith(200, "null");
  EXPECT_EQ(Try(*relay, 1), Outcome::kClosed);
  EXPECT_EQ(Refused(*relay, Refusal::kUrlDenied), 1u);
}

struct Unreachable {
  bool fail_open;
  bool slow;  // a verifier that answers too late, rather than none at all
};

class AdmissionUnreachable : public Admission, public ::testing::WithParamInterface<Unreachable> {};

TEST_P(AdmissionUnreachable, OnlyTransportFailuresFollowTheFailOpenSetting) {
  StandInVerifier verifier;  // would refuse: it allows nobody
  verifier.SetDelay(1500ms);
  const std::string url = GetParam().slow
                              ? verifier.url()
                              : "http://127.0.0.1:" + std::to_string(DeadPort()) + "/verify";
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_client_url = url;
    a.verify_client_url_fail_open = GetParam().fail_open;
    a.url_timeout = 300ms;
  });
  if (GetParam().fail_open) {
    EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
    EXPECT_EQ(Admitted(*relay, AdmitVia::kFailOpen), 1u);
  } else {
    EXPECT_EQ(Try(*relay, 1), Outcome::kClosed);
    EXPECT_EQ(Refused(*relay, Refusal::kUrlUnreachable), 1u);
  }
  // Either way the decision is remembered only briefly (the deny TTL), so a retry at once does
  // not ask again.
  const auto again = Try(*relay, 1);
  EXPECT_EQ(again, GetParam().fail_open ? Outcome::kServerInfo : Outcome::kClosed);
  EXPECT_EQ(Stats(*relay).url_requests, 1u);
  EXPECT_EQ(Stats(*relay).cache_hits, 1u);
}

INSTANTIATE_TEST_SUITE_P(FailOpenAndClosed, AdmissionUnreachable,
                         ::testing::Values(Unreachable{true, false}, Unreachable{false, false},
                                           Unreachable{true, true}, Unreachable{false, true}),
                         [](const auto& info) {
                           return std::string(info.param.fail_open ? "FailOpen" : "FailClosed") +
                                  (info.param.slow ? "SlowVerifier" : "DeadVerifier");
                         });

TEST_F(Admission, BothChecksRunInDerpersOrder) {
  FakeLocalApi api;
  api.AddNode(TestKey(1).Public().ToText());
  api.AddNode(TestKey(2).Public().ToText());
  StandInVerifier verifier;
  verifier.Allow(TestKey(1).Public());
  verifier.Allow(TestKey(3).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = api.socket_path();
    a.verify_client_url = verifier.url();
  });
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo) << "both say yes";
  EXPECT_EQ(Try(*relay, 2), Outcome::kClosed) << "tailscaled yes, controller no";
  EXPECT_EQ(Try(*relay, 3), Outcome::kClosed) << "tailscaled no: the controller is not asked";
  EXPECT_EQ(api.whois_requests(), 3);
  EXPECT_EQ(verifier.requests(), 2);
}

// --- load bounds
// ----------------------------------------------------------------------------------

TEST_F(Admission, TheCacheBoundsTheVerifiersLoadInAReconnectStorm) {
  StandInVerifier verifier;
  verifier.Allow(TestKey(1).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) { a.verify_client_url = verifier.url(); });
  // One client reconnecting ten times: one request.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  EXPECT_EQ(verifier.requests(), 1);
  // A refused client hammering the relay: one request too (the refusal is cached for 5 s).
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Try(*relay, 2), Outcome::kClosed);
  EXPECT_EQ(verifier.requests(), 2);
  // Twenty connections of one new key at once, while the verifier takes its time: one request
  // (the rest wait for it or find its answer cached).
  verifier.Allow(TestKey(3).Public());
  verifier.Hold();
  std::thread release([&] {
    WaitUntil([&] { return verifier.requests() == 3; });
    verifier.Release();
  });
  const auto outcomes = TryAll(*relay, std::vector<std::uint8_t>(20, 3));
  release.join();
  for (Outcome o : outcomes) EXPECT_EQ(o, Outcome::kServerInfo);
  EXPECT_EQ(verifier.requests(), 3);
  const auto s = Stats(*relay);
  EXPECT_EQ(s.url_requests, 3u);
  EXPECT_EQ(s.admitted[static_cast<std::size_t>(AdmitVia::kVerifier)] +
                s.admitted[static_cast<std::size_t>(AdmitVia::kCache)],
            30u);
  EXPECT_EQ(s.cache_entries, 3);
}

TEST_F(Admission, BeyondTheInFlightBoundClientsAreRefusedAtOnce) {
  StandInVerifier verifier;
  for (std::uint8_t seed : {1, 2, 3}) verifier.Allow(TestKey(seed).Public());
  verifier.Hold();
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_client_url = verifier.url();
    a.max_in_flight = 1;
    a.url_timeout = 12000ms;
  });
  // The first verification is held by the verifier until both others have been refused.
  std::thread release([&] {
    WaitUntil([&] { return Refused(*relay, Refusal::kOverloaded) == 2; }, 10000ms);
    verifier.Release();
  });
  const auto outcomes = TryAll(*relay, {1, 2, 3});
  release.join();
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), Outcome::kServerInfo), 1);
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), Outcome::kClosed), 2);
  EXPECT_EQ(Refused(*relay, Refusal::kOverloaded), 2u);
  EXPECT_EQ(verifier.requests(), 1);
  EXPECT_EQ(Stats(*relay).in_flight, 0);
  // Overload is not cached: the refused clients get in when they retry.
  for (std::uint8_t seed : {1, 2, 3}) EXPECT_EQ(Try(*relay, seed), Outcome::kServerInfo);
}

// --- --allow-keys-file
// ------------------------------------------------------------------------------

class AllowKeys : public Admission {
 protected:
  AllowKeys()
      : dir_(std::filesystem::temp_directory_path() /
             ("derpkit-allow-keys-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
  }
  ~AllowKeys() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  // Writes the file as editors and config tools do: a new file renamed over the old one.
  void Write(const std::string& text) {
    const auto tmp = dir_ / "allow.keys.tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path());
  }
  std::string path() const { return (dir_ / "allow.keys").string(); }
  static std::string Line(std::uint8_t seed) { return TestKey(seed).Public().ToText() + "\n"; }

  std::filesystem::path dir_;
};

TEST_F(AllowKeys, ListedKeysGetInWithoutAskingAndChangesApplyWithoutARestart) {
  Write("# the prober\n" + Line(1));
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.allow_keys_file = path();
    a.allow_keys_poll_interval = 50ms;
  });
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  EXPECT_EQ(Try(*relay, 2), Outcome::kClosed) << "alone, the file is the whole policy";
  EXPECT_EQ(Refused(*relay, Refusal::kNotInAllowKeysFile), 1u);

  Write("# the prober\n" + Line(1) + Line(2) + "  # bob's laptop\n");
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).allow_keys.reloads == 1; }));
  EXPECT_EQ(Stats(*relay).allow_keys.keys, 2u);
  ExpectRelays(*relay, 1, 2);

  // A broken version keeps the keys in force and says where it is broken.
  { std::ofstream(path(), std::ios::app) << "nodekey:123\n"; }
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).allow_keys.reload_errors == 1; }));
  EXPECT_EQ(Try(*relay, 2), Outcome::kServerInfo);
  const auto check = GetPage(*relay, "/debug/check");
  EXPECT_EQ(check.status, 500);
  EXPECT_NE(check.body.find("--allow-keys-file " + path() + ": line 5: want nodekey:"),
            std::string::npos)
      << check.body;

  // Removing a key takes effect too.
  Write(Line(1));
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).allow_keys.reloads == 2; }));
  EXPECT_EQ(Try(*relay, 2), Outcome::kClosed);
  EXPECT_EQ(GetPage(*relay, "/debug/check").status, 200);
}

TEST_F(AllowKeys, ListedKeysSkipTheVerifiersWhichDecideForEveryoneElse) {
  Write(Line(1));
  StandInVerifier verifier;
  verifier.Allow(TestKey(2).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.allow_keys_file = path();
    a.verify_client_url = verifier.url();
  });
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  EXPECT_EQ(verifier.requests(), 0);
  EXPECT_EQ(Try(*relay, 2), Outcome::kServerInfo);
  EXPECT_EQ(Try(*relay, 3), Outcome::kClosed);
  EXPECT_EQ(verifier.requests(), 2);
  EXPECT_EQ(Admitted(*relay, AdmitVia::kAllowKeysFile), 1u);
}

TEST_F(AllowKeys, ABadFileAtStartUpStopsTheRelayWithTheLine) {
  Write(Line(1) + "privkey:" + std::string(64, 'a') + "\n");
  relay::RelayConfig c;
  c.addr = "127.0.0.1:0";
  c.key_file = (dir_ / "derper.key").string();
  c.stun = false;
  c.workers = 1;
  c.admission.allow_keys_file = path();
  ASSERT_TRUE(c.Validate());
  try {
    relay::Server server(c, TestKey(1));
    ADD_FAILURE() << "the relay was built";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--allow-keys-file " + path() +
                  ": line 2: this is a private key (privkey:...): list node public keys "
                  "(nodekey:...) only, and treat that private key as leaked");
  }
}

// --- /debug/check and metrics -------------------------------------------------------------------

TEST_F(Admission, DebugCheckSaysWhetherVerificationWorks) {
  FakeLocalApi api;
  api.SetSelf(TestKey(40).Public().ToText());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) {
    a.verify_clients = true;
    a.tailscaled_socket = api.socket_path();
    a.tailscaled_timeout = 500ms;
  });
  auto ok = GetPage(*relay, "/debug/check");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "derp.Server ConsistencyCheck okay\nclient verification okay");
  EXPECT_EQ(api.status_requests(), 1);
  EXPECT_EQ(Stats(*relay).tailscaled_requests, 0u) << "a check is not an admission";

  api.RemoveNode(TestKey(40).Public().ToText());
  auto refused = GetPage(*relay, "/debug/check");
  EXPECT_EQ(refused.status, 500);
  EXPECT_EQ(refused.body, "client verification: tailscaled's own node " +
                              TestKey(40).Public().ToText() +
                              " does not pass whois: not found in local tailscaled");

  api.SetWhoisDelay(1500ms);
  auto slow = GetPage(*relay, "/debug/check");
  EXPECT_EQ(slow.status, 500);
  EXPECT_NE(slow.body.find("no answer from tailscaled within 500 ms"), std::string::npos)
      << slow.body;
}

TEST_F(Admission, DebugCheckAsksAControllerForAWellFormedAnswer) {
  StandInVerifier verifier;  // allows nobody, which is a fine answer
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) { a.verify_client_url = verifier.url(); });
  EXPECT_EQ(GetPage(*relay, "/debug/check").status, 200);
  verifier.AnswerWith(502, "bad gateway");
  auto bad = GetPage(*relay, "/debug/check");
  EXPECT_EQ(bad.status, 500);
  EXPECT_EQ(bad.body,
            "client verification: admission controller answered HTTP 502 Bad Gateway: "
            "bad gateway");
}

// The value of one series in a Prometheus text exposition, or -1 when it is missing.
double Series(const std::string& text, const std::string& series) {
  std::size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST_F(Admission, EverySeriesExistsAtZeroAndCountsMove) {
  StandInVerifier verifier;
  verifier.Allow(TestKey(1).Public());
  auto relay = MakeRelay([&](relay::AdmissionConfig& a) { a.verify_client_url = verifier.url(); });
  const std::string before = GetPage(*relay, "/debug/varz").body;
  for (auto reason : relay::kRefusalLabel) {
    EXPECT_EQ(
        Series(before, "derp_admission_refusals_total{reason=\"" + std::string(reason) + "\"}"), 0)
        << reason;
  }
  for (auto via : relay::kAdmitViaLabel) {
    EXPECT_EQ(Series(before, "derp_admission_admitted_total{via=\"" + std::string(via) + "\"}"), 0)
        << via;
  }
  EXPECT_EQ(Series(before, "derp_connections_closed_total{reason=\"not_admitted\"}"), 0);
  EXPECT_EQ(Series(before, "derp_admission_allow_keys_reloads_total{result=\"error\"}"), 0);
  EXPECT_EQ(Series(before, "derp_admission_in_flight"), 0);
  EXPECT_EQ(Try(*relay, 1), Outcome::kServerInfo);
  EXPECT_EQ(Try(*relay, 2), Outcome::kClosed);
  EXPECT_EQ(Try(*relay, 2), Outcome::kClosed);
  ASSERT_TRUE(WaitUntil([&] { return relay->stats().closed(CloseReason::kNotAdmitted) == 2; }));
  const std::string after = GetPage(*relay, "/debug/varz").body;
  EXPECT_EQ(Series(after, "derp_admission_admitted_total{via=\"verifier\"}"), 1);
  EXPECT_EQ(Series(after, "derp_admission_refusals_total{reason=\"url_denied\"}"), 2);
  EXPECT_EQ(Series(after, "derp_admission_cache_hits_total"), 1);
  EXPECT_EQ(Series(after, "derp_admission_cache_entries"), 2);
  EXPECT_EQ(Series(after, "derp_admission_verifier_requests_total{verifier=\"url\"}"), 2);
  EXPECT_EQ(Series(after, "derp_admission_verifier_requests_total{verifier=\"tailscaled\"}"), 0);
  EXPECT_EQ(Series(after, "derp_connections_closed_total{reason=\"not_admitted\"}"), 2);
}

// --- the pieces, without a relay ----------------------------------------------------------------

TEST(AdmissionCodec, TheRequestIsDerpersJson) {
  EXPECT_EQ(relay::AdmitRequestJson(TestKey(1).Public(), "2001:db8::1"),
            "{\"NodePublic\":\"" + TestKey(1).Public().ToText() + "\",\"Source\":\"2001:db8::1\"}");
  EXPECT_EQ(relay::AdmitRequestJson(TestKey(1).Public(), ""),
            "{\"NodePublic\":\"" + TestKey(1).Public().ToText() + "\",\"Source\":\"\"}");
}

TEST(AdmissionCodec, AnswersAreReadAsGoReadsThem) {
  const std::vector<std::pair<std::string, bool>> allowed = {
      {"{\"Allow\":true}", true},
      {"{\"Allow\":false}", false},
      {" {\"ALLOW\": true} \n", true},
      {"{}", false},
      {"null", false},
      {"{\"Allow\":null}", false},
      {"{\"Allow\":true}{\"x\":1}", true},
      {"{\"Other\":1,\"allow\":true}", true},
  };
  for (const auto& [body, want] : allowed) {
    auto got = relay::ParseAdmitResponse(body);
    ASSERT_TRUE(got) << body << ": " << got.error();
    EXPECT_EQ(*got, want) << body;
  }
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"", "the body is not JSON"},
      {"{\"Allow\":", "the body is not JSON"},
      {"true", "the body is not a JSON object"},
      {"[{\"Allow\":true}]", "the body is not a JSON object"},
      {"{\"Allow\":1}", "\"Allow\" is not true or false"},
      {"{\"Allow\":\"true\"}", "\"Allow\" is not true or false"},
  };
  for (const auto& [body, want] : refused) {
    auto got = relay::ParseAdmitResponse(body);
    ASSERT_FALSE(got) << body;
    EXPECT_EQ(got.error(), want) << body;
  }
}

}  // namespace
}  // namespace derpkit::testing
