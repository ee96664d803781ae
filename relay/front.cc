#include "relay/front.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "lib/derp/messages.h"
#include "lib/http/head.h"
#include "lib/http/proxy_protocol.h"
#include "lib/http/websocket.h"
#include "lib/net/direct_tls_stream.h"
#include "lib/net/log.h"
#include "lib/net/socket_options.h"
#include "lib/net/stream.h"
#include "lib/net/tls13_stream.h"
#include "lib/net/ws_stream.h"
#include "lib/util/netaddr.h"
#include "relay/acme_challenges.h"
#include "relay/client_conn.h"
#include "relay/conn_runner.h"
#include "relay/debug.h"
#include "relay/http_routes.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {
namespace {

constexpr std::size_t kMaxRequestsPerConnection = 100;
static_assert(kRouteIdCount <= std::tuple_size_v<decltype(ShardStats::http_requests_by_route)>);
constexpr auto kIdleBetweenRequests = std::chrono::seconds(60);

netaddr::IpAddress ToIp(const asio::ip::address& a) {
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return netaddr::IpAddress::V4(b[0], b[1], b[2], b[3]);
  }
  const auto b = a.to_v6().to_bytes();
  std::array<std::byte, 16> out{};
  std::memcpy(out.data(), b.data(), 16);
  return netaddr::IpAddress::V6(out);
}

// Closes the stream when it fires: ends a stalled TLS handshake or head read.
class Deadline {
 public:
  Deadline(asio::io_context& io, net::Stream& stream) : timer_(io), stream_(stream) {}
  ~Deadline() { timer_.cancel(); }
  void Arm(std::chrono::steady_clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([this, gen = ++generation_, fired = fired_](const std::error_code& ec) {
      if (!ec && gen == generation_) {
        *fired = true;
        stream_.Close();
      }
    });
  }
  void Disarm() {
    ++generation_;
    timer_.cancel();
  }
  bool fired() const { return *fired_; }

 private:
  asio::steady_timer timer_;
  net::Stream& stream_;
  std::uint64_t generation_ = 0;
  std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
};

// Reads a PROXY protocol header from the socket without consuming a byte past it (MSG_PEEK,
// then a read of exactly its size), so that a TLS handshake can follow on the same socket.
asio::awaitable<Expected<http::ProxyHeader, std::string>> ReadProxyHeader(
    asio::ip::tcp::socket& socket) {
  std::array<std::byte, http::kMaxProxyV2Size> peek;
  std::size_t last_seen = 0;
  asio::steady_timer pause(socket.get_executor());
  for (;;) {
    auto [wec] = co_await socket.async_wait(asio::socket_base::wait_read, net::kAsTuple);
    if (wec) co_return Unexpected{"PROXY header: " + wec.message()};
    const ssize_t n = ::recv(socket.native_handle(), peek.data(), peek.size(), MSG_PEEK);
    if (n == 0) co_return Unexpected{std::string("PROXY header: connection closed")};
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      co_return Unexpected{std::string("PROXY header: ") + std::strerror(errno)};
    }
    auto header = http::ParseProxyHeader(std::span(peek).first(static_cast<std::size_t>(n)));
    if (header) {
      std::vector<std::byte> consume(header->header_size);
      auto [rec, got] = co_await asio::async_read(socket, asio::buffer(consume), net::kAsTuple);
      if (rec) co_return Unexpected{"PROXY header: " + rec.message()};
      co_return *header;
    }
    if (header.error() != http::ProxyError::kIncomplete) {
      co_return Unexpected{"bad PROXY header: " + std::string(http::Describe(header.error()))};
    }
    // The rest of the header has not arrived; the socket stays readable, so wait a moment
    // rather than spin. The connection's handshake deadline bounds the whole wait.
    if (static_cast<std::size_t>(n) == last_seen) {
      pause.expires_after(std::chrono::milliseconds(5));
      co_await pause.async_wait(net::kAsTuple);
    }
    last_seen = static_cast<std::size_t>(n);
  }
}

class FrontConnection {
 public:
  FrontConnection(Shard& shard, std::unique_ptr<net::Stream> stream, ListenerKind kind,
                  netaddr::IpAddress peer_ip, std::uint16_t peer_port)
      : shard_(shard),
        server_(shard.server()),
        stream_(std::move(stream)),
        kind_(kind),
        peer_ip_(peer_ip),
        peer_port_(peer_port),
        remote_(netaddr::JoinHostPort(peer_ip.ToString(), peer_port)),
        deadline_(shard.io(), *stream_) {}

  asio::awaitable<void> Run();

 private:
  asio::awaitable<std::optional<CloseReason>> ReadHead(http::RequestHead& head);
  asio::awaitable<bool> Write(const std::string& bytes);
  asio::awaitable<void> Finish(CloseReason reason);
  asio::awaitable<void> Upgrade(const RouteResult& result);

  Shard& shard_;
  Server& server_;
  std::unique_ptr<net::Stream> stream_;
  ListenerKind kind_;
  netaddr::IpAddress peer_ip_;
  std::uint16_t peer_port_;
  std::string remote_;
  Deadline deadline_;
  Bytes buf_;  // request bytes read but not yet consumed
};

asio::awaitable<void> FrontConnection::Finish(CloseReason reason) {
  shard_.stats().RecordClose(reason);
  stream_->Close();
  co_return;
}

asio::awaitable<bool> FrontConnection::Write(const std::string& bytes) {
  const asio::const_buffer b(bytes.data(), bytes.size());
  auto r = co_await stream_->WriteAll(std::span(&b, 1));
  co_return !r.ec;
}

asio::awaitable<std::optional<CloseReason>> FrontConnection::ReadHead(http::RequestHead& head) {
  // Reads go straight into buf_, a little at a time: a DERP upgrade's head is a few hundred
  // bytes, and thousands of connections may be in this state at once (no 4 KiB frame buffer).
  constexpr std::size_t kReadStep = 1024;
  for (;;) {
    if (!buf_.empty()) {
      auto parsed = http::ParseRequestHead(buf_);
      if (parsed) {
        head = std::move(*parsed);
        co_return std::nullopt;
      }
      if (parsed.error() != http::ParseError::kIncomplete) {
        const bool too_large = parsed.error() == http::ParseError::kHeadTooLarge;
        LOG_INFO("%s: bad HTTP request: %s", remote_.c_str(),
                 std::string(http::Describe(parsed.error())).c_str());
        http::Response resp;
        resp.status = too_large ? 431 : 400;
        resp.headers.push_back({"Connection", "close"});
        resp.body = std::string(http::Describe(parsed.error())) + "\n";
        std::string out;
        http::AppendResponse(out, resp, std::chrono::system_clock::now());
        co_await Write(out);
        co_return too_large ? CloseReason::kHeadTooLarge : CloseReason::kBadHttp;
      }
    }
    const std::size_t had = buf_.size();
    buf_.resize(had + kReadStep);
    auto r = co_await stream_->ReadSome(std::span(buf_).subspan(had));
    buf_.resize(had + (r.ec ? 0 : r.bytes));
    if (r.ec) {
      if (deadline_.fired()) co_return CloseReason::kHandshakeTimeout;
      co_return buf_.empty() ? CloseReason::kHttpDone : CloseReason::kPeerClosed;
    }
  }
}

asio::awaitable<void> FrontConnection::Run() {
  const RelayConfig& config = server_.config();
  deadline_.Arm(config.handshake_timeout);
  const bool expects_proxy = (kind_ == ListenerKind::kMain && config.proxy_main) ||
                             (kind_ == ListenerKind::kHttpPort && config.proxy_http) ||
                             (kind_ == ListenerKind::kDebug && config.proxy_debug);
  if (expects_proxy) {
    auto header = co_await ReadProxyHeader(stream_->tcp());
    if (!header) {
      LOG_INFO("%s: %s; closing", remote_.c_str(), header.error().c_str());
      shard_.stats().proxy_header_failures.Add();
      co_return co_await Finish(deadline_.fired() ? CloseReason::kHandshakeTimeout
                                                  : CloseReason::kBadProxyHeader);
    }
    // LOCAL (a proxy's health check) and unknown families keep the proxy's own address.
    if (header->has_source) {
      peer_ip_ = header->source_ip.Unmap();
      peer_port_ = header->source_port;
      remote_ = netaddr::JoinHostPort(peer_ip_.ToString(), peer_port_);
    }
  }
  if (auto* tls = dynamic_cast<net::DirectTlsStream*>(stream_.get())) {
    const std::error_code ec = co_await tls->Handshake();
    if (ec) {
      if (!deadline_.fired()) {
        LOG_DEBUG("%s: TLS handshake failed: %s", remote_.c_str(), ec.message().c_str());
      }
      if (!deadline_.fired()) shard_.stats().tls_handshake_failures.Add();
      co_return co_await Finish(deadline_.fired() ? CloseReason::kHandshakeTimeout
                                                  : CloseReason::kTlsError);
    }
    const bool tls13 = SSL_version(tls->native_handle()) == TLS1_3_VERSION;
    shard_.stats().tls_versions[tls13 ? 1 : 0].Add();
    // TLS 1.3 with a known suite: our own record layer from here, and the ~14 KB SSL is freed.
    // Otherwise (TLS 1.2, ...) the connection stays on the DirectTlsStream.
    if (auto handover = tls->TakeTls13()) {
      stream_ = std::make_unique<net::Tls13Stream>(std::move(handover->socket), handover->read,
                                                   handover->write);
      shard_.stats().tls13_record_layer.Add();
    }
  }

  RouteContext ctx;
  ctx.home = config.home;
  ctx.derp_enabled = config.derp;
  ctx.is_plain_port80_listener = kind_ == ListenerKind::kHttpPort;
  ctx.tls = stream_->is_tls();
  ctx.hostname = config.hostname;

  for (std::size_t served = 0; served < kMaxRequestsPerConnection; ++served) {
    http::RequestHead head;
    if (auto reason = co_await ReadHead(head)) co_return co_await Finish(*reason);
    deadline_.Disarm();
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(head.head_size));

    // Access to /debug/ is decided per request: the query may carry the debug key, and a request
    // with X-Forwarded-For is refused.
    ctx.debug_allowed = AllowDebugAccess(head, peer_ip_, server_.debug_access());
    // /bootstrap-dns (main listener only): the last background refresh, per ?q= and caller.
    std::string bootstrap_dns_body;
    if (kind_ == ListenerKind::kMain && RoutingPath(head) == "/bootstrap-dns") {
      bootstrap_dns_body = server_.bootstrap_dns().Answer(head.target, peer_ip_);
    }
    ctx.bootstrap_dns_json = bootstrap_dns_body;
    RouteResult result = relay::Route(head, ctx);
    if (kind_ == ListenerKind::kHttpPort && server_.certs() != nullptr &&
        server_.certs()->challenges() != nullptr) {
      AnswerHttp01(head, *server_.certs()->challenges(), result);  // ACME HTTP-01
    }
    if (kind_ == ListenerKind::kDebug && result.kind != RouteResult::Kind::kDebug) {
      // The --debug-addr listener serves /debug/ and nothing else.
      result.kind = RouteResult::Kind::kResponse;
      result.response = http::Response{};
      result.response.status = 404;
      result.response.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
      result.response.body = "404 page not found\n";
    }
    if (result.kind == RouteResult::Kind::kDerpUpgrade) {
      co_return co_await Upgrade(result);
    }
    if (result.kind == RouteResult::Kind::kDebug) {
      // Separate statements: GCC 12 destroys temporaries twice around a co_await inside ?:.
      if (ctx.debug_allowed) {
        http::Response page = co_await ServeDebug(head, server_);
        result.response = std::move(page);
      } else {
        result.response = DebugAccessDenied();
      }
    }
    // A response put in place above still answers this request (Connection: close, HEAD).
    ApplyRequestFraming(head, result);
    shard_.stats().http_requests.Add();
    shard_.stats().http_requests_by_route[static_cast<std::size_t>(result.route)].Add();
    std::string out;
    http::AppendResponse(out, result.response, std::chrono::system_clock::now());
    const bool close = result.close_after || head.version_minor == 0 ||
                       (head.Find("Connection") != nullptr && *head.Find("Connection") == "close");
    if (!co_await Write(out) || close) co_return co_await Finish(CloseReason::kHttpDone);
    // A request body would be read as the next head; DERP's HTTP surface has no bodies we use,
    // so a request with one ends the connection after its response.
    if (head.Find("Content-Length") != nullptr || head.Find("Transfer-Encoding") != nullptr) {
      co_return co_await Finish(CloseReason::kHttpDone);
    }
    deadline_.Arm(kIdleBetweenRequests);
  }
  co_return co_await Finish(CloseReason::kHttpDone);
}

asio::awaitable<void> FrontConnection::Upgrade(const RouteResult& result) {
  const DerpUpgrade& upgrade = result.upgrade;
  ShardStats& stats = shard_.stats();
  if (upgrade.websocket) {
    // RFC 6455 101 (Route built it), then DERP from ServerKey on inside binary messages: no
    // fast start and no Derp-* headers on this path (derp-protocol.md §3.4).
    std::string head_out;
    http::AppendResponse(head_out, result.response, std::chrono::system_clock::now());
    if (upgrade.websocket_subprotocol != "derp") {
      // derper completes the handshake, then closes with 1008 (policy violation).
      Bytes close;
      http::AppendWsClose(close, http::kWsClosePolicyViolation, "subprotocol must be derp",
                          nullptr);
      head_out.append(reinterpret_cast<const char*>(close.data()), close.size());
      co_await Write(head_out);
      co_return co_await Finish(CloseReason::kBadHttp);
    }
    if (!co_await Write(head_out)) co_return co_await Finish(CloseReason::kPeerClosed);
    stream_ = std::make_unique<net::WsStream>(std::move(stream_), net::WsStream::Role::kServer,
                                              std::move(buf_));
    buf_.clear();
    stats.websocket_accepts.Add();
  }
  stats.derp_accepts.Add();
  // The 101 and the ServerKey frame leave in one write, as derper sends them.
  std::string out;
  if (!upgrade.fast_start && !upgrade.websocket) {
    out =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
        "Derp-Version: 2\r\nDerp-Public-Key: " +
        server_.public_key().ToHex() + "\r\n\r\n";
  }
  Bytes key_frame;
  derp::AppendServerKey(key_frame, server_.public_key());
  out.append(reinterpret_cast<const char*>(key_frame.data()), key_frame.size());
  if (!co_await Write(out)) co_return co_await Finish(CloseReason::kPeerClosed);

  ConnStart start;
  start.remote = remote_;
  start.remote_ip16 = peer_ip_.As16();
  start.remote_port = peer_port_;
  start.not_ideal = upgrade.not_ideal;
  start.read_ahead = std::move(buf_);
  deadline_.Disarm();
  // The DERP connection outlives the front door: it runs as its own coroutine, which owns it,
  // and the front's coroutine frames (request head, response strings, this object) are freed
  // now rather than held for the connection's life (most of an idle connection's memory).
  RunConnection(std::make_unique<ClientConn>(shard_, std::move(stream_), std::move(start)));
  co_return;
}

}  // namespace

asio::awaitable<void> ServeConnection(Shard& shard, asio::ip::tcp::socket socket,
                                      ListenerKind kind) {
  Server& server = shard.server();
  shard.stats().accepts.Add();
  std::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) co_return;
  const RelayConfig& config = server.config();
  net::ApplyTcpOptions(socket,
                       net::TcpOptions{config.tcp_keepalive_time, config.tcp_user_timeout, true});
  std::unique_ptr<net::Stream> stream;
  // The others are plain. A copy: a certificate reload may publish a new context at any moment;
  // SSL_new takes its own reference on this one's SSL_CTX, which then lives (certificate,
  // callbacks and their state) for as long as the connection does.
  std::shared_ptr<asio::ssl::context> tls_context;
  if (kind == ListenerKind::kMain) tls_context = server.tls_context();
  if (tls_context != nullptr) {
    stream = std::make_unique<net::DirectTlsStream>(std::move(socket), tls_context->native_handle(),
                                                    net::DirectTlsStream::Role::kServer);
    tls_context.reset();
  } else {
    stream = std::make_unique<net::TcpStream>(std::move(socket));
  }
  FrontConnection conn(shard, std::move(stream), kind, ToIp(peer.address()).Unmap(), peer.port());
  co_await conn.Run();
}

}  // namespace derpkit::relay
