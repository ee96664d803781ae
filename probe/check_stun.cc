// The udp / udp6 checks (checks.h): one Tailscale-form STUN transaction to the node's literal
// address through lib/net's StunSocket, which resends the same transaction id every
// `resend_after` without an answer, fails at once on an ICMP refusal, and checks that the answer
// parses and echoes the id.
//
// Thread affinity: a coroutine on the io_context given; it owns its socket. The transaction is
// bounded by its own timeout (options.timeout); a cancelled run also ends there at the latest,
// because StunSocket's wait does not stop on a cancellation slot.
#include <asio.hpp>
#include <string>

#include "lib/net/stun_client.h"
#include "lib/util/netaddr.h"
#include "probe/checks.h"

namespace derpkit::probe {
namespace {

asio::awaitable<ProbeResult> StunCheck(asio::io_context& io, derpmap::Node node, bool ipv6,
                                       StunCheckOptions options) {
  ProbeResult result;
  const char* family = ipv6 ? "IPv6" : "IPv4";
  const std::string& literal = ipv6 ? node.ipv6 : node.ipv4;
  const std::optional<std::uint16_t> port = node.EffectiveStunPort();
  if (!port) {
    result.error = node.name + ": STUN is off for this node (STUNPort -1)";
    co_return result;
  }
  const auto ip = netaddr::ParseIp(literal);
  if (!ip || ip->is_v4() == ipv6) {
    result.error = node.name + ": the map gives no " + family + " address literal (" + family +
                   " \"" + literal + "\"), and the " + (ipv6 ? "udp6" : "udp") + " probe needs one";
    co_return result;
  }
  const std::string where = netaddr::JoinHostPort(literal, *port);
  const std::string prefix = node.name + " (" + where + "): ";
  std::error_code ec;
  const asio::ip::address address = asio::ip::make_address(literal, ec);
  if (ec) {
    result.error = prefix + "not an IP address: " + ec.message();
    co_return result;
  }

  net::StunSocketOptions socket_options;
  socket_options.family =
      ipv6 ? net::StunSocketOptions::Family::kIpv6 : net::StunSocketOptions::Family::kIpv4;
  auto socket = net::StunSocket::Open(io, socket_options);
  if (!socket) {
    result.error = prefix + socket.error();
    co_return result;
  }
  net::StunTransactOptions transact;
  transact.timeout = options.timeout;
  transact.resend_interval = options.resend_after;
  const asio::ip::udp::endpoint server(address, *port);
  auto answer = co_await (*socket)->Transact(server, transact);
  if (!answer) {
    result.error = prefix + "STUN: " + answer.error().message;
    co_return result;
  }
  result.ok = true;
  result.latency = answer->rtt;
  co_return result;
}

}  // namespace

// Runs the body with throw_if_cancelled off, so that a cancelled run ends with a result instead
// of an exception, then restores the caller's setting (it belongs to the whole coroutine thread).
asio::awaitable<ProbeResult> CheckStun(asio::io_context& io, derpmap::Node node, bool ipv6,
                                       StunCheckOptions options) {
  const bool throws = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto check = StunCheck(io, std::move(node), ipv6, std::move(options));
  ProbeResult result = co_await std::move(check);
  co_await asio::this_coro::throw_if_cancelled(throws);
  co_return result;
}

}  // namespace derpkit::probe
