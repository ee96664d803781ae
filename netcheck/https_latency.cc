// HTTPS latency measurement (see https_latency.h). Runs on the caller's io_context.
#include "netcheck/https_latency.h"

#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <memory>

#include "lib/http/head.h"
#include "lib/net/as_tuple.h"
#include "lib/net/tls.h"
#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using SslStream = asio::ssl::stream<tcp::socket>;
using ::derpkit::net::kAsTuple;

// Closes `socket` at `deadline` unless destroyed first; that ends whatever is pending on it
// (connect, TLS handshake, read) with an error. The flag keeps a late handler away from a socket
// that is gone.
class Watchdog {
 public:
  Watchdog(tcp::socket& socket, SteadyTime deadline) : timer_(socket.get_executor()) {
    timer_.expires_at(deadline);
    timer_.async_wait([&socket, alive = alive_, fired = fired_](std::error_code ec) {
      if (ec || !*alive) return;
      *fired = true;
      std::error_code ignored;
      socket.close(ignored);
    });
  }
  ~Watchdog() {
    *alive_ = false;
    timer_.cancel();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool fired() const { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
};

std::string EndpointText(const tcp::endpoint& ep) {
  return netaddr::JoinHostPort(ep.address().to_string(), ep.port());
}

net::TlsClientOptions TlsOptionsFor(const derpmap::Node& node, const std::string& ca_file) {
  net::TlsClientOptions tls;
  tls.server_name = node.host_name;
  tls.cert_name = node.cert_name;
  tls.ca_file = ca_file;
  tls.insecure = node.insecure_for_tests;
  return tls;
}

struct Dialled {
  std::unique_ptr<asio::ssl::context> context;  // must outlive the stream
  std::unique_ptr<SslStream> stream;
  tcp::endpoint remote;
};

// TCP connect and TLS handshake to one address of `node`, by `deadline`.
asio::awaitable<Expected<Dialled, std::string>> DialTls(asio::io_context& io,
                                                        const derpmap::Node& node,
                                                        asio::ip::address address,
                                                        SteadyTime deadline,
                                                        const std::string& ca_file) {
  using Result = Expected<Dialled, std::string>;
  const tcp::endpoint remote(address, node.EffectiveDerpPort());
  Dialled d;
  d.remote = remote;
  const net::TlsClientOptions tls = TlsOptionsFor(node, ca_file);
  try {
    d.context = net::MakeClientContext(tls);
  } catch (const std::exception& e) {
    co_return Result(Unexpected(std::string("TLS set-up: ") + e.what()));
  }
  d.stream = std::make_unique<SslStream>(io, *d.context);
  tcp::socket& socket = d.stream->next_layer();
  Watchdog watchdog(socket, deadline);
  auto [cec] = co_await socket.async_connect(remote, kAsTuple);
  if (cec) {
    co_return Result(Unexpected("connect " + EndpointText(remote) + ": " +
                                (watchdog.fired() ? std::string("timed out") : cec.message())));
  }
  net::PrepareClientSsl(d.stream->native_handle(), tls);
  auto [hec] = co_await d.stream->async_handshake(asio::ssl::stream_base::client, kAsTuple);
  if (hec) {
    const std::string why = watchdog.fired()
                                ? std::string("timed out")
                                : net::DescribeHandshakeFailure(d.stream->native_handle(), hec);
    co_return Result(Unexpected("TLS handshake with " + EndpointText(remote) + ": " + why));
  }
  if (auto problem = net::CheckPeerAfterHandshake(d.stream->native_handle(), tls);
      !problem.empty()) {
    co_return Result(Unexpected("TLS peer check: " + problem));
  }
  co_return Result(std::move(d));
}

// Times GET /derp/latency-check on an established connection.
asio::awaitable<Expected<std::chrono::nanoseconds, std::string>> TimeLatencyCheck(
    Dialled& d, const derpmap::Node& node, SteadyTime deadline) {
  using Result = Expected<std::chrono::nanoseconds, std::string>;
  Watchdog watchdog(d.stream->next_layer(), deadline);
  const std::uint16_t port = node.EffectiveDerpPort();
  const std::string host = port == derpmap::kDefaultDerpPort
                               ? node.host_name
                               : netaddr::JoinHostPort(node.host_name, port);
  std::string request;
  http::AppendRequest(
      request, "GET", "/derp/latency-check",
      {{"Host", host}, {"User-Agent", "derpkit-netcheck"}, {"Connection", "close"}});
  auto [wec, written] = co_await asio::async_write(*d.stream, asio::buffer(request), kAsTuple);
  if (wec) {
    co_return Result(Unexpected("sending the request: " +
                                (watchdog.fired() ? std::string("timed out") : wec.message())));
  }
  const auto sent = Clock::now();
  std::string buffer;
  std::array<char, 4096> chunk;
  for (;;) {
    auto [rec, n] = co_await d.stream->async_read_some(asio::buffer(chunk), kAsTuple);
    if (rec) {
      co_return Result(Unexpected("reading the response: " +
                                  (watchdog.fired() ? std::string("timed out") : rec.message())));
    }
    buffer.append(chunk.data(), n);
    auto head = http::ParseResponseHead(AsBytes(buffer));
    if (!head && head.error() == http::ParseError::kIncomplete) continue;
    const auto latency = Clock::now() - sent;
    if (!head) {
      co_return Result(Unexpected("bad response: " + std::string(http::Describe(head.error()))));
    }
    if (head->status > 299) {
      co_return Result(Unexpected("unexpected status " + std::to_string(head->status) +
                                  (head->reason.empty() ? "" : " " + head->reason)));
    }
    co_return Result(std::chrono::duration_cast<std::chrono::nanoseconds>(latency));
  }
}

}  // namespace

asio::awaitable<Expected<HttpsLatency, std::string>> MeasureHttpsLatency(
    asio::io_context& io, derpmap::Region region, SteadyTime deadline,
    HttpsLatencyOptions options) {
  using Result = Expected<HttpsLatency, std::string>;
  std::string last_error = "region " + std::to_string(region.region_id) + " has no DERP node";
  for (const derpmap::Node& node : region.nodes) {
    if (node.stun_only) continue;
    const SteadyTime node_deadline = std::min(deadline, Clock::now() + options.dial_per_node);
    auto addresses = co_await DialAddresses(io, node, node_deadline);
    if (!addresses) {
      last_error = node.name + ": " + addresses.error();
      continue;
    }
    for (const asio::ip::address& address : *addresses) {
      if (Clock::now() >= node_deadline) break;
      auto dialled = co_await DialTls(io, node, address, node_deadline, options.ca_file);
      if (!dialled) {
        last_error = node.name + ": " + dialled.error();
        continue;
      }
      auto latency = co_await TimeLatencyCheck(*dialled, node, deadline);
      std::error_code ignored;
      dialled->stream->next_layer().close(ignored);
      if (!latency) co_return Result(Unexpected(node.name + ": " + latency.error()));
      co_return Result(HttpsLatency{*latency, address.is_v4(), node.name});
    }
  }
  co_return Result(Unexpected(last_error));
}

}  // namespace derpkit::netcheck
