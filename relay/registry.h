// The relay-wide registry of keys: which local connections a key has and which one is active
// (derper's "last writer is active" duplicate policy), which mesh links can reach it when it is
// not local, and which mesh watchers must hear when keys come and go. It is touched only when a
// client connects or disconnects, a duplicate becomes active, or a mesh peer reports a change,
// never per packet: every shard keeps its own copy of the routes, and the registry queues each
// change for every shard (Shard::PostRoute), which applies them in the order they were made
// before it routes its next packet.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/derp/messages.h"

namespace derpkit::relay {

// Where packets for a key go: a local connection (on some shard), or a mesh link.
struct ConnRoute {
  int shard = -1;
  std::uint64_t id = 0;  // connection or mesh link id; 0 = no route
  bool mesh = false;
};

// What the registry tells the shards. Implemented by Server, which posts to the shards' loops.
class RegistryListener {
 public:
  virtual ~RegistryListener() = default;
  // Every shard must apply this route for `key` (id 0 = no route).
  virtual void BroadcastRoute(const derp::PublicKey& key, ConnRoute route) = 0;
  // The connection's duplicate state changed; deliver to the connection's shard.
  virtual void NotifyDupState(int shard, std::uint64_t conn_id, bool dup, bool active) = 0;
  // `key` can no longer be reached in this region: every shard sends PeerGone to the local
  // connections that received packets from it.
  virtual void BroadcastKeyGone(const derp::PublicKey& key) = 0;
  // Tells one watcher (a mesh peer's connection) that a key is present (`present` set) or gone.
  virtual void NotifyWatcher(int shard, std::uint64_t watcher_conn_id, const derp::PublicKey& key,
                             const std::optional<derp::PeerPresent>& present) = 0;
  // Closes one connection (ClosePeer from a mesh peer).
  virtual void CloseConnection(int shard, std::uint64_t conn_id) = 0;
};

class Registry {
 public:
  explicit Registry(RegistryListener& listener) : listener_(listener) {}

  // Adds a local connection; the newest connection of a key becomes its active one. `presence`
  // (key, address, flags) is what watchers are told.
  void Register(const derp::PeerPresent& presence, int shard, std::uint64_t conn_id);
  // Removes a local connection.
  void Unregister(const derp::PublicKey& key, std::uint64_t conn_id);
  // A local connection moved to another shard (relay/client_conn.h, "Moving"): its route, if it
  // is the active one, now names that shard. Watchers hear nothing: nothing changed for them.
  void Move(const derp::PublicKey& key, std::uint64_t conn_id, int shard);
  // A duplicate connection sent a frame, so it becomes the active one (derper's policy).
  void NoteActivity(const derp::PublicKey& key, std::uint64_t conn_id);

  // A mesh link learnt that `key` is connected to its peer. The first link registered for a
  // key is used until it is removed; a local connection always wins.
  void AddForwarder(const derp::PublicKey& key, int shard, std::uint64_t link_id);
  void RemoveForwarder(const derp::PublicKey& key, std::uint64_t link_id);
  // The link broke: forget everything it reported.
  void RemoveAllForwarders(std::uint64_t link_id);

  // Subscribes a mesh peer's connection: it is told every key with a local connection now, then
  // every change. The flood and later events reach it in order.
  void AddWatcher(int shard, std::uint64_t conn_id);
  void RemoveWatcher(std::uint64_t conn_id);

  // ClosePeer: closes every local connection of `key`. Returns how many there were.
  std::size_t CloseKey(const derp::PublicKey& key);

  enum class Reach { kNone, kLocal, kMesh };
  // How packets for `key` would be routed now (for /debug and tests).
  Reach Lookup(const derp::PublicKey& key) const;

  struct Totals {
    std::int64_t keys_local = 0;        // keys with a local connection
    std::int64_t keys_remote = 0;       // keys reachable only through a mesh link
    std::int64_t dup_keys = 0;          // keys with 2+ local connections
    std::int64_t dup_conns = 0;         // connections belonging to such keys
    std::uint64_t total_dup_conns = 0;  // connections ever registered as a duplicate
    std::int64_t watchers = 0;
    std::uint64_t multiforwarder_created = 0;  // a key became reachable via 2+ links
    std::uint64_t multiforwarder_deleted = 0;
    std::uint64_t forwarder_delete_other = 0;  // removal of a link that was not registered
  };
  Totals GetTotals() const;
  // For /debug/check: every key with local connections has exactly one active one.
  bool CheckConsistency(std::string* problems) const;

 private:
  struct Member {
    int shard;
    std::uint64_t conn_id;
    std::uint64_t last_activity;  // sequence number of its last connect or send
    derp::PeerPresent presence;
  };
  struct Forwarder {
    int shard;
    std::uint64_t link_id;
  };
  struct Entry {
    std::vector<Member> members;
    std::uint64_t active_conn_id = 0;
    std::vector<Forwarder> forwarders;
  };
  struct Watcher {
    int shard;
    std::uint64_t conn_id;
  };

  // Recomputes and broadcasts the route of `key`; erases the entry and announces the key gone
  // when nothing reaches it any more. `it` is invalid afterwards.
  void PublishLocked(std::unordered_map<derp::PublicKey, Entry, derp::PublicKeyHash>::iterator it,
                     bool membership_changed);
  void RemoveWatcherLocked(std::uint64_t conn_id);
  void TellWatchersLocked(const derp::PublicKey& key,
                          const std::optional<derp::PeerPresent>& present);

  RegistryListener& listener_;
  mutable std::mutex mu_;
  std::unordered_map<derp::PublicKey, Entry, derp::PublicKeyHash> keys_;
  std::vector<Watcher> watchers_;
  std::uint64_t seq_ = 0;
  std::int64_t dup_keys_ = 0;
  std::int64_t dup_conns_ = 0;
  std::uint64_t total_dup_conns_ = 0;
  std::uint64_t multiforwarder_created_ = 0;
  std::uint64_t multiforwarder_deleted_ = 0;
  std::uint64_t forwarder_delete_other_ = 0;
};

}  // namespace derpkit::relay
