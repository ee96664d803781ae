// Probe targets and bounded DNS lookups (see resolve.h). Runs on the caller's io_context.
#include "netcheck/resolve.h"

#include <asio/experimental/as_tuple.hpp>
#include <memory>

#include "lib/net/as_tuple.h"

namespace derpkit::netcheck {
namespace {

using ::derpkit::net::kAsTuple;

struct Lookup {
  explicit Lookup(asio::io_context& io) : wake(io) {}
  asio::steady_timer wake;
  bool done = false;
  std::error_code ec;
  std::vector<asio::ip::address> addresses;
};

std::string MillisText(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
}

}  // namespace

asio::awaitable<Expected<std::vector<asio::ip::address>, std::string>> LookupHost(
    asio::io_context& io, std::string host, std::optional<Family> family, SteadyTime deadline) {
  using Result = Expected<std::vector<asio::ip::address>, std::string>;
  std::error_code parse_ec;
  const auto literal = asio::ip::make_address(host, parse_ec);
  if (!parse_ec) {
    if (family && (literal.is_v4() != (*family == Family::kIpv4))) {
      co_return Result(Unexpected(host + " is not an " +
                                  (*family == Family::kIpv4 ? "IPv4" : "IPv6") + " address"));
    }
    co_return Result(std::vector<asio::ip::address>{literal});
  }
  auto lookup = std::make_shared<Lookup>(io);
  const auto started = std::chrono::steady_clock::now();
  // getaddrinfo runs on Asio's resolver thread and cannot be cut short; the lookup therefore runs
  // detached and we wait on a timer that its completion cancels.
  asio::co_spawn(
      io,
      [&io, lookup, host, family]() -> asio::awaitable<void> {
        asio::ip::tcp::resolver resolver(io);
        auto [ec, results] = co_await resolver.async_resolve(host, "", kAsTuple);
        lookup->ec = ec;
        if (!ec) {
          for (const auto& entry : results) {
            const auto a = entry.endpoint().address();
            if (family && a.is_v4() != (*family == Family::kIpv4)) continue;
            bool seen = false;
            for (const auto& b : lookup->addresses) seen = seen || a == b;
            if (!seen) lookup->addresses.push_back(a);
          }
        }
        lookup->done = true;
        lookup->wake.cancel();
      },
      asio::detached);
  lookup->wake.expires_at(deadline);
  while (!lookup->done && std::chrono::steady_clock::now() < deadline) {
    co_await lookup->wake.async_wait(kAsTuple);
  }
  if (!lookup->done) {
    co_return Result(Unexpected("lookup " + host + ": no answer within " +
                                MillisText(std::chrono::steady_clock::now() - started)));
  }
  if (lookup->ec) co_return Result(Unexpected("lookup " + host + ": " + lookup->ec.message()));
  if (lookup->addresses.empty()) {
    co_return Result(Unexpected(
        "lookup " + host + ": no " +
        (family ? std::string(*family == Family::kIpv4 ? "IPv4 " : "IPv6 ") : std::string()) +
        "address"));
  }
  std::stable_partition(lookup->addresses.begin(), lookup->addresses.end(),
                        [](const asio::ip::address& a) { return a.is_v4(); });
  co_return Result(std::move(lookup->addresses));
}

asio::awaitable<Expected<asio::ip::udp::endpoint, std::string>> StunEndpoint(asio::io_context& io,
                                                                             derpmap::Node node,
                                                                             Family family,
                                                                             SteadyTime deadline) {
  using Result = Expected<asio::ip::udp::endpoint, std::string>;
  const auto port = node.EffectiveStunPort();
  if (!port) co_return Result(Unexpected("node " + node.name + " has no STUN (STUNPort -1)"));
  std::string host;
  if (!node.stun_test_ip.empty()) {
    host = node.stun_test_ip;
  } else {
    const auto use = family == Family::kIpv4 ? node.Ipv4Use() : node.Ipv6Use();
    switch (use) {
      case derpmap::Node::AddrUse::kDisabled:
        co_return Result(Unexpected("node " + node.name + " has " +
                                    (family == Family::kIpv4 ? "IPv4" : "IPv6") + " disabled"));
      case derpmap::Node::AddrUse::kLiteral:
        host = family == Family::kIpv4 ? node.ipv4 : node.ipv6;
        break;
      case derpmap::Node::AddrUse::kDns:
        host = node.host_name;
        break;
    }
  }
  auto addresses = co_await LookupHost(io, host, family, deadline);
  if (!addresses) co_return Result(Unexpected(addresses.error()));
  co_return Result(asio::ip::udp::endpoint(addresses->front(), *port));
}

asio::awaitable<Expected<std::vector<asio::ip::address>, std::string>> DialAddresses(
    asio::io_context& io, derpmap::Node node, SteadyTime deadline) {
  using Result = Expected<std::vector<asio::ip::address>, std::string>;
  std::vector<asio::ip::address> out;
  std::string last_error = "node " + node.name + " has neither IPv4 nor IPv6";
  for (const Family family : {Family::kIpv4, Family::kIpv6}) {
    const auto use = family == Family::kIpv4 ? node.Ipv4Use() : node.Ipv6Use();
    if (use == derpmap::Node::AddrUse::kDisabled) continue;
    const std::string host = use == derpmap::Node::AddrUse::kLiteral
                                 ? (family == Family::kIpv4 ? node.ipv4 : node.ipv6)
                                 : node.host_name;
    auto found = co_await LookupHost(io, host, family, deadline);
    if (!found) {
      last_error = found.error();
      continue;
    }
    out.insert(out.end(), found->begin(), found->end());
  }
  if (out.empty()) co_return Result(Unexpected(last_error));
  co_return Result(std::move(out));
}

}  // namespace derpkit::netcheck
