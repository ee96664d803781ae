// relay/stun_server on loopback: our own client sockets, derper's captured request, and coturn's
// turnutils_stunclient as an independent RFC 5389 implementation; one responder thread and
// several (the relay passes --workers).
#include "relay/stun_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "lib/stun/stun.h"
#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"

namespace derpkit::relay {
namespace {

using namespace std::chrono_literals;
using netaddr::IpAddress;

const std::string kStunDir = std::string(DERPKIT_TESTDATA_DIR) + "/stun/";

Bytes ReadFile(const std::string& name) {
  std::ifstream in(kStunDir + name, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << kStunDir + name;
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const ByteSpan b = AsBytes(s);
  return Bytes(b.begin(), b.end());
}

const stun::TxId kFixedTxId = stun::TxId::FromSpan(BytesFromHex("0102030405060708090a0b0c"));

// A started StunServer, stopped (threads joined) when the fixture goes away.
class RunningServer {
 public:
  explicit RunningServer(const StunServerConfig& config) : server_(config, stats_) {
    server_.Start();
  }

  std::uint16_t port() const { return server_.port(); }
  StunStatsSnapshot stats() const { return stats_.Snapshot(); }
  const StunServer& server() const { return server_; }

  // Waits (bounded) until `pred(stats())` holds: the server counts a success after sendmmsg
  // returns, which may be after the client already has the reply.
  template <typename Pred>
  bool StatsReach(Pred pred) const {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!pred(stats())) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

 private:
  StunStats stats_;
  StunServer server_;
};

// A plain blocking-free UDP socket bound to a loopback address and an ephemeral port.
class UdpClient {
 public:
  explicit UdpClient(const IpAddress& loopback) : ip_(loopback) {
    family_ = loopback.is_v4() ? AF_INET : AF_INET6;
    fd_ = ::socket(family_, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "socket");
    sockaddr_storage ss = Sockaddr(0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), SockaddrSize()) != 0) {
      const int err = errno;
      ::close(fd_);
      throw std::system_error(err, std::system_category(), "bind " + loopback.ToString());
    }
    socklen_t len = sizeof ss;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(family_ == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  ~UdpClient() { ::close(fd_); }
  UdpClient(const UdpClient&) = delete;
  UdpClient& operator=(const UdpClient&) = delete;

  const IpAddress& ip() const { return ip_; }
  std::uint16_t port() const { return port_; }

  // Sends to the same loopback address as ours.
  void SendTo(std::uint16_t port, ByteSpan payload) {
    sockaddr_storage ss = Sockaddr(port);
    const ssize_t n = ::sendto(fd_, payload.data(), payload.size(), 0,
                               reinterpret_cast<sockaddr*>(&ss), SockaddrSize());
    ASSERT_EQ(n, static_cast<ssize_t>(payload.size())) << std::strerror(errno);
  }

  // Returns the next datagram, or nullopt if none arrives within `timeout`.
  std::optional<Bytes> Receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    Bytes buf(2048);
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

 private:
  sockaddr_storage Sockaddr(std::uint16_t port) const {
    sockaddr_storage ss{};
    if (family_ == AF_INET) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      std::memcpy(&sin->sin_addr, ip_.v4_bytes().data(), 4);
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port);
      std::memcpy(&sin6->sin6_addr, ip_.raw().data(), 16);
    }
    return ss;
  }
  socklen_t SockaddrSize() const {
    return family_ == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }

  IpAddress ip_;
  int family_ = AF_INET;
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

const IpAddress kLoopbackV4 = IpAddress::V4(127, 0, 0, 1);
IpAddress LoopbackV6() { return netaddr::ParseIp("::1").value(); }

bool HaveIpv6Loopback() {
  try {
    UdpClient probe(LoopbackV6());
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

StunServerConfig LoopbackConfig(bool strict = false, int threads = 1) {
  StunServerConfig config;
  config.listen_host = "127.0.0.1";
  config.port = 0;
  config.strict = strict;
  config.threads = threads;
  return config;
}

// Runs a shell command and returns its combined output.
std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  ::pclose(pipe);
  return out;
}

void RequireStunClient() {
  ASSERT_NE(RunCommand("command -v turnutils_stunclient"), "")
      << "turnutils_stunclient (Debian package coturn) is not installed: it is the independent "
         "STUN client this test checks the responder against; run scripts/install-deps.sh";
}

std::string RunStunClient(std::uint16_t port, int timeout_seconds) {
  return RunCommand("timeout " + std::to_string(timeout_seconds) + " turnutils_stunclient -p " +
                    std::to_string(port) + " 127.0.0.1");
}

// Sends `request` from `client` and returns the parsed reply (bounded wait).
std::optional<stun::BindingResponse> Exchange(UdpClient& client, std::uint16_t port,
                                              ByteSpan request, Bytes* raw = nullptr) {
  client.SendTo(port, request);
  const auto reply = client.Receive(2s);
  if (!reply) {
    ADD_FAILURE() << "no STUN reply within 2 s";
    return std::nullopt;
  }
  if (raw != nullptr) *raw = *reply;
  const auto parsed = stun::ParseBindingResponse(*reply);
  if (!parsed) {
    ADD_FAILURE() << stun::Describe(parsed.error()) << ": " << HexEncode(*reply);
    return std::nullopt;
  }
  return *parsed;
}

TEST(StunServer, AnswersTheCapturedTailscaleRequestExactlyAsDerperDoes) {
  RunningServer server(LoopbackConfig());
  UdpClient client(kLoopbackV4);
  Bytes raw;
  const auto reply =
      Exchange(client, server.port(), ReadFile("fixed-txid-tailscale-request.req"), &raw);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->txid, kFixedTxId);
  EXPECT_EQ(reply->ip, kLoopbackV4);
  EXPECT_EQ(reply->port, client.port());

  // derper's reply to 127.0.0.1:40000, with the XORed port replaced by our client's.
  Bytes expected = ReadFile("fixed-txid-tailscale-request.resp");
  ASSERT_EQ(expected.size(), stun::kIpv4ResponseSize);
  StoreBigEndian16(std::span(expected).subspan(26),
                   static_cast<std::uint16_t>(client.port() ^ 0x2112));
  EXPECT_EQ(HexEncode(raw), HexEncode(expected));

  EXPECT_TRUE(server.StatsReach(
      [](const StunStatsSnapshot& s) { return s.Requests(StunDisposition::kSuccess) == 1; }));
  const StunStatsSnapshot s = server.stats();
  EXPECT_EQ(s.AddrFamily(StunAddrFamily::kIpv4), 1u);
  EXPECT_EQ(s.AddrFamily(StunAddrFamily::kIpv6), 0u);
  EXPECT_EQ(s.Requests(StunDisposition::kNotStun), 0u);
}

TEST(StunServer, CoturnStunClientLearnsItsReflexiveAddress) {
  RequireStunClient();
  RunningServer server(LoopbackConfig());
  const std::string out = RunStunClient(server.port(), 5);
  EXPECT_NE(out.find("UDP reflexive addr: 127.0.0.1:"), std::string::npos) << out;
  EXPECT_TRUE(server.StatsReach(
      [](const StunStatsSnapshot& s) { return s.Requests(StunDisposition::kSuccess) >= 1; }));
}

TEST(StunServer, StrictModeAnswersOnlyTailscaleRequests) {
  RequireStunClient();
  RunningServer server(LoopbackConfig(/*strict=*/true));
  UdpClient client(kLoopbackV4);

  // The server handles datagrams in order, so if the first reply is for the second request, the
  // first one was dropped; the bounded wait afterwards checks nothing else turns up.
  client.SendTo(server.port(), ReadFile("bare-rfc5389-request.req"));
  const auto reply = Exchange(client, server.port(), ReadFile("fixed-txid-tailscale-request.req"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->txid, kFixedTxId);
  EXPECT_EQ(client.Receive(300ms), std::nullopt);
  EXPECT_EQ(server.stats().Requests(StunDisposition::kNotStun), 1u);

  const std::string out = RunStunClient(server.port(), 2);
  EXPECT_EQ(out.find("reflexive addr"), std::string::npos) << out;
  EXPECT_GE(server.stats().Requests(StunDisposition::kNotStun), 2u);
}

TEST(StunServer, NonStrictModeAnswersBareRequests) {
  RunningServer server(LoopbackConfig());
  UdpClient client(kLoopbackV4);
  const auto reply = Exchange(client, server.port(), ReadFile("bare-rfc5389-request.req"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->txid.ToHex(), "a1a2a3a4a5a6a7a8a9aaabac");
  EXPECT_EQ(reply->port, client.port());
}

TEST(StunServer, CountsGarbageAsNotStunAndKeepsAnswering) {
  RunningServer server(LoopbackConfig());
  UdpClient client(kLoopbackV4);
  const Bytes oversized(1000, std::byte{0});  // longer than a slot, and not STUN
  const Bytes garbage[] = {
      Bytes{},                                                      // empty datagram
      BytesFromHex("deadbeef"),                                     // too short
      BytesFromHex("0001 0000 deadbeef 0102030405060708090a0b0c"),  // no magic cookie
      ReadFile("fixed-txid-tailscale-request.resp"),                // a response, not a request
      oversized,
  };
  for (const Bytes& g : garbage) client.SendTo(server.port(), g);
  const auto reply = Exchange(client, server.port(), ReadFile("fixed-txid-tailscale-request.req"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->port, client.port());
  EXPECT_EQ(client.Receive(300ms), std::nullopt);
  // Every not_stun was counted before the reply was sent.
  EXPECT_EQ(server.stats().Requests(StunDisposition::kNotStun), std::size(garbage));
  EXPECT_TRUE(server.StatsReach(
      [](const StunStatsSnapshot& s) { return s.Requests(StunDisposition::kSuccess) == 1; }));
}

TEST(StunServer, AnswersManyClientsInOneBurst) {
  RunningServer server(LoopbackConfig());
  std::vector<std::unique_ptr<UdpClient>> clients;
  const Bytes request = stun::BuildBindingRequest(kFixedTxId);
  for (int i = 0; i < 130; ++i) {  // more than two recvmmsg batches
    clients.push_back(std::make_unique<UdpClient>(kLoopbackV4));
    clients.back()->SendTo(server.port(), request);
  }
  for (auto& c : clients) {
    const auto reply = c->Receive(2s);
    ASSERT_TRUE(reply);
    const auto parsed = stun::ParseBindingResponse(*reply);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->port, c->port());
  }
  EXPECT_TRUE(server.StatsReach(
      [](const StunStatsSnapshot& s) { return s.Requests(StunDisposition::kSuccess) == 130; }));
}

TEST(StunServer, AnswersIpv6ClientsOnLoopbackV6) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback (::1) on this host";
  StunServerConfig config;
  config.listen_host = "::1";
  config.port = 0;
  RunningServer server(config);
  UdpClient client(LoopbackV6());
  Bytes raw;
  const auto reply =
      Exchange(client, server.port(), ReadFile("fixed-txid-tailscale-request.req"), &raw);
  ASSERT_TRUE(reply);
  EXPECT_EQ(raw.size(), stun::kIpv6ResponseSize);
  EXPECT_EQ(reply->ip, LoopbackV6());
  EXPECT_EQ(reply->port, client.port());
  EXPECT_EQ(HexEncode(raw),
            HexEncode(stun::BuildBindingResponse(kFixedTxId, LoopbackV6(), client.port())));
  EXPECT_EQ(server.stats().AddrFamily(StunAddrFamily::kIpv6), 1u);
}

TEST(StunServer, WildcardSocketAnswersIpv4ClientsWithFamilyOne) {
  StunServerConfig config;
  config.port = 0;  // listen_host empty: [::] dual-stack where available
  RunningServer server(config);
  UdpClient v4(kLoopbackV4);
  Bytes raw;
  const auto reply = Exchange(v4, server.port(), ReadFile("fixed-txid-wildcard-v4.req"), &raw);
  ASSERT_TRUE(reply);
  // derper's wildcard socket sends 44 bytes (::ffff:127.0.0.1) here; we send the 32-byte form.
  EXPECT_EQ(HexEncode(raw),
            HexEncode(stun::BuildBindingResponse(kFixedTxId, kLoopbackV4, v4.port())));
  EXPECT_EQ(server.stats().AddrFamily(StunAddrFamily::kIpv4), 1u);

  if (!HaveIpv6Loopback()) return;
  UdpClient v6(LoopbackV6());
  const auto reply6 = Exchange(v6, server.port(), ReadFile("fixed-txid-wildcard-v6.req"), &raw);
  ASSERT_TRUE(reply6);
  EXPECT_EQ(HexEncode(raw),
            HexEncode(stun::BuildBindingResponse(kFixedTxId, LoopbackV6(), v6.port())));
}

// A Binding Request carrying `attrs` (type, value; values padded to 4 bytes) in order, then a
// FINGERPRINT when `fingerprint` is set: the shapes ICE agents send, with attributes the responder
// does not interpret.
Bytes BuildRequest(const stun::TxId& txid,
                   const std::vector<std::pair<std::uint16_t, Bytes>>& attrs, bool fingerprint) {
  Bytes out;
  AppendBigEndian16(out, stun::kTypeBindingRequest);
  AppendBigEndian16(out, 0);  // attribute length, filled in below
  AppendBigEndian32(out, stun::kMagicCookie);
  AppendBytes(out, txid.bytes);
  for (const auto& [type, value] : attrs) {
    AppendBigEndian16(out, type);
    AppendBigEndian16(out, static_cast<std::uint16_t>(value.size()));
    AppendBytes(out, value);
    out.resize((out.size() + 3) & ~std::size_t{3});
  }
  const std::size_t fingerprint_attr_bytes = fingerprint ? 8 : 0;
  const std::size_t attrs_size = out.size() - stun::kHeaderSize + fingerprint_attr_bytes;
  EXPECT_LE(attrs_size, 0xffffu);
  StoreBigEndian16(std::span(out).subspan(2), static_cast<std::uint16_t>(attrs_size));
  if (fingerprint) {
    const std::uint32_t crc = stun::Fingerprint(out);
    AppendBigEndian16(out, stun::kAttrFingerprint);
    AppendBigEndian16(out, 4);
    AppendBigEndian32(out, crc);
  }
  return out;
}

stun::TxId TxIdFor(int n) {
  Bytes b(stun::kTxIdSize, std::byte{0x5a});
  StoreBigEndian32(b, static_cast<std::uint32_t>(n));
  return stun::TxId::FromSpan(b);
}

Bytes Text(std::size_t n, char c) { return Bytes(n, static_cast<std::byte>(c)); }
Bytes Tailnode() {
  const ByteSpan b = AsBytes(stun::kTailscaleSoftware);
  return Bytes(b.begin(), b.end());
}

// An attribute type in the comprehension-optional range (0x8000-0xFFFF) that no RFC assigns.
constexpr std::uint16_t kUnknownOptionalAttr = 0x80aa;

struct LongRequest {
  const char* name;
  std::vector<std::pair<std::uint16_t, Bytes>> attrs;
  bool fingerprint;
};

class StunServerLongRequest : public ::testing::TestWithParam<LongRequest> {};

TEST_P(StunServerLongRequest, IsAnsweredLikeAShortOne) {
  const Bytes request = BuildRequest(kFixedTxId, GetParam().attrs, GetParam().fingerprint);
  ASSERT_TRUE(stun::ParseBindingRequest(request)) << "the codec accepts it too";
  RunningServer server(LoopbackConfig());
  UdpClient client(kLoopbackV4);
  const auto reply = Exchange(client, server.port(), request);
  ASSERT_TRUE(reply) << request.size() << "-byte request";
  EXPECT_EQ(reply->txid, kFixedTxId);
  EXPECT_EQ(reply->ip, kLoopbackV4);
  EXPECT_EQ(reply->port, client.port());
  EXPECT_TRUE(server.StatsReach(
      [](const StunStatsSnapshot& s) { return s.Requests(StunDisposition::kSuccess) == 1; }));
  EXPECT_EQ(server.stats().Requests(StunDisposition::kNotStun), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    UpToAFullDatagram, StunServerLongRequest,
    ::testing::Values(
        LongRequest{
            "Software1200BytesWithFingerprint", {{stun::kAttrSoftware, Text(1200, 's')}}, true},
        LongRequest{
            "UnknownOptionalAttribute1400Bytes", {{kUnknownOptionalAttr, Text(1400, 'u')}}, false},
        LongRequest{"JustOverOneSlot", {{kUnknownOptionalAttr, Text(240, 'j')}}, true},
        // 20 + 4 + 65,480 = 65,504 bytes: the largest 4-aligned request an IPv4 datagram holds.
        LongRequest{"FullDatagram65504Bytes", {{kUnknownOptionalAttr, Text(65480, 'f')}}, false}),
    [](const ::testing::TestParamInfo<LongRequest>& info) { return info.param.name; });

TEST(StunServer, StrictModeJudgesLongRequestsByDerpersRules) {
  RunningServer server(LoopbackConfig(/*strict=*/true));
  UdpClient client(kLoopbackV4);
  // derper (64 KiB buffer) answers a Tailscale request with an extra attribute before the
  // FINGERPRINT; it ignores one without SOFTWARE "tailnode", however valid.
  const Bytes untagged =
      BuildRequest(TxIdFor(1), {{kUnknownOptionalAttr, Text(1200, 'u')}}, /*fingerprint=*/true);
  const Bytes tailscale = BuildRequest(
      kFixedTxId, {{stun::kAttrSoftware, Tailnode()}, {kUnknownOptionalAttr, Text(1200, 'u')}},
      /*fingerprint=*/true);
  const auto parsed = stun::ParseBindingRequest(tailscale);
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(parsed->is_tailscale);
  client.SendTo(server.port(), untagged);
  const auto reply = Exchange(client, server.port(), tailscale);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->txid, kFixedTxId) << "the untagged request was answered";
  EXPECT_EQ(client.Receive(300ms), std::nullopt);
  EXPECT_EQ(server.stats().Requests(StunDisposition::kNotStun), 1u);
}

// Long and short requests queued before the server reads are taken in full recvmmsg batches,
// so many long ones share a batch: each must keep its own bytes (the FINGERPRINT covers them all,
// so a request whose tail another one overwrote would not be answered).
TEST(StunServer, AnswersABatchOfLongAndShortRequestsEachWithItsOwnBytes) {
  StunStats stats;
  StunServer server(LoopbackConfig(), stats);  // bound: datagrams queue from here on
  constexpr int kClients = 70;                 // more than one batch of 64
  std::vector<std::unique_ptr<UdpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<UdpClient>(kLoopbackV4));
    // Every third one is Tailscale's 40-byte request, the rest 292..1052 bytes: small enough
    // together (~35 KB) to sit in the socket's default receive buffer until the server reads.
    const Bytes request =
        i % 3 == 0
            ? stun::BuildBindingRequest(TxIdFor(i))
            : BuildRequest(TxIdFor(i),
                           {{kUnknownOptionalAttr, Text(260 + 11 * static_cast<std::size_t>(i),
                                                        static_cast<char>('A' + i % 26))}},
                           /*fingerprint=*/true);
    clients.back()->SendTo(server.port(), request);
  }
  server.Start();
  for (int i = 0; i < kClients; ++i) {
    const auto reply = clients[i]->Receive(2s);
    ASSERT_TRUE(reply) << "no reply to request " << i;
    const auto parsed = stun::ParseBindingResponse(*reply);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->txid, TxIdFor(i));
    EXPECT_EQ(parsed->port, clients[i]->port());
  }
  const auto answered_all = [&] {
    return stats.Snapshot().Requests(StunDisposition::kSuccess) == std::uint64_t{kClients};
  };
  const auto deadline = std::chrono::steady_clock::now() + 2s;  // counted after sendmmsg returns
  while (!answered_all() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(answered_all());
  EXPECT_EQ(stats.Snapshot().Requests(StunDisposition::kNotStun), 0u);
}

// A second relay on the same port fails to start, whatever either one's thread count.
struct PortTakenCase {
  int first_threads;
  int second_threads;
};

class StunServerPortTaken : public ::testing::TestWithParam<PortTakenCase> {};

TEST_P(StunServerPortTaken, ThrowsNamingTheAddress) {
  RunningServer first(LoopbackConfig(/*strict=*/false, GetParam().first_threads));
  StunStats stats;
  StunServerConfig config = LoopbackConfig(/*strict=*/false, GetParam().second_threads);
  config.port = first.port();
  try {
    StunServer second(config, stats);
    ADD_FAILURE() << "second bind to the same port succeeded";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
  // The first one still answers.
  UdpClient client(kLoopbackV4);
  const auto reply = Exchange(client, first.port(), stun::BuildBindingRequest(kFixedTxId));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->port, client.port());
}

INSTANTIATE_TEST_SUITE_P(OneAndSeveralThreads, StunServerPortTaken,
                         ::testing::Values(PortTakenCase{1, 1}, PortTakenCase{2, 2}),
                         [](const ::testing::TestParamInfo<PortTakenCase>& info) {
                           return "First" + std::to_string(info.param.first_threads) + "Second" +
                                  std::to_string(info.param.second_threads);
                         });

TEST(StunServer, RejectsAListenHostThatIsNotAnIpLiteral) {
  StunStats stats;
  StunServerConfig config = LoopbackConfig();
  config.listen_host = "localhost";
  EXPECT_THROW(StunServer(config, stats), std::system_error);
}

// The drops the kernel counted on the UDP socket bound to 127.0.0.1:`port`, from /proc/net/udp
// (local address "0100007F:PORT" in hex, drops the last column).
std::optional<std::uint64_t> KernelDrops(std::uint16_t port) {
  std::ifstream in("/proc/net/udp");
  char local[32];
  std::snprintf(local, sizeof local, "0100007F:%04X", port);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, addr;
    fields >> slot >> addr;
    if (addr != local) continue;
    std::string last, field;
    while (fields >> field) last = field;
    return std::stoull(last);
  }
  return std::nullopt;
}

// Requests queued before the threads start, until the kernel drops some: the first thread's
// first batch is full and the socket has overflowed, so it calls in the second thread, which may
// call in the third. Every request the kernel kept is answered exactly once, byte for byte as
// one thread answers, and the threads' counts add up.
TEST(StunServer, SeveralThreadsAnswerAnOverflowingBacklogEachRequestOnce) {
  constexpr int kThreads = 3;
  constexpr int kClients = 16;
  constexpr int kMaxRequests = 20000;  // the default receive buffer holds a few hundred
  StunStats stats;
  StunServer server(LoopbackConfig(/*strict=*/false, kThreads), stats);
  std::vector<std::unique_ptr<UdpClient>> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(std::make_unique<UdpClient>(kLoopbackV4));
  int sent = 0;
  std::uint64_t drops = 0;
  while (sent < kMaxRequests && drops == 0) {
    for (int c = 0; c < kClients; ++c, ++sent) {
      clients[c]->SendTo(server.port(), stun::BuildBindingRequest(TxIdFor(sent)));
    }
    const auto d = KernelDrops(server.port());
    ASSERT_TRUE(d) << "no /proc/net/udp line for port " << server.port();
    drops = *d;
  }
  ASSERT_GT(drops, 0u) << "the kernel queued all " << sent << " requests";
  const std::uint64_t kept = static_cast<std::uint64_t>(sent) - drops;

  server.Start();
  const auto deadline = std::chrono::steady_clock::now() + 5s;  // counted after sendmmsg returns
  while (stats.Snapshot().Requests(StunDisposition::kSuccess) < kept &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(stats.Snapshot().Requests(StunDisposition::kSuccess), kept);
  // Loopback delivers a reply within sendmmsg, so every reply is queued at its client by now.
  std::vector<bool> answered(static_cast<std::size_t>(sent), false);
  std::uint64_t replies = 0;
  for (int c = 0; c < kClients; ++c) {
    while (const auto reply = clients[c]->Receive(0ms)) {
      const auto parsed = stun::ParseBindingResponse(*reply);
      ASSERT_TRUE(parsed);
      const int n = static_cast<int>(LoadBigEndian32(parsed->txid.bytes));
      ASSERT_TRUE(n >= 0 && n < sent && n % kClients == c) << "a reply for another client";
      EXPECT_FALSE(answered[static_cast<std::size_t>(n)]) << "request " << n << " answered twice";
      answered[static_cast<std::size_t>(n)] = true;
      EXPECT_EQ(HexEncode(*reply),
                HexEncode(stun::BuildBindingResponse(TxIdFor(n), kLoopbackV4, clients[c]->port())));
      ++replies;
    }
  }
  EXPECT_EQ(replies, kept);
  EXPECT_GE(server.calls_to_help(1), 1u) << "an overflowed socket calls in the second thread";
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < kThreads; ++i) sum += server.answered(i);
  EXPECT_EQ(sum, kept);
}

// A full batch alone is no reason to call in a helper: 100 queued requests (well within the
// default receive buffer) are one full batch and a short one, taken by the first thread alone.
TEST(StunServer, AFullBatchWithoutBacklogDoesNotCallInAHelper) {
  constexpr int kClients = 100;
  StunStats stats;
  StunServer server(LoopbackConfig(/*strict=*/false, 2), stats);
  std::vector<std::unique_ptr<UdpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<UdpClient>(kLoopbackV4));
    clients.back()->SendTo(server.port(), stun::BuildBindingRequest(TxIdFor(i)));
  }
  ASSERT_EQ(KernelDrops(server.port()), std::optional<std::uint64_t>(0));
  server.Start();
  for (int i = 0; i < kClients; ++i) {
    const auto reply = clients[i]->Receive(2s);
    ASSERT_TRUE(reply) << "no reply to client " << i;
  }
  EXPECT_EQ(server.calls_to_help(1), 0u);
  EXPECT_EQ(server.answered(1), 0u);
}

// A load one thread keeps up with never calls in a second: one request at a time.
TEST(StunServer, OneRequestAtATimeNeverCallsInASecondThread) {
  RunningServer server(LoopbackConfig(/*strict=*/false, 2));
  UdpClient client(kLoopbackV4);
  for (int i = 0; i < 20; ++i) {
    const auto reply = Exchange(client, server.port(), stun::BuildBindingRequest(TxIdFor(i)));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->txid, TxIdFor(i));
  }
  EXPECT_EQ(server.server().calls_to_help(1), 0u);
  EXPECT_EQ(server.server().answered(1), 0u);
}

// The wildcard socket is dual-stack with several threads too: IPv4 clients get the 32-byte form.
TEST(StunServer, AWildcardServerWithSeveralThreadsAnswersBothFamilies) {
  StunServerConfig config;
  config.port = 0;
  config.threads = 2;
  RunningServer server(config);
  Bytes raw;
  UdpClient v4(kLoopbackV4);
  ASSERT_TRUE(Exchange(v4, server.port(), ReadFile("fixed-txid-wildcard-v4.req"), &raw));
  EXPECT_EQ(HexEncode(raw),
            HexEncode(stun::BuildBindingResponse(kFixedTxId, kLoopbackV4, v4.port())));
  if (!HaveIpv6Loopback()) return;
  UdpClient v6(LoopbackV6());
  ASSERT_TRUE(Exchange(v6, server.port(), ReadFile("fixed-txid-wildcard-v6.req"), &raw));
  EXPECT_EQ(HexEncode(raw),
            HexEncode(stun::BuildBindingResponse(kFixedTxId, LoopbackV6(), v6.port())));
}

// Stop() ends the thread blocked in recvmmsg and the parked helpers and joins them, also twice,
// and before Start().
TEST(StunServer, StopsIdleAndUnstartedServers) {
  StunStats stats;
  {
    StunServer idle(LoopbackConfig(/*strict=*/false, 3), stats);
    idle.Start();
    idle.Stop();
    idle.Stop();
  }
  {
    StunServer unstarted(LoopbackConfig(), stats);
    unstarted.Stop();
    unstarted.Start();  // after Stop(): starts nothing
  }
  EXPECT_EQ(stats.Snapshot().Requests(StunDisposition::kSuccess), 0u);
}

}  // namespace
}  // namespace derpkit::relay
