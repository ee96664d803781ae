// A shard: one event loop on one thread that owns a set of connections and everything about
// them, so code inside a shard needs no locks. Shards talk by posting to each other's loops:
// route updates from the Registry, and batches of packets for clients that live elsewhere.
//
// Thread affinity: every method except PostDeliveries() and the constructor runs on the shard's
// own thread.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lib/derp/keys.h"
#include "relay/config.h"
#include "relay/packet.h"
#include "relay/registry.h"
#include "relay/stats.h"

namespace derpkit::relay {

class ClientConn;
class MeshLink;
class Server;

class Shard {
 public:
  Shard(int index, Server& server);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  int index() const { return index_; }
  asio::io_context& io() { return io_; }
  ShardStats& stats() { return stats_; }
  const ShardStats& stats() const { return stats_; }
  BufferPool& pool() { return pool_; }
  Server& server() { return server_; }

  void StartThread();
  // Stops the loop (after CloseAll and a grace period) and joins the thread.
  void StopAndJoin();

  // The shard's connection table.
  void Attach(ClientConn& conn);
  void Detach(ClientConn& conn);
  ClientConn* Find(std::uint64_t conn_id) const;
  std::size_t connection_count() const { return conns_.size(); }
  template <typename F>
  void ForEachConn(F&& f) const {
    for (const auto& [id, conn] : conns_) f(*conn);
  }
  // Mesh links living on this shard (their outbound side).
  void AttachLink(MeshLink& link);
  void DetachLink(MeshLink& link);

  // Applies a route pushed by the Registry (through this shard's loop, in registry order).
  void ApplyRoute(const derp::PublicKey& key, ConnRoute route);
  // Delivers a packet that `from` (on this shard) sent to `dst`: locally, or into the outbox of
  // the shard that owns dst's active connection, or counts the drop.
  void RoutePacket(const derp::PublicKey& dst, Packet&& packet, ClientConn& from);
  // Delivers a packet a mesh peer forwarded to us: only to a local client, never onwards.
  void RouteForwarded(const derp::PublicKey& dst, Packet&& packet, ClientConn& from_mesh);
  // Posts the packets gathered for other shards, one lock and one wake-up per shard.
  void FlushOutbox();
  // Called from another shard's thread with packets for connections on this shard.
  void PostDeliveries(std::vector<Delivery>&& batch);

  // Records that `dst` received a packet from `src`, so that dst hears PeerGone when src leaves.
  void NoteReceivedFrom(ClientConn& dst, const derp::PublicKey& src);
  // `key` has no connection left anywhere: tell the local connections that heard from it.
  void HandleKeyGone(const derp::PublicKey& key);

  // Write deadlines: a connection with a write in flight is checked by a shard-wide ticker
  // instead of arming a timer per write.
  void WatchWrite(ClientConn& conn);
  void UnwatchWrite(ClientConn& conn);

  // Asks every connection to close (shutdown).
  void CloseAll();

 private:
  asio::awaitable<void> WriteWatchdog();
  void DrainInbox();
  void Deliver(const derp::PublicKey& dst, ConnRoute route, Packet&& packet);
  void DeliverLocal(const derp::PublicKey& dst, ConnRoute route, Packet&& packet);

  const int index_;
  Server& server_;
  asio::io_context io_{1};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  ShardStats stats_;
  BufferPool pool_;

  std::unordered_map<std::uint64_t, ClientConn*> conns_;
  std::unordered_map<std::uint64_t, MeshLink*> links_;
  std::unordered_map<derp::PublicKey, ConnRoute, derp::PublicKeyHash> routes_;
  std::unordered_map<derp::PublicKey, std::vector<std::uint64_t>, derp::PublicKeyHash> receivers_;
  std::unordered_set<ClientConn*> writing_;
  std::unique_ptr<asio::steady_timer> watchdog_timer_;

  std::vector<std::vector<Delivery>> outbox_;  // indexed by destination shard
  std::vector<int> outbox_dirty_;

  std::mutex inbox_mu_;
  std::vector<Delivery> inbox_;     // guarded by inbox_mu_
  bool inbox_scheduled_ = false;    // guarded by inbox_mu_
  std::vector<Delivery> draining_;  // shard thread only; keeps capacity between drains
};

}  // namespace derpkit::relay
