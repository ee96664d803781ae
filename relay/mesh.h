// A mesh link: this relay's outbound DERP connection to another relay of its region. It presents
// the region's mesh key with this relay's own server key as its client key, sends WatchConns,
// and turns the peer's PeerPresent/PeerGone into "key k is reachable via this link" entries in
// the Registry. Packets for such keys leave through it as ForwardPacket frames. A broken link
// forgets everything it had learnt and redials with capped exponential backoff; after a
// reconnect the peer's flood of PeerPresent frames rebuilds the picture.
//
// Thread affinity: lives on one shard; EnqueueForward() and everything else on that shard.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "lib/derp/keys.h"
#include "lib/derpclient/client.h"
#include "relay/packet.h"

namespace derpkit::relay {

class Shard;

// One --mesh-with entry.
struct MeshPeer {
  std::string name;       // what the operator wrote (host, host:port or URL), for logs
  std::string url;        // https://host/derp (or http:// on a plain relay, or the URL given)
  std::string dial_host;  // "name/dialhost": verify TLS for name, dial this address
};

// Parses one --mesh-with entry: "host", "host:port", "host/dialhost" or an http(s):// URL.
// `tls` picks the scheme for bare host names. Returns nullopt for an empty entry.
std::optional<MeshPeer> ParseMeshPeer(const std::string& entry, bool tls);

// Counters of one link, read by metrics and tests from any thread.
struct MeshLinkStats {
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> disconnects{0};
  std::atomic<std::uint64_t> forwarded{0};  // ForwardPacket frames written
  std::atomic<std::uint64_t> dropped{0};    // packets dropped: queue full or link down
  std::atomic<std::int64_t> keys{0};        // keys the peer currently reports
  // The entry named this relay itself (derper ignores such an entry): no link, and no metric
  // series, or an alert on derp_mesh_link_up would fire forever for a shared --mesh-with list.
  std::atomic<bool> is_self{false};
};

class MeshLink {
 public:
  MeshLink(Shard& shard, MeshPeer peer);
  ~MeshLink();
  MeshLink(const MeshLink&) = delete;
  MeshLink& operator=(const MeshLink&) = delete;

  // Starts the dial/watch/forward loop on the shard.
  void Start();
  // Stops the loop and closes the connection (on the shard's thread).
  void Stop();

  std::uint64_t id() const { return id_; }
  Shard& shard() const { return shard_; }
  const MeshPeer& peer() const { return peer_; }
  const MeshLinkStats& stats() const { return stats_; }

  // Queues a packet for `dst` (a key the peer reported). Never blocks; a full queue drops the
  // oldest packet.
  void EnqueueForward(const derp::PublicKey& dst, Packet&& packet);

 private:
  asio::awaitable<void> Run();
  asio::awaitable<void> ReadLoop(derpclient::Client& client);
  asio::awaitable<void> WriteLoop(derpclient::Client& client);
  void ForgetLearnt();

  Shard& shard_;
  MeshPeer peer_;
  const std::uint64_t id_;
  MeshLinkStats stats_;
  bool stopping_ = false;
  std::deque<std::pair<derp::PublicKey, Packet>> queue_;
  asio::steady_timer wake_;
  bool writer_waiting_ = false;
  asio::steady_timer backoff_;
  derpclient::Client* client_ = nullptr;  // the live connection, if any
};

}  // namespace derpkit::relay
