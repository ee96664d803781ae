// derp-conns: opens N idle DERP clients against a relay and reports the relay's memory per
// connection.
//
// Each connection does the whole client handshake (TCP, TLS when the URL is https, the HTTP
// upgrade, ServerKey, ClientInfo, ServerInfo) so the relay holds a registered client, not a
// half-open socket. Connections bind a source address before connecting, cycling through
// --sources, so that more than one address's worth of ephemeral ports (~28k) can be used.
//
// We dial and handshake here rather than with derpclient::Client because the client cannot bind
// a source address, and because 20,000 Clients would each build their own TLS context; this tool
// shares one context and keeps only the stream per connection.
//
// Limits are reported, not hit obscurely: the open-file limit of this process is checked before
// the first connection (and the count trimmed with a message saying so), the relay's limit is
// read from /proc when --relay-pid is given, and the first failing connection stops the run with
// the reason and the number established.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/proc_stats.h"
#include "bench/report.h"
#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/keys.h"
#include "lib/derp/messages.h"
#include "lib/derp/protocol.h"
#include "lib/http/head.h"
#include "lib/http/url.h"
#include "lib/net/stream.h"
#include "lib/net/tls.h"
#include "lib/util/netaddr.h"

namespace derpkit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using asio::ip::tcp;

constexpr std::string_view kTool = "derp-conns";
// Files this process keeps for itself (stdio, epoll, eventfds, the resolver, /proc reads).
constexpr std::uint64_t kFileMargin = 50;
// Ephemeral ports per source address (net.ipv4.ip_local_port_range default: 32768..60999).
constexpr std::uint64_t kPortsPerSource = 28000;

struct ConnsConfig {
  std::string url;
  std::string dial_host;
  std::string ca_file;
  bool insecure = false;
  std::uint64_t count = 1000;
  std::string sources = "auto";
  std::chrono::nanoseconds hold = 2s;
  std::chrono::nanoseconds settle = 1s;
  std::chrono::nanoseconds connect_timeout = 5s;
  int concurrency = 200;
  pid_t relay_pid = 0;
  bool json = false;
};

// Parses "127.0.0.1-127.0.0.8" (an IPv4 range), "a,b,c", a single address, or "none".
Expected<std::vector<asio::ip::address>, std::string> ParseSources(const std::string& text) {
  std::vector<asio::ip::address> out;
  if (text == "none") return out;
  auto parse = [](const std::string& s) -> Expected<asio::ip::address, std::string> {
    std::error_code ec;
    auto a = asio::ip::make_address(s, ec);
    if (ec) return Unexpected{"not an IP address: \"" + s + "\""};
    return a;
  };
  if (const auto dash = text.find('-'); dash != std::string::npos) {
    auto lo = parse(text.substr(0, dash));
    if (!lo) return Unexpected{lo.error()};
    auto hi = parse(text.substr(dash + 1));
    if (!hi) return Unexpected{hi.error()};
    if (!lo->is_v4() || !hi->is_v4()) return Unexpected{std::string("ranges are IPv4 only")};
    const auto a = lo->to_v4().to_uint(), b = hi->to_v4().to_uint();
    if (b < a || b - a >= 256) return Unexpected{std::string("a range spans 1..256 addresses")};
    for (auto v = a; v <= b; ++v) out.emplace_back(asio::ip::address_v4(v));
    return out;
  }
  for (std::size_t at = 0; at <= text.size();) {
    const auto comma = std::min(text.find(',', at), text.size());
    auto a = parse(text.substr(at, comma - at));
    if (!a) return Unexpected{a.error()};
    out.push_back(*a);
    at = comma + 1;
  }
  return out;
}

// Asio reports socket errors in its own "asio.system" category, which std::errc conditions do
// not match, so compare errno values in any of the system categories.
bool IsErrno(const std::error_code& ec, int value) {
  const auto& c = ec.category();
  return ec.value() == value && (c == asio::error::get_system_category() ||
                                 c == std::system_category() || c == std::generic_category());
}

// Why a connection failed, in words that point at the limit that was hit.
std::string Explain(const std::error_code& ec, const std::string& step) {
  if (IsErrno(ec, EMFILE)) {
    return step + ": this process is out of file descriptors (EMFILE): raise `ulimit -n`";
  }
  if (IsErrno(ec, ENFILE)) return step + ": the system is out of file descriptors (ENFILE)";
  if (IsErrno(ec, ECONNREFUSED)) {
    return step +
           ": connection refused: the relay is not listening there, or its listen queue "
           "overflowed";
  }
  if (IsErrno(ec, EADDRNOTAVAIL)) {
    return step + ": no free local port (EADDRNOTAVAIL): add source addresses with --sources";
  }
  if (ec == asio::error::eof || IsErrno(ec, ECONNRESET)) {
    return step + ": the relay closed the connection (" + ec.message() +
           "); if it is at its open-file limit its log says so";
  }
  return step + ": " + ec.message();
}

struct Shared {
  ConnsConfig cfg;
  http::Url url;
  tcp::endpoint target;
  std::vector<asio::ip::address> sources;
  asio::ssl::context* tls_context = nullptr;  // null for plain
  net::TlsClientOptions tls_options;
  std::string request;  // the HTTP upgrade request, identical for every connection

  std::vector<std::unique_ptr<net::Stream>> conns;
  std::uint64_t target_count = 0;
  std::uint64_t next = 0;
  bool stop = false;
  std::string first_error;
  std::uint64_t failures = 0;
};

// Reads into `reader` until it yields a frame; errors are described.
asio::awaitable<Expected<derp::FrameReader::Frame, std::string>> ReadFrame(
    net::Stream& s, derp::FrameReader& reader, const char* what) {
  for (;;) {
    auto f = reader.Next();
    if (f) co_return *f;
    if (f.error() == derp::FrameReader::Status::kTooLarge) {
      co_return Unexpected{std::string(what) + ": frame too large"};
    }
    auto room = reader.PrepareWrite(4096);
    auto r = co_await s.ReadSome(room);
    if (r.ec) co_return Unexpected{Explain(r.ec, std::string("reading ") + what)};
    reader.CommitWrite(r.bytes);
  }
}

// Opens connection number `index` through the whole DERP handshake. On success the stream is
// kept in shared.conns; on failure returns why.
asio::awaitable<Expected<void, std::string>> OpenOne(Shared& sh, std::uint64_t index) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  std::error_code ec;
  socket.open(sh.target.protocol(), ec);
  if (ec) co_return Unexpected{Explain(ec, "socket")};
  if (!sh.sources.empty()) {
    // Let connect() pick the port per (source, destination) pair instead of reserving one per
    // source address at bind time: that is what lets 8 sources carry 8 x 28k connections.
    const int one = 1;
    ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    socket.bind(tcp::endpoint(sh.sources[index % sh.sources.size()], 0), ec);
    if (ec)
      co_return Unexpected{
          Explain(ec, "bind " + sh.sources[index % sh.sources.size()].to_string())};
  }

  std::unique_ptr<net::Stream> stream;
  asio::steady_timer timer(executor, sh.cfg.connect_timeout);
  bool timed_out = false;
  tcp::socket* raw = &socket;
  timer.async_wait([&timed_out, &raw](const std::error_code& e) {
    if (e) return;
    timed_out = true;
    std::error_code ignored;
    raw->close(ignored);
  });
  auto timeout_text = [&](const std::string& step) {
    return step +
           ": no answer within the connect timeout; a relay at its open-file limit "
           "leaves connections unaccepted like this (check its log)";
  };

  auto [cec] = co_await socket.async_connect(sh.target, net::kAsTuple);
  if (cec) co_return Unexpected{timed_out ? timeout_text("connect") : Explain(cec, "connect")};

  if (sh.tls_context) {
    auto ssl = std::make_unique<net::TlsStream::SslStream>(std::move(socket), *sh.tls_context);
    raw = &ssl->next_layer();
    net::PrepareClientSsl(ssl->native_handle(), sh.tls_options);
    auto [hec] = co_await ssl->async_handshake(asio::ssl::stream_base::client, net::kAsTuple);
    if (hec) {
      co_return Unexpected{
          timed_out ? timeout_text("TLS handshake")
                    : "TLS handshake: " + net::DescribeHandshakeFailure(ssl->native_handle(), hec)};
    }
    stream = std::make_unique<net::TlsStream>(std::move(ssl));
  } else {
    stream = std::make_unique<net::TcpStream>(std::move(socket));
  }
  raw = &stream->tcp();

  const asio::const_buffer req(sh.request.data(), sh.request.size());
  if (auto r = co_await stream->WriteAll(std::span(&req, 1)); r.ec) {
    co_return Unexpected{timed_out ? timeout_text("upgrade") : Explain(r.ec, "send upgrade")};
  }
  derp::FrameReader reader(derp::kNonceSize + derp::kMaxInfoSize);
  Bytes head_buf;
  for (;;) {
    std::array<std::byte, 1024> chunk;
    auto r = co_await stream->ReadSome(chunk);
    if (r.ec) {
      co_return Unexpected{timed_out ? timeout_text("upgrade")
                                     : Explain(r.ec, "reading the upgrade response")};
    }
    head_buf.insert(head_buf.end(), chunk.begin(), chunk.begin() + static_cast<long>(r.bytes));
    auto head = http::ParseResponseHead(head_buf);
    if (!head && head.error() == http::ParseError::kIncomplete) continue;
    if (!head) {
      co_return Unexpected{"bad upgrade response: " + std::string(http::Describe(head.error()))};
    }
    if (head->status != 101) {
      co_return Unexpected{"the relay answered " + std::to_string(head->status) + " " +
                           head->reason + " instead of 101"};
    }
    const std::size_t rest = head_buf.size() - head->head_size;
    auto room = reader.PrepareWrite(rest);
    std::memcpy(room.data(), head_buf.data() + head->head_size, rest);
    reader.CommitWrite(rest);
    break;
  }
  auto key_frame = co_await ReadFrame(*stream, reader, "ServerKey");
  if (!key_frame) co_return Unexpected{timed_out ? timeout_text("ServerKey") : key_frame.error()};
  if (key_frame->type != derp::FrameType::kServerKey) {
    co_return Unexpected{"expected ServerKey, got " +
                         std::string(derp::FrameTypeName(key_frame->type))};
  }
  auto server_key = derp::ParseServerKey(key_frame->payload);
  if (!server_key)
    co_return Unexpected{"bad ServerKey: " + std::string(derp::Describe(server_key.error()))};
  Bytes info;
  derp::AppendClientInfo(info, derp::PrivateKey::Generate(), *server_key, derp::ClientInfo{},
                         derp::RandomNonce());
  const asio::const_buffer ib(info.data(), info.size());
  if (auto r = co_await stream->WriteAll(std::span(&ib, 1)); r.ec) {
    co_return Unexpected{Explain(r.ec, "send ClientInfo")};
  }
  auto info_frame = co_await ReadFrame(*stream, reader, "ServerInfo");
  if (!info_frame)
    co_return Unexpected{timed_out ? timeout_text("ServerInfo") : info_frame.error()};
  if (info_frame->type != derp::FrameType::kServerInfo) {
    co_return Unexpected{"expected ServerInfo, got " +
                         std::string(derp::FrameTypeName(info_frame->type))};
  }
  timer.cancel();
  if (timed_out) co_return Unexpected{timeout_text("handshake")};
  sh.conns.push_back(std::move(stream));
  co_return Expected<void, std::string>{};
}

asio::awaitable<void> Worker(Shared& sh) {
  while (!sh.stop && sh.next < sh.target_count) {
    const std::uint64_t index = sh.next++;
    auto ok = co_await OpenOne(sh, index);
    if (!ok) {
      ++sh.failures;
      if (!sh.stop) {
        sh.stop = true;
        sh.first_error = ok.error();
      }
    }
  }
}

// Returns how many connections the relay has not closed: a peek that returns 0 means EOF. Idle
// DERP connections carry no data for 60 s (the first KeepAlive), so anything else means alive.
std::uint64_t CountAlive(const std::vector<std::unique_ptr<net::Stream>>& conns) {
  std::uint64_t alive = 0;
  for (const auto& c : conns) {
    char b;
    const ssize_t n = ::recv(c->tcp().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) ++alive;
  }
  return alive;
}

int Main(int argc, char** argv) {
  ConnsConfig cfg;
  std::string hold = "2s", settle = "1s", connect_timeout = "5s";
  CLI::App app{
      "derp-conns: opens N idle DERP clients (plain or TLS, full handshake) against a relay, "
      "spread over several source addresses, holds them, and reports the relay's RSS per "
      "connection (with --relay-pid)."};
  app.footer(
      "Examples:\n"
      "  derp-conns --url http://127.0.0.1:3340/derp --count 10000 --relay-pid $(pidof "
      "derp-relay)\n"
      "  derp-conns --url https://localhost:8443/derp --ca-file certs/localhost.crt \\\n"
      "             --dial-host 127.0.0.1 --count 20000 --relay-pid $(pidof derp-relay)\n"
      "Limits: this process needs one file descriptor per connection. When --count exceeds its\n"
      "hard open-file limit the count is trimmed, with a message. The relay needs one too; when\n"
      "it runs out, new connections go unanswered: the run stops at the first failure and says\n"
      "how many were established and why.\n"
      "Exit status: 0 when every (possibly trimmed) connection was established, 1 when the run\n"
      "stopped early, 2 for bad flags.");
  app.option_defaults()->always_capture_default();
  app.add_option("-u,--url", cfg.url, "DERP URL: http://host:port/derp or https://host:port/derp.")
      ->required();
  app.add_option("--dial-host", cfg.dial_host,
                 "Connect to this address instead of the URL's host (the URL's host stays the TLS "
                 "name and the Host header).");
  app.add_option("--ca-file", cfg.ca_file, "PEM file of trusted certificates for TLS.");
  app.add_flag("--insecure", cfg.insecure, "Do not verify the relay's TLS certificate.");
  app.add_option("-n,--count", cfg.count, "Connections to open.");
  app.add_option("--sources", cfg.sources,
                 "Local addresses to bind, cycled per connection: a range 127.0.0.1-127.0.0.8, a "
                 "list a,b,c, \"none\" (the kernel chooses), or \"auto\" (127.0.0.1-127.0.0.8 "
                 "when the relay is on 127.0.0.0/8, else none).");
  app.add_option("--concurrency", cfg.concurrency, "Handshakes in flight at once.");
  app.add_option("--connect-timeout", connect_timeout,
                 "Bound on each connection's TCP + TLS + upgrade + handshake.");
  app.add_option("--settle", settle,
                 "Wait after the last handshake before reading the relay's RSS.");
  app.add_option("--hold", hold, "Keep the connections open this long after measuring.");
  app.add_option("--relay-pid", cfg.relay_pid,
                 "Process id of the relay: report its RSS before and after, its open files and "
                 "its open-file limit.");
  app.add_flag("--json", cfg.json, "Print one JSON object instead of the table.");
  if (!ParseFlags(app, argc, argv, kTool)) return 0;
  cfg.hold = ParseDurationFlag(kTool, "hold", hold);
  cfg.settle = ParseDurationFlag(kTool, "settle", settle);
  cfg.connect_timeout = ParseDurationFlag(kTool, "connect-timeout", connect_timeout);
  if (cfg.count < 1) FailUsage(kTool, "--count must be at least 1");
  if (cfg.concurrency < 1 || cfg.concurrency > 10000) {
    FailUsage(kTool, "--concurrency must be 1..10000");
  }
  if (cfg.relay_pid != 0) {
    if (auto ok = CheckProcess(cfg.relay_pid); !ok) FailUsage(kTool, "--relay-pid: " + ok.error());
  }

  // Declared before `sh`, which holds streams that use both: destroyed after it.
  asio::io_context io{1};
  std::unique_ptr<asio::ssl::context> tls_context;
  Shared sh;
  sh.cfg = cfg;
  auto url = http::ParseUrl(cfg.url);
  if (!url) FailUsage(kTool, "--url " + cfg.url + ": " + std::string(http::Describe(url.error())));
  sh.url = *url;
  const std::string host = cfg.dial_host.empty() ? url->host : cfg.dial_host;

  {
    tcp::resolver resolver(io);
    std::error_code ec;
    auto results = resolver.resolve(host, std::to_string(url->port), ec);
    if (ec || results.empty()) FailUsage(kTool, "resolve " + host + ": " + ec.message());
    // Prefer IPv4: the source ranges are IPv4, and "localhost" may list ::1 first.
    sh.target = results.begin()->endpoint();
    for (const auto& r : results) {
      if (r.endpoint().address().is_v4()) {
        sh.target = r.endpoint();
        break;
      }
    }
  }
  std::string sources_text = cfg.sources;
  if (sources_text == "auto") {
    const auto a = sh.target.address();
    sources_text = a.is_v4() && a.is_loopback() ? "127.0.0.1-127.0.0.8" : "none";
  }
  auto sources = ParseSources(sources_text);
  if (!sources) FailUsage(kTool, "--sources " + cfg.sources + ": " + sources.error());
  sh.sources = *sources;
  for (const auto& s : sh.sources) {
    if (s.is_v4() != sh.target.address().is_v4()) {
      FailUsage(kTool, "--sources " + s.to_string() + " is not the same family as the relay " +
                           sh.target.address().to_string());
    }
  }

  if (url->tls()) {
    sh.tls_options.server_name = url->host;
    sh.tls_options.ca_file = cfg.ca_file;
    sh.tls_options.insecure = cfg.insecure;
    try {
      tls_context = net::MakeClientContext(sh.tls_options);
    } catch (const std::exception& e) {
      FailUsage(kTool, std::string("TLS set-up: ") + e.what());
    }
    // Idle connections should not each keep 2 x 16 KiB of record buffers on our side.
    SSL_CTX_set_mode(tls_context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    sh.tls_context = tls_context.get();
  }
  http::AppendRequest(sh.request, "GET", url->target,
                      {{"Host", url->HostHeader()},
                       {"User-Agent", "derpkit derp-conns"},
                       {"Connection", "Upgrade"},
                       {"Upgrade", "DERP"}});

  // Our own file budget: raise the soft limit to the hard one, then trim the count to fit.
  std::vector<std::string> notes;
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  const std::uint64_t own_limit = lim.rlim_cur;
  sh.target_count = cfg.count;
  if (own_limit != RLIM_INFINITY && cfg.count + kFileMargin > own_limit) {
    sh.target_count = own_limit > kFileMargin ? own_limit - kFileMargin : 0;
    notes.push_back("asked for " + std::to_string(cfg.count) +
                    " connections but this process may open at most " + std::to_string(own_limit) +
                    " files (hard limit " + std::to_string(lim.rlim_max) + "); opening " +
                    std::to_string(sh.target_count) + " instead");
  }
  const std::uint64_t port_budget = std::max<std::uint64_t>(1, sh.sources.size()) * kPortsPerSource;
  if (sh.target_count > port_budget) {
    notes.push_back("warning: " + std::to_string(sh.target_count) +
                    " connections need more than ~" + std::to_string(port_budget) +
                    " local ports; add --sources");
  }
  std::optional<FileLimit> relay_limit;
  std::optional<std::uint64_t> relay_files_before, relay_rss_before, relay_rss_after,
      relay_files_after;
  if (cfg.relay_pid) {
    if (auto l = ReadOpenFileLimit(cfg.relay_pid)) relay_limit = *l;
    if (auto f = CountOpenFiles(cfg.relay_pid)) relay_files_before = *f;
    if (auto r = ReadRssBytes(cfg.relay_pid)) relay_rss_before = *r;
    if (relay_limit && relay_files_before &&
        sh.target_count + *relay_files_before > relay_limit->soft) {
      notes.push_back("note: the relay (pid " + std::to_string(cfg.relay_pid) +
                      ") may open at most " + std::to_string(relay_limit->soft) +
                      " files and already has " + std::to_string(*relay_files_before) +
                      " open, so it can hold about " +
                      std::to_string(relay_limit->soft - *relay_files_before) +
                      " more connections; expect it to stop accepting there");
    }
  }
  if (!cfg.json) {
    for (const auto& n : notes) std::fprintf(stderr, "%s: %s\n", kTool.data(), n.c_str());
  }

  const auto self_rss_before = ReadRssBytes(::getpid());
  sh.conns.reserve(sh.target_count);
  const int workers = static_cast<int>(
      std::min<std::uint64_t>(static_cast<std::uint64_t>(cfg.concurrency), sh.target_count));
  const auto t0 = Clock::now();
  for (int i = 0; i < workers; ++i) asio::co_spawn(io, Worker(sh), asio::detached);
  io.run();
  const double open_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t established = sh.conns.size();

  std::this_thread::sleep_for(cfg.settle);
  if (cfg.relay_pid) {
    if (auto r = ReadRssBytes(cfg.relay_pid)) relay_rss_after = *r;
    if (auto f = CountOpenFiles(cfg.relay_pid)) relay_files_after = *f;
  }
  const auto self_rss_after = ReadRssBytes(::getpid());
  std::this_thread::sleep_for(cfg.hold);
  const std::uint64_t alive = CountAlive(sh.conns);

  std::optional<double> per_conn;
  if (relay_rss_before && relay_rss_after && established > 0) {
    per_conn = (static_cast<double>(*relay_rss_after) - static_cast<double>(*relay_rss_before)) /
               static_cast<double>(established);
  }
  std::optional<double> self_per_conn;
  if (self_rss_before && self_rss_after && established > 0) {
    self_per_conn = (static_cast<double>(*self_rss_after) - static_cast<double>(*self_rss_before)) /
                    static_cast<double>(established);
  }
  const bool tls = sh.tls_context != nullptr;
  std::string sources_desc =
      sh.sources.empty() ? std::string("kernel-chosen") : sh.sources.front().to_string();
  if (sh.sources.size() > 1) sources_desc += "-" + sh.sources.back().to_string();

  auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  if (cfg.json) {
    nlohmann::json j;
    j["tool"] = kTool;
    j["url"] = cfg.url;
    j["tls"] = tls;
    j["requested"] = cfg.count;
    j["attempted_target"] = sh.target_count;
    j["established"] = established;
    j["alive_after_hold"] = alive;
    j["failures"] = sh.failures;
    j["stopped_because"] =
        sh.first_error.empty() ? nlohmann::json() : nlohmann::json(sh.first_error);
    j["notes"] = notes;
    j["sources"] = sources_desc;
    j["open_seconds"] = open_seconds;
    j["own_open_file_limit"] = own_limit;
    j["relay_pid"] = cfg.relay_pid ? nlohmann::json(cfg.relay_pid) : nlohmann::json();
    j["relay_rss_before_bytes"] = opt(relay_rss_before);
    j["relay_rss_after_bytes"] = opt(relay_rss_after);
    j["relay_rss_per_connection_bytes"] = opt(per_conn);
    j["relay_open_files_after"] = opt(relay_files_after);
    j["relay_open_file_limit"] = relay_limit ? nlohmann::json(relay_limit->soft) : nlohmann::json();
    j["loadgen_rss_per_connection_bytes"] = opt(self_per_conn);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("derp-conns against %s (%s), sources %s\n", cfg.url.c_str(), tls ? "TLS" : "plain",
                sources_desc.c_str());
    Table t;
    t.AddRow({"requested", std::to_string(cfg.count)});
    if (sh.target_count != cfg.count) {
      t.AddRow({"attempted (file limit)", std::to_string(sh.target_count)});
    }
    t.AddRow({"established", std::to_string(established)});
    t.AddRow({"still open after hold", std::to_string(alive)});
    if (!sh.first_error.empty()) t.AddRow({"failed", std::to_string(sh.failures)});
    t.AddRow({"time to open",
              Fixed(open_seconds, 2) + " s (" +
                  Fixed(static_cast<double>(established) / std::max(open_seconds, 1e-9), 0) +
                  " handshakes/s)"});
    if (cfg.relay_pid) {
      auto bytes = [](const std::optional<std::uint64_t>& v) {
        return v ? HumanBytes(static_cast<double>(*v)) : std::string("n/a");
      };
      t.AddRow({"relay RSS before", bytes(relay_rss_before)});
      t.AddRow({"relay RSS after", bytes(relay_rss_after)});
      t.AddRow(
          {"relay RSS per connection", per_conn ? Fixed(*per_conn, 0) + " B" : std::string("n/a")});
      t.AddRow({"relay open files",
                (relay_files_after ? std::to_string(*relay_files_after) : std::string("n/a")) +
                    " (limit " +
                    (relay_limit ? std::to_string(relay_limit->soft) : std::string("n/a")) + ")"});
    } else {
      t.AddRow({"relay RSS", "not measured (give --relay-pid)"});
    }
    if (self_per_conn) t.AddRow({"derp-conns RSS per connection", Fixed(*self_per_conn, 0) + " B"});
    t.Print(stdout);
    std::printf("summary: %llu idle %s connections established",
                static_cast<unsigned long long>(established), tls ? "TLS" : "plain");
    if (per_conn) std::printf(", relay RSS %.0f B per connection", *per_conn);
    std::printf("\n");
  }
  if (!sh.first_error.empty()) {
    std::fprintf(stderr, "%s: stopped after %llu established connections: %s\n", kTool.data(),
                 static_cast<unsigned long long>(established), sh.first_error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace derpkit::bench

int main(int argc, char** argv) { return derpkit::bench::Main(argc, argv); }
