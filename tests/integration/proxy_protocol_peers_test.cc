// ParseProxyHeader against real senders: HAProxy (`send-proxy`, `send-proxy-v2`, health checks
// with `check-send-proxy`) and nginx's stream module (`proxy_protocol on`). Each test runs the
// proxy as a child process in front of a plain asio acceptor on 127.0.0.1:0 (the "backend"),
// connects a client through it and checks that the backend reads a header naming the client's
// own address and port, followed by the client's bytes unchanged.
//
// The proxies are required: CI installs them (scripts/install-deps.sh), and a missing one fails
// the test rather than skipping it, so this check can never silently stop running.
#include <gtest/gtest.h>

#include <algorithm>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/http/proxy_protocol.h"
#include "lib/net/as_tuple.h"
#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"
#include "tests/support/child_process.h"

namespace derpkit::http {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;
using testing::FindProgram;
using testing::PickFreePort;
using testing::ReadWholeFile;
using TempDir = testing::ScratchDir;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = 5s;  // the proxy's frontends must accept connections by then
constexpr auto kRelayTimeout = 5s;  // the client's bytes must reach the backend by then
constexpr int kStartAttempts = 5;   // fresh ports each time: another process may take ours
constexpr std::string_view kNginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so";
using ::derpkit::net::kAsTuple;

bool HasIpv6Loopback() {
  asio::io_context io;
  tcp::acceptor probe(io);
  asio::error_code ec;
  probe.open(tcp::v6(), ec);
  if (!ec) probe.bind(tcp::endpoint(asio::ip::make_address("::1"), 0), ec);
  return !ec;
}

// Polls `endpoint` with connects until one succeeds, `child` dies, or `deadline` passes.
bool WaitUntilAccepting(const tcp::endpoint& endpoint, ChildProcess& child,
                        Clock::time_point deadline) {
  asio::io_context io;
  while (Clock::now() < deadline && !child.Exited()) {
    tcp::socket socket(io);
    asio::error_code ec;
    socket.connect(endpoint, ec);
    if (!ec) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Replaces every "{name}" in `text` with its value.
std::string Fill(std::string text, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    const std::string key = "{" + name + "}";
    for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
      text.replace(at, key.size(), value);
      at += value.size();
    }
  }
  return text;
}

enum class ProxyKind { kHaproxy, kNginx };

// A proxy child process with its config and log in a scratch directory.
class RunningProxy {
 public:
  // Starts `program` with `config_template`, in which "{dir}" is the scratch directory and
  // "{port0}", "{port1}", ... are fresh free ports on `frontends[0]`, `frontends[1]`, ...
  // Retries with new ports if the proxy dies before accepting (a port was taken meanwhile).
  // Returns nullptr with the proxy's log in `failure` if it never comes up.
  static std::unique_ptr<RunningProxy> Start(ProxyKind kind, const std::string& program,
                                             const std::string& config_template,
                                             const std::vector<asio::ip::address>& frontends,
                                             std::string& failure) {
    for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
      auto proxy = std::unique_ptr<RunningProxy>(new RunningProxy());
      std::vector<std::pair<std::string, std::string>> vars = {{"dir", proxy->dir_.path()}};
      for (std::size_t i = 0; i < frontends.size(); ++i) {
        const std::uint16_t port = PickFreePort(frontends[i]);
        proxy->frontends_.emplace_back(frontends[i], port);
        vars.emplace_back("port" + std::to_string(i), std::to_string(port));
      }
      const auto config = proxy->dir_.path() / "proxy.conf";
      std::ofstream(config) << Fill(config_template, vars);
      const auto log = proxy->dir_.path() / "output.log";
      std::vector<std::string> argv;
      if (kind == ProxyKind::kHaproxy) {
        argv = {program, "-f", config.string(), "-db"};
      } else {
        const std::string dir = proxy->dir_.path().string();
        argv = {program,
                "-c",
                config.string(),
                "-p",
                dir + "/",
                "-e",
                dir + "/error.log",
                "-g",
                "daemon off; pid " + dir + "/nginx.pid;"};
      }
      proxy->process_ = std::make_unique<ChildProcess>(argv, log);

      const auto deadline = Clock::now() + kStartTimeout;
      bool up = true;
      for (const tcp::endpoint& frontend : proxy->frontends_) {
        up = up && WaitUntilAccepting(frontend, *proxy->process_, deadline);
      }
      if (up) return proxy;
      failure = "attempt " + std::to_string(attempt) + ": " + program + " did not accept on " +
                "its frontends within 5 s.\n--- config:\n" + ReadWholeFile(config) +
                "\n--- output:\n" + ReadWholeFile(log) +
                ReadWholeFile(proxy->dir_.path() / "error.log");
    }
    return nullptr;
  }

  const tcp::endpoint& frontend(std::size_t i) const { return frontends_.at(i); }

 private:
  RunningProxy() = default;

  TempDir dir_;
  std::vector<tcp::endpoint> frontends_;
  std::unique_ptr<ChildProcess> process_;  // declared last: killed before dir_ is removed
};

// What the backend saw on one accepted connection.
struct Connection {
  Bytes bytes;                        // everything received
  std::optional<ProxyHeader> header;  // once the header parsed
  std::optional<ProxyError> error;    // if it did not
  bool finished = false;              // EOF, a bad header, or `want` bytes after the header

  ByteSpan after_header() const {
    return ByteSpan(bytes).subspan(header ? header->header_size : 0);
  }
};

// The proxied server: accepts every connection and parses its PROXY header. A proxy also opens
// connections of its own (health checks, and the relays of our readiness probes), so tests pick
// the connection they want by its header.
class Backend {
 public:
  // `want` is how many bytes after the header end a connection's reading.
  Backend(asio::io_context& io, std::size_t want)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), want_(want) {
    asio::co_spawn(io, AcceptLoop(), asio::detached);
  }
  ~Backend() { acceptor_.close(); }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::vector<std::shared_ptr<Connection>>& connections() const { return connections_; }

  // Returns the first finished connection whose header satisfies `pred`, or nullptr.
  std::shared_ptr<Connection> Find(const std::function<bool(const ProxyHeader&)>& pred) const {
    for (const auto& c : connections_) {
      if (c->finished && c->header && pred(*c->header)) return c;
    }
    return nullptr;
  }

  // Describes every connection whose header did not parse (its first 64 bytes, in hex); empty
  // when there is none.
  std::string BadHeaders() const {
    std::string out;
    for (const auto& c : connections_) {
      if (c->error) {
        const ByteSpan start = ByteSpan(c->bytes).first(std::min<std::size_t>(c->bytes.size(), 64));
        out += std::string(Describe(*c->error)) + ": " + HexEncode(start) + "...\n";
      }
    }
    return out;
  }

 private:
  asio::awaitable<void> AcceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kAsTuple);
      if (ec) co_return;
      auto conn = std::make_shared<Connection>();
      connections_.push_back(conn);
      asio::co_spawn(acceptor_.get_executor(), Read(std::move(socket), conn, want_),
                     asio::detached);
    }
  }

  static asio::awaitable<void> Read(tcp::socket socket, std::shared_ptr<Connection> conn,
                                    std::size_t want) {
    std::vector<std::byte> buf(16 * 1024);
    for (;;) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kAsTuple);
      conn->bytes.insert(conn->bytes.end(), buf.begin(), buf.begin() + static_cast<long>(n));
      if (!conn->header && !conn->error) {
        const auto parsed = ParseProxyHeader(conn->bytes);
        if (parsed) {
          conn->header = *parsed;
        } else if (parsed.error() != ProxyError::kIncomplete) {
          conn->error = parsed.error();
        }
      }
      if (ec || conn->error || (conn->header && conn->after_header().size() >= want)) {
        conn->finished = true;
        co_return;
      }
    }
  }

  tcp::acceptor acceptor_;
  std::size_t want_;
  std::vector<std::shared_ptr<Connection>> connections_;
};

// Runs `io` until `done()` or the timeout; false on timeout.
bool RunUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(deadline - now);
  }
  return true;
}

// 64 KiB that start like a TLS ClientHello (what the relay will see after the header) and
// then count, so a dropped, duplicated or reordered chunk shows.
Bytes TestPayload() {
  Bytes out = BytesFromHex("16 03 01 02 00 01 00 01 fc 03 03");
  while (out.size() < 64 * 1024) out.push_back(static_cast<std::byte>(out.size() * 7 % 251));
  return out;
}

// Connects a client to `frontend`, sends TestPayload(), and checks what `backend` read: a
// version-`version` header naming the client's address and port and the frontend, then the
// payload byte for byte.
void ExpectRelayed(asio::io_context& io, Backend& backend, const tcp::endpoint& frontend,
                   int version) {
  const Bytes payload = TestPayload();
  tcp::socket client(io);
  client.connect(frontend);  // the proxy listens, so this completes without running `io`
  const tcp::endpoint me = client.local_endpoint();
  bool written = false;
  asio::async_write(client, asio::buffer(payload), [&](asio::error_code ec, std::size_t) {
    EXPECT_FALSE(ec) << ec.message();
    written = true;
  });
  const auto from_client = [&](const ProxyHeader& h) {
    return h.has_source && h.source_port == me.port();
  };
  const bool arrived = RunUntil(
      io,
      [&] {
        return (written && backend.Find(from_client) != nullptr) || !backend.BadHeaders().empty();
      },
      kRelayTimeout);
  ASSERT_EQ(backend.BadHeaders(), "");
  ASSERT_TRUE(arrived) << "no connection with a header from port " << me.port() << " within 5 s ("
                       << backend.connections().size() << " connections seen)";

  const std::shared_ptr<Connection> conn = backend.Find(from_client);
  const ProxyHeader& h = *conn->header;
  EXPECT_EQ(h.version, version);
  EXPECT_FALSE(h.local);
  EXPECT_EQ(h.source_ip, *netaddr::ParseIp(me.address().to_string()));
  EXPECT_EQ(h.source_port, me.port());
  EXPECT_EQ(h.dest_ip, *netaddr::ParseIp(frontend.address().to_string()));
  EXPECT_EQ(h.dest_port, frontend.port());
  const ByteSpan after = conn->after_header();
  ASSERT_EQ(after.size(), payload.size());
  EXPECT_TRUE(std::equal(after.begin(), after.end(), payload.begin())) << "payload changed";
}

const asio::ip::address kLoopback4 = asio::ip::make_address("127.0.0.1");
const asio::ip::address kLoopback6 = asio::ip::make_address("::1");

// {port0}: send-proxy-v2, {port1}: send-proxy, {port2}: send-proxy-v2 with TLVs.
constexpr std::string_view kHaproxyConfig = R"(
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend v2
  bind {addr0}:{port0}
  default_backend v2
frontend v1
  bind {addr1}:{port1}
  default_backend v1
frontend v2_tlvs
  bind {addr2}:{port2}
  unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts
  default_backend v2_tlvs
backend v2
  server backend 127.0.0.1:{backend} send-proxy-v2
backend v1
  server backend 127.0.0.1:{backend} send-proxy
backend v2_tlvs
  server backend 127.0.0.1:{backend} send-proxy-v2 proxy-v2-options crc32c,unique-id
)";

std::string HaproxyConfig(const Backend& backend, const std::string& addr) {
  return Fill(std::string(kHaproxyConfig), {{"backend", std::to_string(backend.port())},
                                            {"addr0", addr},
                                            {"addr1", addr},
                                            {"addr2", addr}});
}

std::string RequireHaproxy() {
  const std::string haproxy = FindProgram("haproxy");
  if (haproxy.empty()) ADD_FAILURE() << "haproxy is not installed: run scripts/install-deps.sh";
  return haproxy;
}

TEST(HaproxyPeer, SendProxyV2AndV1CarryTheClientAddressAndThePayload) {
  const std::string haproxy = RequireHaproxy();
  ASSERT_FALSE(haproxy.empty());
  asio::io_context io;
  Backend backend(io, TestPayload().size());
  std::string failure;
  const auto proxy =
      RunningProxy::Start(ProxyKind::kHaproxy, haproxy, HaproxyConfig(backend, "127.0.0.1"),
                          {kLoopback4, kLoopback4, kLoopback4}, failure);
  ASSERT_TRUE(proxy) << failure;

  {
    SCOPED_TRACE("send-proxy-v2");
    ExpectRelayed(io, backend, proxy->frontend(0), 2);
  }
  {
    SCOPED_TRACE("send-proxy");
    ExpectRelayed(io, backend, proxy->frontend(1), 1);
  }
  {
    SCOPED_TRACE("send-proxy-v2 with CRC32C and UNIQUE_ID TLVs");
    ExpectRelayed(io, backend, proxy->frontend(2), 2);
  }
  // The TLV frontend really sent TLVs: its header is longer than the 28 bytes of TCP4 alone.
  const auto tlv_conns =
      std::count_if(backend.connections().begin(), backend.connections().end(), [](const auto& c) {
        return c->header && c->header->version == 2 && c->header->header_size > 28;
      });
  EXPECT_GE(tlv_conns, 1);
}

TEST(HaproxyPeer, OverIpv6SendsTcp6HeadersInBothVersions) {
  const std::string haproxy = RequireHaproxy();
  ASSERT_FALSE(haproxy.empty());
  if (!HasIpv6Loopback()) GTEST_SKIP() << "this machine has no ::1";
  asio::io_context io;
  Backend backend(io, TestPayload().size());
  std::string failure;
  const auto proxy =
      RunningProxy::Start(ProxyKind::kHaproxy, haproxy, HaproxyConfig(backend, "[::1]"),
                          {kLoopback6, kLoopback6, kLoopback6}, failure);
  ASSERT_TRUE(proxy) << failure;
  {
    SCOPED_TRACE("send-proxy-v2");
    ExpectRelayed(io, backend, proxy->frontend(0), 2);
  }
  {
    SCOPED_TRACE("send-proxy");
    ExpectRelayed(io, backend, proxy->frontend(1), 1);
  }
}

TEST(HaproxyPeer, HealthChecksSendLocalInV2AndHaproxysOwnAddressesInV1) {
  const std::string haproxy = RequireHaproxy();
  ASSERT_FALSE(haproxy.empty());
  asio::io_context io;
  Backend v2_backend(io, 0);
  Backend v1_backend(io, 0);
  const std::string config = Fill(R"(
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout check 5s
# RunningProxy::Start connects here to see haproxy is up. Those connections go nowhere: the
# backends below must see only health checks (on a loaded machine a relayed probe came first).
frontend unused
  bind 127.0.0.1:{port0}
  default_backend nowhere
backend nowhere
backend v2
  server backend 127.0.0.1:{v2_backend} send-proxy-v2 check check-send-proxy inter 100ms
backend v1
  server backend 127.0.0.1:{v1_backend} send-proxy check check-send-proxy inter 100ms
)",
                                  {{"v2_backend", std::to_string(v2_backend.port())},
                                   {"v1_backend", std::to_string(v1_backend.port())}});
  std::string failure;
  const auto proxy =
      RunningProxy::Start(ProxyKind::kHaproxy, haproxy, config, {kLoopback4}, failure);
  ASSERT_TRUE(proxy) << failure;

  const auto any = [](const ProxyHeader&) { return true; };
  ASSERT_TRUE(RunUntil(
      io, [&] { return v2_backend.Find(any) && v1_backend.Find(any); }, kRelayTimeout))
      << "no health check reached both backends within 5 s";
  ASSERT_EQ(v2_backend.BadHeaders(), "");
  ASSERT_EQ(v1_backend.BadHeaders(), "");

  const ProxyHeader v2 = *v2_backend.Find(any)->header;
  EXPECT_EQ(v2.version, 2);
  EXPECT_TRUE(v2.local);
  EXPECT_FALSE(v2.has_source);
  EXPECT_EQ(v2.header_size, 16u);

  const ProxyHeader v1 = *v1_backend.Find(any)->header;
  EXPECT_EQ(v1.version, 1);
  EXPECT_FALSE(v1.local);
  EXPECT_TRUE(v1.has_source);
  EXPECT_EQ(v1.source_ip, netaddr::IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(v1.dest_ip, netaddr::IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(v1.dest_port, v1_backend.port());
}

TEST(NginxPeer, StreamProxyProtocolSendsV1ForIpv4AndIpv6Clients) {
  const std::string nginx = FindProgram("nginx");
  ASSERT_FALSE(nginx.empty()) << "nginx is not installed: run scripts/install-deps.sh";
  ASSERT_TRUE(std::filesystem::exists(kNginxStreamModule))
      << kNginxStreamModule << " is missing (package libnginx-mod-stream): run "
      << "scripts/install-deps.sh";
  const bool v6 = HasIpv6Loopback();
  asio::io_context io;
  Backend backend(io, TestPayload().size());
  const std::string config = Fill(R"(
load_module {module};
error_log {dir}/error.log info;
worker_processes 1;
events { worker_connections 64; }
stream {
  server { listen 127.0.0.1:{port0}; proxy_pass 127.0.0.1:{backend}; proxy_protocol on; }
{v6_server}}
)",
                                  {{"v6_server", v6 ? "  server { listen [::1]:{port1}; "
                                                      "proxy_pass 127.0.0.1:{backend}; "
                                                      "proxy_protocol on; }\n"
                                                    : ""},
                                   {"module", std::string(kNginxStreamModule)},
                                   {"backend", std::to_string(backend.port())}});
  std::vector<asio::ip::address> frontends = {kLoopback4};
  if (v6) frontends.push_back(kLoopback6);
  std::string failure;
  const auto proxy = RunningProxy::Start(ProxyKind::kNginx, nginx, config, frontends, failure);
  ASSERT_TRUE(proxy) << failure;
  {
    SCOPED_TRACE("nginx, IPv4 client");
    ExpectRelayed(io, backend, proxy->frontend(0), 1);
  }
  if (v6) {
    SCOPED_TRACE("nginx, IPv6 client");
    ExpectRelayed(io, backend, proxy->frontend(1), 1);
  }
}

}  // namespace
}  // namespace derpkit::http
