// netcheck --connect: does DERP actually work from here? For each measured region it makes a real
// DERP connection to the region's first node that accepts one, sends a packet to itself through
// the relay and times the round trip; then it checks the two faults operators hit behind proxies:
// a relay that only works over WebSocket (something strips `Upgrade: DERP`), and a region whose
// nodes (or repeated connections to one name) present different server keys (a load balancer in
// front of unmeshed relays).
//
// Thread affinity: runs as a coroutine on the caller's io_context.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"

namespace derpkit::netcheck {

struct ConnectOptions {
  std::chrono::milliseconds timeout{5000};  // per region: connect + round trip
  std::string ca_file;                      // extra trust anchors; empty = system roots
  std::size_t connections_per_node = 3;     // repeated connects to spot differing server keys
};

struct RegionConnectResult {
  std::int64_t region_id = 0;
  std::string region_code;
  std::string node_name;        // the node that worked, or the last one tried
  bool ok = false;              // a packet made the round trip through the relay
  std::string transport;        // "derp" (Upgrade: DERP) or "websocket"
  bool websocket_only = false;  // DERP upgrade failed but WebSocket worked
  std::chrono::nanoseconds round_trip{0};
  std::vector<std::string> server_keys;  // distinct server keys seen in this region, "nodekey:…"
  std::string error;                     // why it failed, in words, when !ok
  std::vector<std::string> warnings;     // e.g. "2 different server keys: load balancer in front?"
};

// Checks the given regions in parallel (in map order), skipping STUNOnly nodes.
asio::awaitable<std::vector<RegionConnectResult>> CheckConnect(asio::io_context& io,
                                                               const derpmap::DerpMap& map,
                                                               std::vector<std::int64_t> region_ids,
                                                               ConnectOptions options);

}  // namespace derpkit::netcheck
