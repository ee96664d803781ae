// A shard: one event loop on one thread that owns a set of connections and everything about
// them, so code inside a shard needs no locks. Shards talk by posting to each other's loops:
// route updates from the Registry, and batches of packets for clients that live elsewhere.
//
// Thread affinity: every method except PostDeliveries(), PostRoute(), PostArrival(), load(),
// AdjustLoad(), busy_permille(), cpu_time(), view() and the constructor runs on the shard's own
// thread.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/derp/protocol.h"
#include "lib/net/drained_wait.h"
#include "relay/config.h"
#include "relay/keepalive_wheel.h"
#include "relay/move_fences.h"
#include "relay/packet.h"
#include "relay/peer_tally.h"
#include "relay/placement.h"
#include "relay/registry.h"
#include "relay/routing_clock.h"
#include "relay/stats.h"
#include "relay/write_batch.h"

namespace derpkit::relay {

// At most this much is read from one connection per turn: large enough that a busy sender costs
// few syscalls per packet, small enough that one sender cannot hog the shard.
inline constexpr std::size_t kReadChunkSize = 64 * 1024;
// Payload bytes posted to a shard and not yet delivered above which senders on other shards
// pause (back-pressure across shards: a shard that is behind must not collect an unbounded
// inbox, which it would then push into receivers' queues all at once).
inline constexpr std::size_t kInboxHighBytes = 256 * 1024;
// The largest frame the relay holds whole (a ForwardPacket) can be unfinished when a read ends;
// the next read goes after it.
inline constexpr std::size_t kShardReadBufferSize =
    kReadChunkSize + derp::kFrameHeaderSize +
    derp::MaxServerPayloadSize(derp::FrameType::kForwardPacket, 0);

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
  WriteBatchPool& batches() { return batches_; }
  // One read buffer for every connection of the shard (kShardReadBufferSize): a connection reads
  // into it only when its socket is readable and keeps just the tail of an unfinished frame, so
  // an idle connection holds no read buffer. Valid until the caller next suspends.
  std::span<std::byte> read_buffer() { return read_buffer_; }
  // The time packets queued now are stamped with (one clock read per read chunk or inbox drain;
  // relay/routing_clock.h). Open a RoutingClock::Pass around a pass that routes packets.
  RoutingClock& routing_clock() { return routing_clock_; }
  Server& server() { return server_; }
  // The epoll reactor of io(), for net::AsyncWaitReadableDrained (looked up once, here).
  net::SocketReactor& reactor() { return reactor_; }

  void StartThread();
  // Stops the loop (after CloseAll and a grace period) and joins the thread.
  void StopAndJoin();

  // The shard's connection table. `counted` = false for a connection that moves (its move was
  // counted in load() when it was decided).
  void Attach(ClientConn& conn, bool counted = true);
  void Detach(ClientConn& conn, bool counted = true);
  // Connections here, counting the moves decided as done: the balance moves keep. Any thread.
  int load() const { return load_.load(std::memory_order_relaxed); }
  void AdjustLoad(int delta) { load_.fetch_add(delta, std::memory_order_relaxed); }
  // The shard thread's CPU use over the last ticker periods, in thousandths of a core (0..1000),
  // and in all; the ticker measures both (relay/thread_cpu_clock.h). Any thread.
  int busy_permille() const { return busy_permille_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds cpu_time() const {
    return std::chrono::nanoseconds(cpu_ns_.load(std::memory_order_relaxed));
  }
  ShardLoadView view() const { return ShardLoadView{index_, load(), busy_permille()}; }
  ClientConn* Find(std::uint64_t conn_id) const;
  std::size_t connection_count() const { return conns_.size(); }
  template <typename F>
  void ForEachConn(F&& f) const {
    for (const auto& [id, conn] : conns_) f(*conn);
  }
  // Mesh links living on this shard (their outbound side).
  void AttachLink(MeshLink& link);
  void DetachLink(MeshLink& link);

  // Called from any thread with a route the Registry made: queued for this shard in registry
  // order, and applied by a post to the loop or by the next RoutePacket, whichever runs first.
  // Why both: a reader can run after a route was posted and still be ahead of that post in the
  // loop's queue (its wake-up was queued first, the shard thread was descheduled meanwhile), and
  // read a packet its client sent only after the new client had its ServerInfo. derper's one
  // locked map never drops that packet; routing applies what is queued before it looks.
  void PostRoute(const derp::PublicKey& key, ConnRoute route);
  // Delivers a packet that `from` (on this shard) sent to `dst`: locally, or into the outbox of
  // the shard that owns dst's active connection, or counts the drop.
  void RoutePacket(const derp::PublicKey& dst, Packet&& packet, ClientConn& from);
  // Delivers a packet a mesh peer forwarded to us: only to a local client, never onwards.
  void RouteForwarded(const derp::PublicKey& dst, Packet&& packet, ClientConn& from_mesh);
  // Writes right after routing: ClientConn::Wake() queues a connection here, and the reader that
  // routed a chunk (or the mailbox drain) calls FlushWrites() when done, so that one chunk's
  // packets for a receiver leave in one write, without a trip through the event loop. A post
  // covers wake-ups from anywhere else (keepalives, PeerGone, route changes).
  void QueueFlush(ClientConn& conn);
  void FlushWrites();
  // Back-pressure (relay/client_conn.h): stops or resumes reading the connection `who`, on this
  // shard or another (posted there).
  void PauseSender(PacketSource who);
  void ResumeSender(PacketSource who);
  // Posts the packets gathered for other shards, one lock and one wake-up per shard, once the
  // loop's ready work is done. When a destination shard has more than kInboxHighBytes posted
  // and not yet delivered (it is behind: a busy or descheduled thread), the readers that filled
  // the outboxes (`reader` among them) are asked to pause until that shard has caught up.
  void FlushOutbox(PacketSource reader = {});
  // Called from another shard's thread with packets for connections on this shard. Returns
  // true when the inbox is over kInboxHighBytes; `reader` is then resumed once it is drained.
  bool PostDeliveries(std::vector<Delivery>&& batch, std::size_t bytes,
                      std::span<const PacketSource> readers);

  // Records that `dst` received a packet from `src`, so that dst hears PeerGone when src leaves.
  void NoteReceivedFrom(ClientConn& dst, const derp::PublicKey& src);
  // `key` has no connection left anywhere: tell the local connections that heard from it.
  void HandleKeyGone(const derp::PublicKey& key);

  // A connection's next KeepAlive is due at `due`: the ticker calls its KeepAliveDue then.
  void ScheduleKeepAlive(std::uint64_t conn_id, std::chrono::steady_clock::time_point due) {
    keepalive_wheel_.Schedule(conn_id, due);
  }

  // A connection's writer waits for the socket (or no longer does): the ticker checks its write
  // deadline and whether it still takes bytes, and visits no other connection for that.
  void WatchWrite(ClientConn& conn) { writing_.insert(&conn); }
  void UnwatchWrite(ClientConn& conn) { writing_.erase(&conn); }

  // Asks every connection to close (shutdown).
  void CloseAll();

  // Moving connections (relay/client_conn.h, "Moving"). `sender` (here) sends mostly to `peer`
  // on another shard: one of them moves to the other's shard, the one MeetingShard
  // (relay/placement.h) does not choose, so that both sides of a pair that talk both ways choose
  // the same move. True when the sender moves; false when the peer was asked to come here.
  bool ProposeMove(ClientConn& sender, PeerRef peer);
  // Where a pair that talks within this shard should go now (ShedTarget, relay/placement.h;
  // worked out every ticker period), or -1. NoteShed() says a pair went: nothing more goes this
  // period, nor the next when spreading (the busy figures must see the move first).
  int shed_target() const { return shed_to_; }
  void NoteShed() {
    shed_to_ = -1;
    periods_since_shed_ = 0;
  }
  // Called from any thread with a connection that left its shard for this one: queued, and
  // taken in (ClientConn::ArriveOn, then its loops run on) by a post or, first, by a delivery
  // that looks for it, so that a packet forwarded ahead of the post finds it.
  void PostArrival(std::unique_ptr<ClientConn> conn);
  // A connection left for shard `to`: packets that still come here for it go there, for
  // kMovedForwardFor (other shards route by their copy of the routes until they apply the new
  // one, and mailboxes in flight still name this shard).
  void NoteMovedAway(std::uint64_t conn_id, int to);
  // A connection that arrived heard from `src`: it hears PeerGone from here when src leaves.
  void AdoptReceiver(const derp::PublicKey& src, std::uint64_t conn_id) {
    receivers_[src].push_back(conn_id);
  }
  // Posts the outboxes now rather than at the end of the loop's ready work.
  void FlushOutboxNow() { PostOutbox(); }

 private:
  // One timer per shard instead of one per connection: every keepalive tick the connections whose
  // KeepAlive falls due in it (keepalive_wheel_) queue one; every tick the connections whose
  // writer waits (writing_) are checked: a receiver that takes nothing lets its senders go, one
  // past its write deadline is closed.
  asio::awaitable<void> ConnectionTicker();
  // The ticker's measure of the thread (busy_permille_, cpu_ns_) and, from every shard's figure,
  // shed_to_.
  void MeasureBusy(std::chrono::steady_clock::time_point now);
  void DrainInbox();
  // Applies the routes PostRoute queued, in order.
  void ApplyPendingRoutes();
  // dst's route with every change queued so far applied; null when it has none. Valid until the
  // next route change is applied.
  const ConnRoute* CurrentRoute(const derp::PublicKey& dst);
  void PostOutbox();
  // Runs `action` on connection `who`: here, or posted to its shard (gone by then: nothing).
  void OnConnection(PacketSource who, void (ClientConn::*action)());
  // `forwarded`: sent on by the shard the connection moved away from (relay/move_fences.h).
  void Deliver(const derp::PublicKey& dst, ConnRoute route, Packet&& packet, PacketSource from,
               bool forwarded = false);
  // Takes in the connections PostArrival queued.
  void ApplyArrivals();
  // The connection `conn_id` as a delivery sees it: here (arrivals applied first), or nowhere.
  ClientConn* FindForDelivery(std::uint64_t conn_id);
  void DeliverLocal(const derp::PublicKey& dst, ConnRoute route, Packet&& packet, PacketSource from,
                    bool forwarded = false);
  void PushOutbox(int shard, Delivery&& d);
  // Moves (relay/move_fences.h): a fence behind what this shard sent a moved connection the old
  // way; a fence that came here (back at the new shard, or to forward from the old one); and
  // delivering what fences held.
  void SendFence(int old_shard, const derp::PublicKey& key, std::uint64_t conn_id);
  void HandleFence(Delivery& fence);
  void DeliverReleased();

  const int index_;
  Server& server_;
  asio::io_context io_{1};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  ShardStats stats_;
  net::SocketReactor& reactor_;
  BufferPool pool_;
  WriteBatchPool batches_;
  Bytes read_buffer_;
  RoutingClock routing_clock_;

  std::unordered_map<std::uint64_t, ClientConn*> conns_;
  std::atomic<int> load_{0};
  const PlacementPolicy placement_;
  std::atomic<int> busy_permille_{0};
  std::atomic<std::int64_t> cpu_ns_{0};
  std::chrono::steady_clock::time_point busy_measured_at_{};
  int shed_to_ = -1;
  int periods_since_shed_ = 0;
  std::vector<ShardLoadView> shard_views_;  // MeasureBusy's scratch
  struct MovedAway {
    int to;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<std::uint64_t, MovedAway> moved_away_;  // NoteMovedAway()
  MoveFences fences_;                                        // for connections that arrived
  std::vector<Delivery> released_;                           // scratch: what fences let go
  std::vector<PacketSource> resumed_;                        // and the senders they paused
  std::unordered_map<std::uint64_t, MeshLink*> links_;
  std::unordered_map<derp::PublicKey, ConnRoute, derp::PublicKeyHash> routes_;
  std::unordered_map<derp::PublicKey, std::vector<std::uint64_t>, derp::PublicKeyHash> receivers_;
  std::unordered_set<ClientConn*> writing_;  // WatchWrite()
  std::vector<ClientConn*> to_flush_;
  std::vector<ClientConn*> flushing_;
  bool flush_posted_ = false;
  std::unique_ptr<asio::steady_timer> ticker_timer_;

  std::vector<std::vector<Delivery>> outbox_;  // indexed by destination shard
  std::vector<std::size_t> outbox_bytes_;      // payload bytes in each outbox
  std::size_t outbox_packets_ = 0;             // packets (not fences) in the outboxes
  std::vector<int> outbox_dirty_;
  std::vector<PacketSource> outbox_readers_;  // who filled the outboxes since the last post
  bool outbox_flush_posted_ = false;

  const std::chrono::milliseconds keepalive_tick_;
  KeepAliveWheel keepalive_wheel_;
  std::vector<std::uint64_t> keepalives_due_;  // the ticker's scratch; keeps its capacity

  std::mutex routes_mu_;
  std::vector<std::pair<derp::PublicKey, ConnRoute>> route_updates_;  // guarded by routes_mu_
  // route_updates_ is not empty: one load per routed packet, a lock only when there is work.
  std::atomic<bool> routes_pending_{false};
  std::vector<std::pair<derp::PublicKey, ConnRoute>> applying_routes_;  // shard thread only

  std::mutex arrivals_mu_;
  std::vector<std::unique_ptr<ClientConn>> arrivals_;  // guarded by arrivals_mu_
  std::atomic<bool> arrivals_pending_{false};          // arrivals_ is not empty
  std::vector<std::unique_ptr<ClientConn>> arriving_;  // shard thread only

  std::mutex inbox_mu_;
  std::vector<Delivery> inbox_;              // guarded by inbox_mu_
  std::size_t inbox_bytes_ = 0;              // guarded by inbox_mu_
  std::vector<PacketSource> inbox_waiters_;  // guarded by inbox_mu_: readers to resume
  bool inbox_scheduled_ = false;             // guarded by inbox_mu_
  std::vector<PacketSource> resuming_;       // shard thread only
  std::vector<Delivery> draining_;           // shard thread only; keeps capacity between drains
};

}  // namespace derpkit::relay
