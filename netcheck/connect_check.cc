// CheckConnect: per region (all regions concurrently), a real DERP connection to the first
// non-STUNOnly node that accepts one, a packet sent to ourselves through it and timed, a WebSocket
// retry when the DERP upgrade itself fails, and a server-key census over repeated connections.
//
// Thread affinity: coroutines on `io`. Region checks are child coroutines with their own
// cancellation signals; they own copies of what they read (the region, the options).
#include "netcheck/connect_check.h"

#include <openssl/rand.h>

#include <algorithm>
#include <asio/experimental/awaitable_operators.hpp>
#include <map>
#include <memory>
#include <optional>

#include "lib/derp/keys.h"
#include "lib/derpclient/client.h"
#include "lib/derpclient/node_options.h"
#include "lib/net/stream.h"

namespace derpkit::netcheck {
namespace {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayloadBytes = 32;
// Messages read while waiting for our own packet (ServerInfo, KeepAlive, PeerPresent…).
constexpr int kMaxMessagesPerRoundTrip = 1000;

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

derpclient::ClientOptions OptionsFor(const derpmap::Node& node, const ConnectOptions& options,
                                     const derp::PrivateKey& key, bool websocket) {
  derpclient::NodeClientSettings settings;
  settings.ca_file = options.ca_file;
  settings.connect_timeout = options.timeout;
  settings.websocket = websocket;
  return derpclient::NodeClientOptions(node, key, settings);
}

Bytes RandomPayload() {
  Bytes payload(kPayloadBytes);
  RAND_bytes(reinterpret_cast<unsigned char*>(payload.data()), static_cast<int>(payload.size()));
  return payload;
}

// Sends a packet to our own key and waits for the relay to hand it back.
asio::awaitable<Expected<std::chrono::nanoseconds, std::string>> SelfRoundTrip(
    derpclient::Client& client) {
  const Bytes payload = RandomPayload();
  const auto start = Clock::now();
  const std::error_code ec = co_await client.SendPacket(client.public_key(), payload);
  if (ec) co_return Unexpected{"send a packet to ourselves: " + ec.message()};
  for (int i = 0; i < kMaxMessagesPerRoundTrip; ++i) {
    auto message = co_await client.Recv();
    if (!message) co_return Unexpected{"waiting for our packet: " + message.error()};
    const auto* packet = std::get_if<derpclient::RecvPacketMessage>(&*message);
    if (packet != nullptr && packet->src == client.public_key() && packet->packet == payload) {
      co_return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
    }
  }
  co_return Unexpected{std::string("our packet did not come back")};
}

struct RoundTripOutcome {
  bool ok = false;
  std::string node_name;
  std::string transport;
  std::string derp_upgrade_error;  // set when only WebSocket worked
  std::chrono::nanoseconds round_trip{0};
  std::optional<derp::PublicKey> server_key;
  std::vector<std::string> errors;  // one per node that failed, in order
  std::string step;                 // what was under way, for a timeout message
};

// Tries the nodes in order until one relays our packet back.
asio::awaitable<void> RoundTrip(asio::io_context& io, std::vector<derpmap::Node> nodes,
                                ConnectOptions options, derp::PrivateKey key,
                                RoundTripOutcome& out) {
  for (const derpmap::Node& node : nodes) {
    out.node_name = node.name;
    out.step = "connecting to " + node.name;
    auto client = std::make_unique<derpclient::Client>(io, OptionsFor(node, options, key, false));
    auto connected = co_await client->Connect();
    std::string transport = "derp";
    std::string derp_error;
    if (!connected) {
      derp_error = connected.error();
      // No stream means TCP or TLS failed: WebSocket would go the same way. With a stream, the
      // HTTP upgrade itself failed, which is what a proxy that drops `Upgrade: DERP` causes.
      if (client->stream() == nullptr) {
        out.errors.push_back(node.name + ": " + derp_error);
        continue;
      }
      out.step = "connecting to " + node.name + " over WebSocket";
      client = std::make_unique<derpclient::Client>(io, OptionsFor(node, options, key, true));
      auto ws = co_await client->Connect();
      if (!ws) {
        out.errors.push_back(node.name + ": " + derp_error + "; over WebSocket: " + ws.error());
        continue;
      }
      transport = "websocket";
    }
    out.step = "waiting for our packet to come back through " + node.name;
    auto rtt = co_await SelfRoundTrip(*client);
    if (!rtt) {
      out.errors.push_back(node.name + ": connected (" + transport + "), but " + rtt.error());
      continue;
    }
    out.ok = true;
    out.transport = transport;
    out.derp_upgrade_error = derp_error;
    out.round_trip = *rtt;
    out.server_key = client->server_key();
    co_return;
  }
}

struct KeyCensus {
  std::map<std::string, std::vector<derp::PublicKey>> keys_by_node;  // samples, in order
  std::vector<std::string> failures;
};

// Connects repeatedly to every node and records the server key each connection presents.
asio::awaitable<void> CollectServerKeys(asio::io_context& io, std::vector<derpmap::Node> nodes,
                                        ConnectOptions options, derp::PrivateKey key,
                                        bool websocket, KeyCensus& census) {
  for (const derpmap::Node& node : nodes) {
    auto& samples = census.keys_by_node[node.name];
    while (samples.size() < options.connections_per_node) {
      derpclient::Client client(io, OptionsFor(node, options, key, websocket));
      auto connected = co_await client.Connect();
      if (!connected) {
        census.failures.push_back("node " + node.name +
                                  ": a connection for the server-key check "
                                  "failed: " +
                                  connected.error());
        break;
      }
      samples.push_back(client.server_key());
    }
  }
}

asio::awaitable<RegionConnectResult> CheckRegion(asio::io_context& io,
                                                 std::optional<derpmap::Region> region,
                                                 std::int64_t region_id, ConnectOptions options) {
  RegionConnectResult r;
  r.region_id = region_id;
  if (!region) {
    r.error = "region " + std::to_string(region_id) + " is not in the DERP map";
    co_return r;
  }
  r.region_code = region->region_code;
  std::vector<derpmap::Node> nodes;
  for (const derpmap::Node& n : region->nodes) {
    if (!n.stun_only) nodes.push_back(n);
  }
  if (nodes.empty()) {
    r.error = "no DERP node in this region (every node is STUNOnly)";
    co_return r;
  }
  const derp::PrivateKey key = derp::PrivateKey::Generate();

  RoundTripOutcome outcome;
  asio::steady_timer deadline(io, options.timeout);
  auto first =
      co_await (RoundTrip(io, nodes, options, key, outcome) || deadline.async_wait(net::kAsTuple));
  r.node_name = outcome.node_name;
  if (first.index() == 1) {
    outcome.errors.push_back("timed out after " + Ms(options.timeout) + " " + outcome.step);
  }
  if (!outcome.ok) {
    for (const std::string& e : outcome.errors) {
      if (!r.error.empty()) r.error += "; ";
      r.error += e;
    }
    co_return r;
  }
  r.ok = true;
  r.transport = outcome.transport;
  r.round_trip = outcome.round_trip;
  if (!outcome.derp_upgrade_error.empty()) {
    r.websocket_only = true;
    r.warnings.push_back("the DERP upgrade failed (" + outcome.derp_upgrade_error +
                         ") but DERP over WebSocket works: something in front of the relay (a "
                         "proxy or load balancer) drops `Upgrade: DERP`, so Tailscale clients "
                         "other than browsers cannot use this region");
  }

  KeyCensus census;
  census.keys_by_node[outcome.node_name].push_back(*outcome.server_key);
  asio::steady_timer census_deadline(io, options.timeout);
  auto second = co_await (CollectServerKeys(io, nodes, options, key, r.websocket_only, census) ||
                          census_deadline.async_wait(net::kAsTuple));
  if (second.index() == 1) {
    r.warnings.push_back("the server-key check stopped after " + Ms(options.timeout) +
                         ": not every node was asked " +
                         std::to_string(options.connections_per_node) + " times");
  }
  for (const std::string& f : census.failures) r.warnings.push_back(f);
  for (const derpmap::Node& node : nodes) {
    const auto it = census.keys_by_node.find(node.name);
    if (it == census.keys_by_node.end()) continue;
    std::vector<derp::PublicKey> distinct;
    for (const derp::PublicKey& k : it->second) {
      if (std::find(distinct.begin(), distinct.end(), k) == distinct.end()) distinct.push_back(k);
      const std::string text = k.ToText();
      if (std::find(r.server_keys.begin(), r.server_keys.end(), text) == r.server_keys.end()) {
        r.server_keys.push_back(text);
      }
    }
    // One relay has one key. Different keys behind one node name mean several relays behind one
    // address, and a client whose connections land on different ones sees peers come and go.
    if (distinct.size() > 1) {
      r.warnings.push_back("node " + node.name + ": " + std::to_string(distinct.size()) +
                           " different server keys in " + std::to_string(it->second.size()) +
                           " connections: load balancer in front of separate relays?");
    }
  }
  co_return r;
}

// What the region checks report into; the parent sleeps on `wake` until all are done.
struct Shared {
  Shared(asio::io_context& io, std::size_t n)
      : wake(io, asio::steady_timer::time_point::max()), results(n), signals(n) {}
  asio::steady_timer wake;
  std::vector<std::optional<RegionConnectResult>> results;
  std::vector<asio::cancellation_signal> signals;
  std::size_t pending = 0;
};

}  // namespace

asio::awaitable<std::vector<RegionConnectResult>> CheckConnect(asio::io_context& io,
                                                               const derpmap::DerpMap& map,
                                                               std::vector<std::int64_t> region_ids,
                                                               ConnectOptions options) {
  auto shared = std::make_shared<Shared>(io, region_ids.size());
  shared->pending = region_ids.size();
  for (std::size_t i = 0; i < region_ids.size(); ++i) {
    std::optional<derpmap::Region> region;
    if (auto it = map.regions.find(region_ids[i]); it != map.regions.end()) region = it->second;
    asio::co_spawn(
        io, CheckRegion(io, std::move(region), region_ids[i], options),
        asio::bind_cancellation_slot(
            shared->signals[i].slot(),
            [shared, i, id = region_ids[i]](std::exception_ptr error, RegionConnectResult r) {
              if (error) {
                r = RegionConnectResult{};
                r.region_id = id;
                r.error = "cancelled";
              }
              shared->results[i] = std::move(r);
              if (--shared->pending == 0) shared->wake.cancel();
            }));
  }
  bool cancelled = false;
  while (shared->pending > 0) {
    co_await shared->wake.async_wait(net::kAsTuple);
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      cancelled = true;
      break;
    }
  }
  std::vector<RegionConnectResult> results;
  for (std::size_t i = 0; i < region_ids.size(); ++i) {
    if (shared->results[i]) {
      results.push_back(std::move(*shared->results[i]));
      continue;
    }
    shared->signals[i].emit(asio::cancellation_type::terminal);
    RegionConnectResult r;
    r.region_id = region_ids[i];
    r.error = cancelled ? "cancelled" : "did not finish";
    results.push_back(std::move(r));
  }
  co_return results;
}

}  // namespace derpkit::netcheck
