// Where to send netcheck's probes: a node's STUN endpoint per family (STUNTestIP, else the
// literal IPv4/IPv6 field, else DNS of HostName; port per EffectiveStunPort), and the addresses
// to dial for HTTPS (literals first, else DNS).
//
// DNS lookups are bounded by a deadline even though getaddrinfo itself cannot be interrupted:
// the lookup runs detached and a late answer is dropped.
//
// Thread affinity: coroutines on the caller's io_context.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "lib/util/expected.h"
#include "netcheck/plan.h"

namespace derpkit::netcheck {

using SteadyTime = std::chrono::steady_clock::time_point;

// Addresses of `host` (an IP literal is returned as is), IPv4 first; restricted to `family` when
// given. Error: "lookup <host>: <reason>" or "lookup <host>: no answer within <n>ms".
asio::awaitable<Expected<std::vector<asio::ip::address>, std::string>> LookupHost(
    asio::io_context& io, std::string host, std::optional<Family> family, SteadyTime deadline);

// The endpoint a STUN probe for `node` over `family` goes to. Error when the node has no STUN, no
// address of that family, or DNS fails.
asio::awaitable<Expected<asio::ip::udp::endpoint, std::string>> StunEndpoint(asio::io_context& io,
                                                                             derpmap::Node node,
                                                                             Family family,
                                                                             SteadyTime deadline);

// Addresses to dial for a node's HTTPS/DERP port: its IPv4 literal and IPv6 literal; for an
// empty field, DNS answers of that family for HostName; disabled families are skipped.
asio::awaitable<Expected<std::vector<asio::ip::address>, std::string>> DialAddresses(
    asio::io_context& io, derpmap::Node node, SteadyTime deadline);

}  // namespace derpkit::netcheck
