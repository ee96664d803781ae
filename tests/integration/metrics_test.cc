// The relay's /debug/varz exposition, rendered in-process after real traffic on loopback: every
// counter a scenario moves moves by the expected amount, every labelled series exists at 0 from
// the start, every family is documented in README.md, and promtool finds nothing to complain
// about. Nothing here asserts how fast anything was: time-dependent values are bracketed by this
// test's own clock reads taken before and after the event, which hold on any machine.
#include "relay/metrics.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lib/stun/stun.h"
#include "relay/http_routes.h"
#include "tests/support/raw_peer.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::PeerGoneMessage;
using derpclient::PongMessage;
using derpclient::RecvPacketMessage;
using relay::CloseReason;
using relay::DropReason;
using SteadyClock = std::chrono::steady_clock;

// Seconds between two steady clock reads, as a double like the exposition's values.
double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// The exposition prints 16 significant digits, so a value read back may differ from the exact
// one in its last digit: a microsecond of slack covers that (not the machine's speed).
constexpr double kPrintedSlackSeconds = 1e-6;

// Splits `text` into lines (without the '\n').
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return lines;
}

// The samples of an exposition by series as printed ("name" or `name{k="v",...}`).
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> out;
  for (const std::string& line : Lines(text)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    if (space == std::string::npos) {
      ADD_FAILURE() << "not a sample line: " << line;
      continue;
    }
    const std::string value = line.substr(space + 1);
    out[line.substr(0, space)] = value == "+Inf" ? HUGE_VAL : std::stod(value);
  }
  return out;
}

// One rendering of a relay's metrics, parsed.
class Scrape {
 public:
  explicit Scrape(TestRelay& relay)
      : text_(relay::RenderPrometheus(relay.server())), samples_(ParseSamples(text_)) {}
  // The value of one series; a missing series fails the test and reads as -1.
  double operator[](const std::string& series) const {
    auto it = samples_.find(series);
    if (it == samples_.end()) {
      ADD_FAILURE() << "no series " << series;
      return -1;
    }
    return it->second;
  }
  bool Has(const std::string& series) const { return samples_.count(series) != 0; }
  const std::string& text() const { return text_; }
  const std::map<std::string, double>& samples() const { return samples_; }

 private:
  std::string text_;
  std::map<std::string, double> samples_;
};

std::string Drop(std::string_view reason, std::string_view kind) {
  return "derp_packets_dropped_total{reason=\"" + std::string(reason) + "\",kind=\"" +
         std::string(kind) + "\"}";
}

std::string DropBytes(std::string_view reason, std::string_view kind) {
  return "derp_bytes_dropped_total{reason=\"" + std::string(reason) + "\",kind=\"" +
         std::string(kind) + "\"}";
}

// Runs `promtool check metrics` on `text`; returns its exit status and everything it printed.
std::pair<int, std::string> Promtool(const std::string& text) {
  char path[] = "/tmp/derpkit-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return {-1, "mkstemp failed"};
  ::close(fd);
  std::ofstream(path) << text;
  const std::string cmd = std::string("timeout 30 promtool check metrics < ") + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  if (p != nullptr) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  }
  const int status = p != nullptr ? ::pclose(p) : -1;
  std::remove(path);
  return {status, out};
}

// promtool exits 0 and prints nothing: no errors and no lint warnings either.
void ExpectPromtoolClean(const std::string& text) {
  const auto [status, out] = Promtool(text);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "") << "promtool check metrics:\n" << out;
}

TestRelayOptions Options(bool tls, int workers, bool stun = false,
                         std::function<void(relay::RelayConfig&)> tweak = nullptr) {
  TestRelayOptions o;
  o.tls = tls;
  o.workers = workers;
  o.stun = stun;
  o.tweak = std::move(tweak);
  return o;
}

class RelayMetrics : public ::testing::Test {
 protected:
  std::unique_ptr<derpclient::Client> Connect(TestRelay& relay, std::uint8_t seed,
                                              bool websocket = false) {
    auto opts = relay.ClientOptionsFor();
    opts.key = TestKey(seed);
    opts.can_ack_pings = true;
    opts.websocket = websocket;
    return ConnectClient(io_, opts);
  }

  asio::io_context io_;
};

TEST_F(RelayMetrics, EveryLabelledSeriesExistsAtZeroBeforeAnyTraffic) {
  TestRelay relay{Options(false, 2, true)};
  const Scrape s(relay);
  for (auto reason : relay::kDropReasonLabel) {
    for (auto kind : relay::kPacketKindLabel) {
      EXPECT_EQ(s[Drop(reason, kind)], 0) << reason << " " << kind;
      EXPECT_EQ(s[DropBytes(reason, kind)], 0) << reason << " " << kind;
    }
  }
  for (auto kind : relay::kPacketKindLabel) {
    EXPECT_EQ(s["derp_packets_received_total{kind=\"" + std::string(kind) + "\"}"], 0);
  }
  for (auto reason : relay::kCloseReasonLabel) {
    EXPECT_EQ(s["derp_connections_closed_total{reason=\"" + std::string(reason) + "\"}"], 0);
  }
  for (auto reason : {"handshake_timeout", "tls_error", "bad_proxy_header", "bad_http",
                      "head_too_large", "bad_client_info", "frame_before_handshake"}) {
    EXPECT_EQ(s["derp_handshake_failures_total{reason=\"" + std::string(reason) + "\"}"], 0);
  }
  for (auto d : relay::kStunDispositionLabel) {
    EXPECT_EQ(s["stun_requests_total{disposition=\"" + std::string(d) + "\"}"], 0);
  }
  for (auto f : relay::kStunAddrFamilyLabel) {
    EXPECT_EQ(s["stun_addrfamily_total{family=\"" + std::string(f) + "\"}"], 0);
  }
  for (std::size_t i = 0; i < relay::kRouteIdCount; ++i) {
    EXPECT_EQ(s["derp_http_requests_total{route=\"" +
                std::string(relay::RouteName(static_cast<relay::RouteId>(i))) + "\"}"],
              0);
  }
  for (auto reason : {"disconnected", "not_here"}) {
    EXPECT_EQ(s["derp_peer_gone_frames_total{reason=\"" + std::string(reason) + "\"}"], 0);
  }
  for (auto version : {"1.2", "1.3"}) {
    EXPECT_EQ(s["derper_tls_request_version_total{version=\"" + std::string(version) + "\"}"], 0);
  }
  EXPECT_EQ(s["derp_tls13_record_layer_connections_total"], 0);
  for (auto shard : {"0", "1"}) {
    EXPECT_EQ(s["derp_shard_connections{shard=\"" + std::string(shard) + "\"}"], 0);
    EXPECT_EQ(s["derp_shard_packets_received_total{shard=\"" + std::string(shard) + "\"}"], 0);
    // The thread's CPU time as of its ticker's last read: there from the start, never negative.
    const std::string cpu = "derp_shard_cpu_seconds_total{shard=\"" + std::string(shard) + "\"}";
    EXPECT_TRUE(s.Has(cpu));
    EXPECT_GE(s[cpu], 0);
  }
  EXPECT_FALSE(s.Has("derp_shard_connections{shard=\"2\"}")) << "two workers, two shards";
  EXPECT_EQ(s["derp_queue_duration_seconds_count"], 0);
  EXPECT_EQ(s["derp_queue_duration_seconds_bucket{le=\"+Inf\"}"], 0);
  EXPECT_EQ(s["stun_response_duration_seconds_count"], 0);
  EXPECT_FALSE(s.Has("derp_mesh_link_up")) << "no mesh peers, no mesh series";
  ExpectPromtoolClean(s.text());
}

// Every family, with a mesh peer so that the per-peer families exist too: HELP text, _total on
// counters and only there, and a row in README.md's Metrics section for people moving charts.
TEST_F(RelayMetrics, EveryFamilyHasHelpTheRightSuffixAndARowInTheReadme) {
  TestRelay relay{Options(false, 1, true)};
  relay.server().AddMeshPeers({"http://127.0.0.1:1/derp"});  // nothing listens: the link is down
  const Scrape s(relay);
  EXPECT_EQ(s["derp_mesh_link_up{peer=\"http://127.0.0.1:1/derp\"}"], 0);

  std::map<std::string, std::string> type_of;
  std::map<std::string, bool> has_help;
  for (const std::string& line : Lines(s.text())) {
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      ASSERT_NE(space, std::string::npos) << line;
      EXPECT_GT(rest.size(), space + 1) << "empty HELP: " << line;
      has_help[rest.substr(0, space)] = true;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::size_t space = rest.find(' ');
      type_of[rest.substr(0, space)] = rest.substr(space + 1);
    }
  }

  std::ifstream in(std::string(DERPKIT_SOURCE_DIR) + "/README.md");
  const std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t section = readme.find("\n## Metrics\n");
  ASSERT_NE(section, std::string::npos) << "README.md has a Metrics section";
  const std::string doc = readme.substr(section);

  EXPECT_EQ(type_of.size(), 82u) << "a new family needs a README row and this count updated";
  for (const auto& [name, type] : type_of) {
    EXPECT_TRUE(has_help[name]) << name;
    EXPECT_EQ(type == "counter", name.ends_with("_total")) << name << " is a " << type;
    const bool documented = doc.find("`" + name + "`") != std::string::npos ||
                            doc.find("`" + name + "{") != std::string::npos;
    EXPECT_TRUE(documented) << name << " is missing from README.md's Metrics section";
  }
  ExpectPromtoolClean(s.text());
}

TEST_F(RelayMetrics, PacketsPingsAndPeerGoneMoveTheirCounters) {
  TestRelay relay{Options(false, 2)};
  const auto a_connecting = SteadyClock::now();
  auto a = Connect(relay, 1);
  auto b = Connect(relay, 2);
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().current_connections == 2; }));
  {
    const Scrape s(relay);
    EXPECT_EQ(s["derp_accepts_total"], 2);
    EXPECT_EQ(s["derp_current_connections"], 2);
    EXPECT_EQ(s["derp_clients_local"], 2);
    EXPECT_EQ(s["derp_clients"], 2);
    EXPECT_EQ(s["derp_shard_connections{shard=\"0\"}"] + s["derp_shard_connections{shard=\"1\"}"],
              2);
  }

  // B -> A first, so that A hears PeerGone(disconnected) when B leaves.
  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("hello A"))));
  RecvUntil<RecvPacketMessage>(io_, *a);
  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("hello B!"))));
  RecvUntil<RecvPacketMessage>(io_, *b);
  ASSERT_FALSE(Await(io_, a->SendPing(derp::PingData{})));
  RecvUntil<PongMessage>(io_, *a);
  const auto unknown = TestKey(99).Public();
  ASSERT_FALSE(Await(io_, a->SendPacket(unknown, DiscoPayload())));
  EXPECT_EQ(RecvUntil<PeerGoneMessage>(io_, *a).reason, derp::PeerGoneReason::kNotHere);
  ASSERT_FALSE(Await(io_, a->SendPacket(unknown, Payload("plain"))));
  ASSERT_FALSE(Await(io_, a->NotePreferred(true)));
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().home_connections == 1; }));
  // The relay saw A's NotePreferred at most this long after A connected.
  const auto a_noted_within = SteadyClock::now() - a_connecting;
  b->Close();
  EXPECT_EQ(RecvUntil<PeerGoneMessage>(io_, *a).reason, derp::PeerGoneReason::kDisconnected);
  ASSERT_TRUE(WaitUntil([&] {
    const auto st = relay.stats();
    return st.current_connections == 1 && st.packets_sent == 2 &&
           st.dropped(DropReason::kUnknownDest) == 2;
  }));

  const Scrape s(relay);
  EXPECT_EQ(s["derp_packets_received_total{kind=\"other\"}"], 3);
  EXPECT_EQ(s["derp_packets_received_total{kind=\"disco\"}"], 1);
  EXPECT_EQ(s["derp_bytes_received_total"], 7 + 8 + 70 + 5);
  EXPECT_EQ(s["derp_packets_sent_total"], 2);
  EXPECT_EQ(s["derp_bytes_sent_total"], 7 + 8);
  EXPECT_EQ(s[Drop("unknown_dest", "disco")], 1);
  EXPECT_EQ(s[Drop("unknown_dest", "other")], 1);
  EXPECT_EQ(s[DropBytes("unknown_dest", "disco")], 70);
  EXPECT_EQ(s[DropBytes("unknown_dest", "other")], 5);
  EXPECT_EQ(s[Drop("queue_head", "other")], 0);
  EXPECT_EQ(s["derp_got_ping_total"], 1);
  EXPECT_EQ(s["derp_sent_pong_total"], 1);
  EXPECT_EQ(s["derp_peer_gone_frames_total{reason=\"not_here\"}"], 1);
  EXPECT_EQ(s["derp_peer_gone_frames_total{reason=\"disconnected\"}"], 1);
  EXPECT_EQ(s["derp_current_home_connections"], 1);
  if (a_noted_within <= 5s) {
    EXPECT_EQ(s["derp_home_moves_in_total"], 0) << "within 5 s of connecting: settling, not a move";
  }  // else this machine was too slow to tell; HomeMovesCountOnlyAfterTheSettlingWindow tells
  EXPECT_EQ(s["derp_home_moves_out_total"], 0);
  EXPECT_EQ(s["derp_current_connections"], 1);
  EXPECT_EQ(s["derp_connections_closed_total{reason=\"peer_closed\"}"], 1);
  EXPECT_EQ(s["derp_connection_duration_seconds_count"], 1);
  EXPECT_EQ(s["derp_queue_duration_seconds_count"], 2) << "one observation per delivered packet";
  EXPECT_GE(s["derp_frames_per_write_count"], 1);
  EXPECT_EQ(s["derp_shard_packets_received_total{shard=\"0\"}"] +
                s["derp_shard_packets_received_total{shard=\"1\"}"],
            4);
  EXPECT_EQ(s["derp_shard_packets_sent_total{shard=\"0\"}"] +
                s["derp_shard_packets_sent_total{shard=\"1\"}"],
            2);
  EXPECT_EQ(s["derp_shard_cross_shard_packets_total{shard=\"0\"}"] +
                s["derp_shard_cross_shard_packets_total{shard=\"1\"}"],
            2)
      << "round robin put A and B on different shards";
  ExpectPromtoolClean(s.text());
}

// derper's rule: a NotePreferred change more than 5 s after connecting is a home move (in or
// out); earlier ones are a client settling. The relay's "since connecting" is bracketed by this
// test's clock reads: one client waits out the window for certain, and the other's NotePreferred
// is checked against the window only when the bracket shows it came inside it.
TEST_F(RelayMetrics, HomeMovesCountOnlyAfterTheSettlingWindow) {
  TestRelay relay{Options(false, 1)};
  auto settled = Connect(relay, 1);
  // The relay stamps a connection when it accepts it, before the handshake Connect waited for.
  const auto settled_connected_before = SteadyClock::now();
  // Not a readiness wait: the window passing is the behaviour under test (the relay reads the
  // real clock, so there is no clock to inject).
  std::this_thread::sleep_until(settled_connected_before + 5s + 50ms);

  const auto fresh_connecting = SteadyClock::now();
  auto fresh = Connect(relay, 2);
  ASSERT_FALSE(Await(io_, fresh->NotePreferred(true)));
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().home_connections == 1; }));
  const auto fresh_noted_within = SteadyClock::now() - fresh_connecting;

  ASSERT_FALSE(Await(io_, settled->NotePreferred(true)));
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().home_connections == 2; }));
  ASSERT_FALSE(Await(io_, settled->NotePreferred(false)));
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().home_connections == 1; }));

  const Scrape s(relay);
  EXPECT_EQ(s["derp_current_home_connections"], 1);
  EXPECT_EQ(s["derp_home_moves_out_total"], 1) << "the settled client left home after 5 s";
  if (fresh_noted_within <= 5s) {
    EXPECT_EQ(s["derp_home_moves_in_total"], 1)
        << "the settled client's move counts; the fresh one was settling";
  } else {
    EXPECT_GE(s["derp_home_moves_in_total"], 1) << "the settled client's move counts";
  }
}

TEST_F(RelayMetrics, ANonReadingClientCostsQueueHeadDropsThenAWriteTimeout) {
  TestRelay relay{
      Options(false, 1, false, [](relay::RelayConfig& c) { c.tcp_write_timeout = 500ms; })};
  auto sender = Connect(relay, 1);
  auto stuck = Connect(relay, 2);  // never reads again
  const Bytes big(1200, std::byte{0x42});
  for (int i = 0; i < 40000 && relay.stats().write_timeouts == 0; ++i) {
    ASSERT_FALSE(Await(io_, sender->SendPacket(stuck->public_key(), big)));
  }
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kWriteTimeout) == 1; }));

  const Scrape s(relay);
  EXPECT_GT(s[Drop("queue_head", "other")], 0);
  EXPECT_EQ(s[Drop("queue_head", "disco")], 0);
  EXPECT_EQ(s[DropBytes("queue_head", "other")], 1200 * s[Drop("queue_head", "other")]);
  EXPECT_GE(s["derp_write_timeouts_total"], 1);
  EXPECT_EQ(s["derp_connections_closed_total{reason=\"write_timeout\"}"], 1);
  // The queue was full: delivered packets had waited.
  EXPECT_GT(s["derp_queue_duration_seconds_sum"], 0);
  ExpectPromtoolClean(s.text());
}

TEST_F(RelayMetrics, WebSocketAcceptsAndHttpRequestsAreCounted) {
  TestRelay relay{Options(false, 1)};
  auto ws = Connect(relay, 1, /*websocket=*/true);
  RawPeer http(io_, relay.port());
  http.Send("GET /generate_204 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(http.ReadUntilClosed().second);
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().http_requests == 1; }));

  const Scrape s(relay);
  EXPECT_EQ(s["derp_websocket_accepts_total"], 1);
  EXPECT_EQ(s["derp_accepts_total"], 1);
  EXPECT_EQ(s["derp_tcp_accepts_total"], 2);
  EXPECT_EQ(s["derp_http_requests_total{route=\"generate_204\"}"], 1);
  EXPECT_EQ(s["derp_http_requests_total{route=\"derp\"}"], 0) << "upgrades are not requests";
}

TEST_F(RelayMetrics, StunDispositionsFamiliesAndLatencyAreCounted) {
  TestRelay relay{Options(false, 1, true)};
  asio::ip::udp::socket udp(io_, asio::ip::udp::endpoint(asio::ip::udp::v4(), 0));
  const asio::ip::udp::endpoint to(asio::ip::make_address("127.0.0.1"), relay.server().stun_port());
  stun::TxId txid;
  txid.bytes.fill(std::byte{0x5a});
  const Bytes request = stun::BuildBindingRequest(txid);
  const auto sent_at = SteadyClock::now();
  udp.send_to(asio::buffer(request.data(), request.size()), to);
  auto receive = [&]() -> asio::awaitable<std::size_t> {
    std::array<std::byte, 512> buf;
    auto [ec, n] = co_await udp.async_receive(asio::buffer(buf), net::kAsTuple);
    co_return ec ? 0 : n;
  };
  EXPECT_GT(Await(io_, receive()), 0u) << "the relay answers a Tailscale binding request";
  // The relay timed its answer between reading our request and sending the reply, both inside
  // this window.
  const double round_trip_seconds = Seconds(SteadyClock::now() - sent_at);
  udp.send_to(asio::buffer(std::string_view("not a STUN request")), to);
  ASSERT_TRUE(WaitUntil([&] {
    return relay.server().stun_stats().Snapshot().Requests(relay::StunDisposition::kNotStun) == 1;
  }));

  const Scrape s(relay);
  EXPECT_EQ(s["stun_requests_total{disposition=\"success\"}"], 1);
  EXPECT_EQ(s["stun_requests_total{disposition=\"not_stun\"}"], 1);
  EXPECT_EQ(s["stun_requests_total{disposition=\"write_error\"}"], 0);
  EXPECT_EQ(s["stun_addrfamily_total{family=\"ipv4\"}"], 1);
  EXPECT_EQ(s["stun_addrfamily_total{family=\"ipv6\"}"], 0);
  EXPECT_EQ(s["stun_response_duration_seconds_count"], 1) << "one per reply, none for not_stun";
  EXPECT_GT(s["stun_response_duration_seconds_sum"], 0);
  EXPECT_LE(s["stun_response_duration_seconds_sum"], round_trip_seconds + kPrintedSlackSeconds);
  ExpectPromtoolClean(s.text());
}

TEST_F(RelayMetrics, TlsHandshakesAreCountedByVersionAndFailure) {
  TestRelay relay{Options(true, 1)};
  auto a = Connect(relay, 1);
  RawPeer plain(io_, relay.port());
  plain.Send("GET /derp HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_TRUE(plain.ReadUntilClosed().second);
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().closed(CloseReason::kTlsError) == 1; }));

  const Scrape s(relay);
  EXPECT_EQ(s["derper_tls_request_version_total{version=\"1.3\"}"], 1);
  EXPECT_EQ(s["derper_tls_request_version_total{version=\"1.2\"}"], 0);
  EXPECT_EQ(s["derp_tls13_record_layer_connections_total"], 1) << "handed to Tls13Stream";
  // derper's names count the accept limit (none here), not handshakes: both connections passed.
  EXPECT_EQ(s["tls_listener_accepted_connections_total"], 2);
  EXPECT_EQ(s["tls_listener_rejected_connections_total"], 0);
  EXPECT_EQ(s["derp_handshake_failures_total{reason=\"tls_error\"}"], 1);
  EXPECT_EQ(s["derp_connections_closed_total{reason=\"tls_error\"}"], 1);
  ExpectPromtoolClean(s.text());
}

TEST_F(RelayMetrics, MeshLinkStateIsExportedPerPeer) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("derpkit-metrics-mesh-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string key_file = (dir / "mesh.key").string();
  std::ofstream(key_file) << "f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805\n";
  auto meshed = [&](relay::RelayConfig& c) { c.mesh_psk_file = key_file; };
  TestRelay here{Options(false, 1, false, meshed)};
  auto there = std::make_unique<TestRelay>(Options(false, 1, false, meshed));
  const std::string peer = there->url();
  here.server().AddMeshPeers({peer});
  const std::string label = "{peer=\"" + peer + "\"}";
  auto link_connected = [&] { return here.server().mesh_links()[0]->stats().connected.load(); };
  ASSERT_TRUE(WaitUntil(link_connected, 10000ms));

  auto remote = Connect(*there, 7);
  auto local = Connect(here, 8);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return here.server().registry().Lookup(remote->public_key()) ==
               relay::Registry::Reach::kMesh;
      },
      10000ms));
  ASSERT_FALSE(Await(io_, local->SendPacket(remote->public_key(), Payload("via the mesh"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *remote).packet, Payload("via the mesh"));
  // The link counts after its write completes, which may be after the packet arrived.
  ASSERT_TRUE(WaitUntil([&] {
    return here.server().mesh_links()[0]->stats().forwarded.load() == 1 &&
           here.stats().packets_forwarded_out == 1;
  }));
  {
    const Scrape s(here);
    EXPECT_EQ(s["derp_mesh_link_up" + label], 1);
    EXPECT_EQ(s["derp_mesh_link_connects_total" + label], 1);
    EXPECT_EQ(s["derp_mesh_link_disconnects_total" + label], 0);
    EXPECT_EQ(s["derp_mesh_link_forwarded_packets_total" + label], 1);
    EXPECT_EQ(s["derp_mesh_link_dropped_packets_total" + label], 0);
    // The peer reports every key connected to it: the client, and this relay's own link (as
    // derper does).
    EXPECT_EQ(s["derp_mesh_link_keys" + label], 2);
    EXPECT_EQ(s["derp_clients_local"], 1);
    EXPECT_EQ(s["derp_clients_remote"], 2);
    EXPECT_EQ(s["derp_clients"], 3);
    EXPECT_EQ(s["derp_packets_forwarded_out_total"], 1);
    ExpectPromtoolClean(s.text());
    const Scrape t(*there);
    EXPECT_EQ(t["derp_watchers"], 1);
    EXPECT_EQ(t["derp_packets_forwarded_in_total"], 1);
  }

  remote.reset();
  there.reset();
  ASSERT_TRUE(WaitUntil([&] { return !link_connected(); }, 10000ms));
  const Scrape s(here);
  EXPECT_EQ(s["derp_mesh_link_up" + label], 0);
  EXPECT_EQ(s["derp_mesh_link_disconnects_total" + label], 1);
  EXPECT_EQ(s["derp_clients_remote"], 0);
  std::filesystem::remove_all(dir);
}

// The fields of /proc/self/stat from field 3 (state) on; proc(5) numbers them from 1, so field
// N is at [N - 3]. comm (field 2) may hold spaces and parentheses, hence the last ')'.
std::vector<std::string> OwnStatFields() {
  std::ifstream in("/proc/self/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 1));
  std::vector<std::string> fields;
  for (std::string f; fields.size() < 64 && rest >> f;) fields.push_back(f);
  return fields;
}

// utime + stime (fields 14 and 15), in clock ticks: what the kernel has charged this process.
long long OwnCpuTicks() {
  const auto fields = OwnStatFields();
  return fields.size() > 12 ? std::stoll(fields[11]) + std::stoll(fields[12]) : -1;
}

TEST_F(RelayMetrics, ProcessMetricsDescribeThisProcess) {
  const auto relay_starting = SteadyClock::now();
  TestRelay relay{Options(false, 1)};
  const auto relay_started = SteadyClock::now();
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  ASSERT_GT(ticks_per_second, 0);

  // Burn CPU until the kernel has charged this process a few ticks, so that a metric stuck at 0
  // or read from the wrong field cannot pass. Bounded in time; any machine gets there.
  const auto give_up = SteadyClock::now() + 60s;
  for (volatile std::uint64_t spin = 0; OwnCpuTicks() < 5 && SteadyClock::now() < give_up;) {
    for (int i = 0; i < 1000000; ++i) spin = spin + 1;
  }
  ASSERT_GE(OwnCpuTicks(), 5) << "no CPU time charged after a minute of spinning";

  // The exposition reads the same kernel counters at some moment inside this bracket, and they
  // only grow.
  const long long ticks_before = OwnCpuTicks();
  const auto scrape_starting = SteadyClock::now();
  const Scrape s(relay);
  const auto scrape_done = SteadyClock::now();
  const long long ticks_after = OwnCpuTicks();
  const long long cpu_ticks = std::llround(s["process_cpu_seconds_total"] * ticks_per_second);
  EXPECT_GE(cpu_ticks, ticks_before) << "process_cpu_seconds_total is utime + stime";
  EXPECT_LE(cpu_ticks, ticks_after) << "process_cpu_seconds_total is utime + stime";

  // The relay's clock started inside [relay_starting, relay_started] and was read inside
  // [scrape_starting, scrape_done].
  EXPECT_GE(s["derp_uptime_seconds"],
            Seconds(scrape_starting - relay_started) - kPrintedSlackSeconds);
  EXPECT_LE(s["derp_uptime_seconds"], Seconds(scrape_done - relay_starting) + kPrintedSlackSeconds);

  EXPECT_GT(s["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(s["process_open_fds"], 3) << "stdio at least";
  EXPECT_EQ(s["derp_current_file_descriptors"], s["process_open_fds"]);
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(s["process_max_fds"], static_cast<double>(limit.rlim_cur));

  // process_start_time_seconds = boot time (btime, whole seconds) + starttime (field 22, ticks
  // after boot). Checked against the boot time derived another way: the wall clock minus
  // /proc/uptime (two decimals), bracketed by two wall clock reads.
  const double wall_before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ifstream uptime_file("/proc/uptime");
  double uptime_seconds = 0;
  ASSERT_TRUE(uptime_file >> uptime_seconds);
  const double wall_after =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double started_after_boot =
      std::stod(OwnStatFields().at(19)) / static_cast<double>(ticks_per_second);
  // btime drops up to 1 s of fraction; uptime drops up to 10 ms.
  EXPECT_GE(s["process_start_time_seconds"],
            wall_before - uptime_seconds - 0.01 - 1 + started_after_boot - kPrintedSlackSeconds);
  EXPECT_LE(s["process_start_time_seconds"],
            wall_after - uptime_seconds + started_after_boot + kPrintedSlackSeconds);
  EXPECT_EQ(s["derpkit_build_info{version=\"" + std::string(relay::kDerpkitVersion) + "\"}"], 1);
}

TEST_F(RelayMetrics, VarsJsonCarriesTheSameNumbers) {
  TestRelay relay{Options(false, 1)};
  auto a = Connect(relay, 1);
  ASSERT_FALSE(Await(io_, a->SendPacket(TestKey(99).Public(), Payload("nobody"))));
  ASSERT_TRUE(WaitUntil([&] { return relay.stats().dropped(DropReason::kUnknownDest) == 1; }));

  const auto vars = nlohmann::json::parse(relay::RenderVarsJson(relay.server()));
  const Scrape s(relay);
  EXPECT_EQ(vars["derp_accepts_total"], 1);
  EXPECT_TRUE(vars["derp_accepts_total"].is_number_integer());
  EXPECT_EQ(vars["derp_packets_dropped_total"]["reason=unknown_dest,kind=other"], 1);
  EXPECT_EQ(vars["derp_packets_dropped_total"]["reason=queue_head,kind=disco"], 0);
  EXPECT_EQ(vars["derp_packets_dropped_total"].size(),
            relay::kDropReasonCount * relay::kPacketKindCount);
  EXPECT_EQ(vars["stun_requests_total"]["disposition=success"], 0);
  const auto& hist = vars["derp_connection_duration_seconds"];
  EXPECT_EQ(hist["count"], 0);
  EXPECT_EQ(hist["buckets"].size(), relay::kConnDurationBounds.size() + 1);
  EXPECT_EQ(hist["buckets"]["+Inf"], 0);
  EXPECT_EQ(vars["derpkit_build_info"]["version=" + std::string(relay::kDerpkitVersion)], 1);
  // Every family of the exposition is in the JSON.
  for (const auto& [series, value] : s.samples()) {
    std::string family = series.substr(0, series.find('{'));
    for (std::string_view suffix : {"_bucket", "_count", "_sum"}) {
      if (family.ends_with(suffix) && !vars.contains(family)) {
        family.resize(family.size() - suffix.size());
      }
    }
    EXPECT_TRUE(vars.contains(family)) << family;
  }
}

}  // namespace
}  // namespace derpkit::testing
