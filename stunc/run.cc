// stunc's request schedule on one StunSocket (see run.h).
//
// Thread affinity: everything runs on Run()'s own io_context, on the calling thread.
#include "stunc/run.h"

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <csignal>
#include <memory>
#include <optional>

#include "lib/net/as_tuple.h"

namespace derpkit::stunc {
namespace {

using asio::ip::udp;
using ::derpkit::net::kAsTuple;

// Resolves with getaddrinfo (AF_UNSPEC, no AI_ADDRCONFIG: a loopback-only host must still find
// ::1) and picks the address -4/-6 ask for. Blocking: getaddrinfo's own timeouts bound it, not
// --timeout.
Expected<udp::endpoint, std::string> Resolve(asio::io_context& io, const StuncConfig& c) {
  udp::resolver resolver(io);
  asio::error_code ec;
  const auto results =
      resolver.resolve(c.host, std::to_string(c.port), udp::resolver::numeric_service, ec);
  if (ec) return Unexpected{"cannot resolve " + c.host + ": " + ec.message()};
  std::optional<udp::endpoint> first_v4, first_v6;
  for (const auto& entry : results) {
    const udp::endpoint ep = entry.endpoint();  // a copy: endpoint() returns by value
    if (ep.address().is_v4() && !first_v4) first_v4 = ep;
    if (ep.address().is_v6() && !first_v6) first_v6 = ep;
  }
  switch (c.family) {
    case FamilyChoice::kIpv4:
      if (first_v4) return *first_v4;
      return Unexpected{c.host + " has no IPv4 address (-4)"};
    case FamilyChoice::kIpv6:
      if (first_v6) return *first_v6;
      return Unexpected{c.host + " has no IPv6 address (-6)"};
    case FamilyChoice::kAny:
      break;
  }
  if (first_v4) return *first_v4;
  if (first_v6) return *first_v6;
  return Unexpected{"cannot resolve " + c.host + ": no address"};
}

// The source address the kernel picks for `server`: connect() on a UDP socket only looks up the
// route, it sends nothing.
asio::ip::address SourceAddressFor(asio::io_context& io, const udp::endpoint& server) {
  udp::socket probe(io);
  asio::error_code ec;
  probe.open(server.protocol(), ec);
  if (!ec) probe.connect(server, ec);
  const udp::endpoint local = ec ? udp::endpoint() : probe.local_endpoint(ec);
  if (ec)
    return server.address().is_v6() ? asio::ip::address(asio::ip::address_v6::any())
                                    : asio::ip::address(asio::ip::address_v4::any());
  return local.address();
}

class Runner {
 public:
  Runner(const StuncConfig& config, const RunCallbacks& callbacks)
      : config_(config), callbacks_(callbacks) {}

  RunResult Go() {
    auto server = Resolve(io_, config_);
    if (!server) {
      result_.error = server.error();
      return result_;
    }
    result_.server = *server;
    const bool v6 = server->address().is_v6();
    auto socket =
        net::StunSocket::Open(io_, {.family = v6 ? net::StunSocketOptions::Family::kIpv6
                                                 : net::StunSocketOptions::Family::kIpv4});
    if (!socket) {
      result_.error = socket.error();
      return result_;
    }
    socket_ = std::move(*socket);
    result_.local = udp::endpoint(SourceAddressFor(io_, *server), socket_->local_endpoint().port());
    if (callbacks_.started) callbacks_.started(result_);

    signals_.async_wait([this](const asio::error_code& ec, int) {
      if (!ec) Interrupt();
    });
    asio::co_spawn(io_, SendAll(), asio::detached);
    io_.run();
    return result_;
  }

 private:
  asio::awaitable<void> SendAll() {
    const int n = config_.count.value_or(1);
    for (int seq = 1; seq <= n && !stopping_; ++seq) {
      ++outstanding_;
      ++result_.sent;
      asio::co_spawn(io_, Probe(seq), asio::detached);
      if (seq == n) break;
      pace_.expires_after(config_.interval);
      auto [ec] = co_await pace_.async_wait(kAsTuple);
      (void)ec;  // cancelled by Interrupt(): the loop condition sees stopping_
    }
    sending_done_ = true;
    FinishIfDone();
  }

  asio::awaitable<void> Probe(int seq) {
    const net::StunTransactOptions options{
        .form = config_.rfc5389 ? stun::RequestForm::kBare : stun::RequestForm::kTailscale,
        .timeout = config_.timeout,
        .resend_interval = std::chrono::milliseconds(0)};
    const udp::endpoint server = result_.server;
    auto r = co_await socket_->Transact(server, options);
    --outstanding_;
    if (r) {
      result_.replies.push_back(Reply{seq, std::move(*r)});
      if (callbacks_.reply) callbacks_.reply(result_.replies.back());
    } else if (!(stopping_ && r.error().kind == net::StunFailure::Kind::kClosed)) {
      result_.misses.push_back(Miss{seq, r.error()});
      if (callbacks_.miss) callbacks_.miss(result_.misses.back());
    }
    FinishIfDone();
  }

  // Like ping's ^C: stop sending; requests still in flight count as sent and unanswered.
  void Interrupt() {
    stopping_ = true;
    result_.interrupted = true;
    pace_.cancel();
    socket_->Close();
  }

  void FinishIfDone() {
    if (!sending_done_ || outstanding_ > 0) return;
    signals_.cancel();  // the last pending handler: io_.run() returns
    socket_->Close();
  }

  const StuncConfig& config_;
  const RunCallbacks& callbacks_;
  asio::io_context io_;
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  asio::steady_timer pace_{io_};
  std::unique_ptr<net::StunSocket> socket_;
  int outstanding_ = 0;
  bool sending_done_ = false;
  bool stopping_ = false;
  RunResult result_;
};

}  // namespace

RunResult Run(const StuncConfig& config, const RunCallbacks& callbacks) {
  return Runner(config, callbacks).Go();
}

}  // namespace derpkit::stunc
