// Captive-portal check for netcheck (tools-reference.md §4.6): GET /generate_204 on DERP nodes
// that have CanPort80, with Tailscale's X-Tailscale-Challenge; anything but a 204 carrying the
// right X-Tailscale-Response means something between us and the node rewrites plain HTTP.
//
// Thread affinity: runs as a coroutine on the caller's executor; the caller may cancel it (the
// reference stops the check once STUN has succeeded, except with --verbose).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace derpkit::netcheck {

struct CaptiveTarget {
  std::string ipv4;         // the node's IPv4 literal (the reference uses only literal IPv4s)
  std::uint16_t port = 80;  // 80 in real use; tests may point elsewhere
  std::string node_name;    // for --verbose notes
};

struct CaptiveOptions {
  std::chrono::milliseconds timeout{3000};  // per request, as the reference
  std::string bind_address;                 // local address to send from; empty = any
  std::size_t max_concurrent = 5;           // the reference asks at most 5 endpoints at once
};

struct CaptiveResult {
  // true: some endpoint answered as a captive portal would; false: an endpoint answered correctly
  // and none looked captive; nullopt: no endpoint answered (or no targets).
  std::optional<bool> captive;
  std::vector<std::string> notes;  // one line per endpoint, for --verbose
};

asio::awaitable<CaptiveResult> CheckCaptivePortal(std::vector<CaptiveTarget> targets,
                                                  CaptiveOptions options);

}  // namespace derpkit::netcheck
