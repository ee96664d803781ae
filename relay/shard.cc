#include "relay/shard.h"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>

#include "lib/net/log.h"
#include "relay/client_conn.h"
#include "relay/conn_runner.h"
#include "relay/mesh.h"
#include "relay/server.h"
#include "relay/thread_cpu_clock.h"

namespace derpkit::relay {

namespace {
constexpr auto kWatchdogTick = std::chrono::milliseconds(250);
// How long a shard forwards packets for a connection that moved away (NoteMovedAway): far longer
// than any route post or mailbox takes to arrive.
constexpr auto kMovedForwardFor = std::chrono::seconds(10);

// The ticker's keepalive period: a quarter of the interval (at most 1 s, at least 10 ms), so a
// KeepAlive leaves at most that late, which derper's clients (timeout: 2 minutes) never notice.
std::chrono::milliseconds KeepAliveTick(const RelayConfig& config) {
  const auto interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.keepalive_interval);
  return std::clamp(interval / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

// Ticker periods a spreading shed waits for the busy figures to take in the previous one: a
// busy thread must not give away more than it needs to. Gathering goes every period: a pair
// too many on a lightly loaded thread costs nothing that spreading would have to undo.
constexpr int kPeriodsBetweenSpreads = 2;
// The busy figure takes 1/kBusyHistoryWeight of each new period (MeasureBusy).
constexpr int kBusyHistoryWeight = 8;

int Permille(double fraction) { return static_cast<int>(fraction * 1000 + 0.5); }

}  // namespace

Shard::Shard(int index, Server& server)
    : index_(index),
      server_(server),
      work_(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          io_.get_executor())),
      reactor_(asio::use_service<net::SocketReactor>(io_)),
      read_buffer_(kShardReadBufferSize),
      placement_{Permille(server.config().move_gather_below),
                 Permille(server.config().move_spread_above)},
      outbox_(static_cast<std::size_t>(server.shard_count())),
      outbox_bytes_(static_cast<std::size_t>(server.shard_count())),
      keepalive_tick_(KeepAliveTick(server.config())),
      keepalive_wheel_(keepalive_tick_,
                       server.config().keepalive_interval + derp::kKeepAliveJitterMax,
                       std::chrono::steady_clock::now()) {}

Shard::~Shard() { StopAndJoin(); }

void Shard::StartThread() {
  asio::co_spawn(io_, ConnectionTicker(), asio::detached);
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        // A bug: a handler threw. Keep the shard alive; the connection involved is gone.
        LOG_ERROR("shard %d: internal error: %s", index_, e.what());
      }
    }
  });
}

void Shard::StopAndJoin() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void Shard::Attach(ClientConn& conn, bool counted) {
  conns_[conn.id()] = &conn;
  if (counted) AdjustLoad(+1);
}

void Shard::Detach(ClientConn& conn, bool counted) {
  if (conns_.erase(conn.id()) > 0 && counted) AdjustLoad(-1);
  writing_.erase(&conn);
  if (conn.flush_queued()) std::erase(to_flush_, &conn);
}

void Shard::QueueFlush(ClientConn& conn) {
  to_flush_.push_back(&conn);
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(io_, [this] {
      flush_posted_ = false;
      FlushWrites();
    });
  }
}

void Shard::FlushWrites() {
  // FlushNow() may queue again (a write that ends a connection wakes nobody, but stay safe):
  // work on a swapped list.
  while (!to_flush_.empty()) {
    flushing_.swap(to_flush_);
    for (ClientConn* conn : flushing_) conn->FlushNow();
    flushing_.clear();
  }
}

void Shard::AttachLink(MeshLink& link) { links_[link.id()] = &link; }

void Shard::DetachLink(MeshLink& link) { links_.erase(link.id()); }

ClientConn* Shard::Find(std::uint64_t conn_id) const {
  auto it = conns_.find(conn_id);
  return it == conns_.end() ? nullptr : it->second;
}

void Shard::PostRoute(const derp::PublicKey& key, ConnRoute route) {
  bool first = false;
  {
    std::lock_guard lock(routes_mu_);
    // One post per batch of changes. When a RoutePacket applied the batch before its post ran,
    // the next change posts again and the late post finds nothing: harmless, and rare.
    first = route_updates_.empty();
    route_updates_.emplace_back(key, route);
    // Before the caller's next step (ServerInfo's write): a reader that routes a packet sent
    // after that write finds the flag set (release here, acquire there; the socket between
    // them passes through the kernel's locks).
    routes_pending_.store(true, std::memory_order_release);
  }
  if (first) asio::post(io_, [this] { ApplyPendingRoutes(); });
}

void Shard::ApplyPendingRoutes() {
  {
    std::lock_guard lock(routes_mu_);
    applying_routes_.swap(route_updates_);
    routes_pending_.store(false, std::memory_order_relaxed);
  }
  for (const auto& [key, route] : applying_routes_) {
    if (route.id == 0) {
      routes_.erase(key);
      continue;
    }
    ConnRoute& current = routes_[key];
    // A connection that moved (same id, another shard): what we sent it the old way must arrive
    // before what we send it now (relay/move_fences.h). The old shard itself needs no fence.
    if (current.id == route.id && !current.mesh && !route.mesh && current.shard != route.shard &&
        current.shard != index_) {
      SendFence(current.shard, key, route.id);
    }
    current = route;
  }
  applying_routes_.clear();
}

const ConnRoute* Shard::CurrentRoute(const derp::PublicKey& dst) {
  if (routes_pending_.load(std::memory_order_acquire)) ApplyPendingRoutes();
  auto it = routes_.find(dst);
  return it == routes_.end() ? nullptr : &it->second;
}

void Shard::RoutePacket(const derp::PublicKey& dst, Packet&& packet, ClientConn& from) {
  const PacketKind kind = packet.disco ? PacketKind::kDisco : PacketKind::kOther;
  const ConnRoute* route = CurrentRoute(dst);
  if (route == nullptr) {
    stats_.RecordDrop(DropReason::kUnknownDest, kind, packet.payload.size());
    if (packet.disco) from.QueuePeerGone(dst, derp::PeerGoneReason::kNotHere);
    pool_.Give(std::move(packet.payload));
    return;
  }
  if (!route->mesh) from.NoteSentTo(route->shard, route->id);
  Deliver(dst, *route, std::move(packet), PacketSource{index_, from.id()});
}

void Shard::RouteForwarded(const derp::PublicKey& dst, Packet&& packet, ClientConn& from_mesh) {
  const PacketKind kind = packet.disco ? PacketKind::kDisco : PacketKind::kOther;
  const ConnRoute* route = CurrentRoute(dst);
  if (route == nullptr || route->mesh) {
    // Mesh forwarding is one hop: a packet for a key that is not local here is dropped.
    stats_.RecordDrop(DropReason::kUnknownDestOnFwd, kind, packet.payload.size());
    if (packet.disco) from_mesh.QueuePeerGone(dst, derp::PeerGoneReason::kNotHere);
    pool_.Give(std::move(packet.payload));
    return;
  }
  Deliver(dst, *route, std::move(packet), PacketSource{index_, from_mesh.id()});
}

void Shard::Deliver(const derp::PublicKey& dst, ConnRoute route, Packet&& packet, PacketSource from,
                    bool forwarded) {
  if (route.shard == index_) {
    DeliverLocal(dst, route, std::move(packet), from, forwarded);
    return;
  }
  PushOutbox(route.shard,
             Delivery{dst, route.id, route.mesh, forwarded, false, from, std::move(packet)});
}

void Shard::PushOutbox(int shard, Delivery&& d) {
  const auto i = static_cast<std::size_t>(shard);
  if (outbox_[i].empty()) outbox_dirty_.push_back(shard);
  outbox_bytes_[i] += d.packet.payload.size();
  // Fences carry no packet (and one posted after a pair's packets must not count as one of them).
  if (!d.fence) ++outbox_packets_;
  outbox_[i].push_back(std::move(d));
}

void Shard::SendFence(int old_shard, const derp::PublicKey& key, std::uint64_t conn_id) {
  PushOutbox(old_shard, Delivery{key, conn_id, false, false, true, PacketSource{index_, 0}, {}});
  FlushOutbox();
}

void Shard::HandleFence(Delivery& fence) {
  if (fences_.Awaits(fence.dst_id)) {
    fences_.FenceArrived(fence.dst_id, fence.from.shard, released_, resumed_);
    DeliverReleased();
    return;
  }
  // The old shard: the fence follows what it forwarded (a connection that moved on again: on).
  if (auto moved = moved_away_.find(fence.dst_id); moved != moved_away_.end()) {
    fence.forwarded = true;
    PushOutbox(moved->second.to, std::move(fence));
    FlushOutbox();
  }
}

void Shard::DeliverReleased() {
  for (Delivery& d : released_) {
    DeliverLocal(d.dst, ConnRoute{index_, d.dst_id, false}, std::move(d.packet), d.from);
  }
  released_.clear();
  // After the deliveries: their receiver asks any sender it is full for to pause first.
  for (const PacketSource& who : resumed_) ResumeSender(who);
  resumed_.clear();
}

void Shard::DeliverLocal(const derp::PublicKey& dst, ConnRoute route, Packet&& packet,
                         PacketSource from, bool forwarded) {
  if (!fences_.empty() && !route.mesh && fences_.MustHold(route.id, from.shard, forwarded)) {
    // A sixteenth, not the queue's quarter: what the mailboxes forward arrives beside it.
    const auto pause_above = static_cast<std::size_t>(server_.config().send_queue_bytes) / 16;
    if (fences_.Hold(Delivery{dst, route.id, false, false, false, from, std::move(packet)},
                     pause_above)) {
      PauseSender(from);
    }
    return;
  }
  if (route.mesh) {
    auto it = links_.find(route.id);
    if (it != links_.end()) {
      it->second->EnqueueForward(dst, std::move(packet));
      return;
    }
  } else if (ClientConn* conn = FindForDelivery(route.id)) {
    NoteReceivedFrom(*conn, packet.src);
    conn->Enqueue(std::move(packet), from);
    return;
  } else if (auto moved = moved_away_.find(route.id); moved != moved_away_.end()) {
    Deliver(dst, ConnRoute{moved->second.to, route.id, false}, std::move(packet), from,
            /*forwarded=*/true);
    FlushOutbox();
    return;
  }
  // The connection or link went away between the route lookup and now (another shard's view
  // was older).
  stats_.RecordDrop(DropReason::kGoneDisconnected,
                    packet.disco ? PacketKind::kDisco : PacketKind::kOther, packet.payload.size());
  pool_.Give(std::move(packet.payload));
}

ClientConn* Shard::FindForDelivery(std::uint64_t conn_id) {
  if (ClientConn* conn = Find(conn_id)) return conn;
  if (!arrivals_pending_.load(std::memory_order_acquire)) return nullptr;
  ApplyArrivals();
  return Find(conn_id);
}

bool Shard::ProposeMove(ClientConn& sender, PeerRef peer) {
  Shard& there = server_.shard(peer.shard);
  if (MeetingShard(placement_, view(), there.view()) == peer.shard) {
    sender.CommitMove(peer.shard);  // the reader leaves after this chunk
    return true;
  }
  asio::post(there.io(), [&there, id = peer.conn_id, to = index_, requester = sender.id()] {
    if (ClientConn* conn = there.Find(id)) conn->ConsiderMove(to, requester);
  });
  return false;
}

void Shard::PostArrival(std::unique_ptr<ClientConn> conn) {
  {
    std::lock_guard lock(arrivals_mu_);
    arrivals_.push_back(std::move(conn));
    arrivals_pending_.store(true, std::memory_order_release);
  }
  asio::post(io_, [this] { ApplyArrivals(); });
}

void Shard::ApplyArrivals() {
  {
    std::lock_guard lock(arrivals_mu_);
    arriving_.swap(arrivals_);
    arrivals_pending_.store(false, std::memory_order_relaxed);
  }
  for (auto& conn : arriving_) {
    moved_away_.erase(conn->id());
    // Before the routes name this shard: every other shard's fence is awaited from now.
    fences_.Expect(conn->id(), server_.shard_count(), conn->shard().index(),
                   std::chrono::steady_clock::now());
    conn->ArriveOn(*this);
    // Its loops start from the event loop, never inside the delivery that may have called us.
    asio::post(io_, [c = std::move(conn)]() mutable { RunConnection(std::move(c)); });
  }
  arriving_.clear();
}

void Shard::NoteMovedAway(std::uint64_t conn_id, int to) {
  moved_away_[conn_id] = MovedAway{to, std::chrono::steady_clock::now()};
}

void Shard::OnConnection(PacketSource who, void (ClientConn::*action)()) {
  if (who.shard == index_) {
    if (ClientConn* conn = Find(who.conn_id)) (conn->*action)();
    return;
  }
  Shard& there = server_.shard(who.shard);
  asio::post(there.io(), [&there, id = who.conn_id, action] {
    if (ClientConn* conn = there.Find(id)) (conn->*action)();
  });
}

void Shard::PauseSender(PacketSource who) { OnConnection(who, &ClientConn::PauseReading); }

void Shard::ResumeSender(PacketSource who) { OnConnection(who, &ClientConn::ResumeReading); }

void Shard::FlushOutbox(PacketSource reader) {
  if (outbox_dirty_.empty()) return;
  if (reader.conn_id != 0 &&
      std::find_if(outbox_readers_.begin(), outbox_readers_.end(), [&](const PacketSource& r) {
        return r.conn_id == reader.conn_id;
      }) == outbox_readers_.end()) {
    outbox_readers_.push_back(reader);
  }
  // Posted to the end of this loop's ready work: the chunks of every sender that was readable
  // at the same time cross in one batch, one lock and at most one wake-up of the other thread
  // (a wake-up is the dearest part of a crossing, an IPI on a VM).
  if (!outbox_flush_posted_) {
    outbox_flush_posted_ = true;
    asio::post(io_, [this] {
      outbox_flush_posted_ = false;
      PostOutbox();
    });
  }
}

void Shard::PostOutbox() {
  // Counted before the post: a receiver may have them before this thread goes on.
  stats_.cross_shard_packets.Add(outbox_packets_);
  outbox_packets_ = 0;
  for (int dst : outbox_dirty_) {
    const auto i = static_cast<std::size_t>(dst);
    const bool behind =
        server_.shard(dst).PostDeliveries(std::move(outbox_[i]), outbox_bytes_[i], outbox_readers_);
    outbox_[i].clear();
    outbox_bytes_[i] = 0;
    // One hold per full mailbox, matched by the one resume its DrainInbox() posts back.
    if (behind) {
      for (const PacketSource& reader : outbox_readers_) PauseSender(reader);
    }
  }
  outbox_dirty_.clear();
  outbox_readers_.clear();
}

bool Shard::PostDeliveries(std::vector<Delivery>&& batch, std::size_t bytes,
                           std::span<const PacketSource> readers) {
  bool schedule = false;
  bool behind = false;
  {
    std::lock_guard lock(inbox_mu_);
    if (inbox_.empty()) {
      inbox_.swap(batch);
    } else {
      for (auto& d : batch) inbox_.push_back(std::move(d));
    }
    inbox_bytes_ += bytes;
    if (inbox_bytes_ > kInboxHighBytes && !readers.empty()) {
      behind = true;
      inbox_waiters_.insert(inbox_waiters_.end(), readers.begin(), readers.end());
    }
    if (!inbox_scheduled_) {
      inbox_scheduled_ = true;
      schedule = true;
    }
  }
  if (schedule) asio::post(io_, [this] { DrainInbox(); });
  return behind;
}

void Shard::DrainInbox() {
  const RoutingClock::Pass pass(routing_clock_);
  {
    std::lock_guard lock(inbox_mu_);
    draining_.swap(inbox_);
    inbox_bytes_ = 0;
    resuming_.swap(inbox_waiters_);
    inbox_scheduled_ = false;
  }
  for (auto& d : draining_) {
    if (d.fence) {
      HandleFence(d);
      continue;
    }
    DeliverLocal(d.dst, ConnRoute{index_, d.dst_id, d.mesh}, std::move(d.packet), d.from,
                 d.forwarded);
  }
  draining_.clear();
  FlushWrites();
  // The inbox is empty again: whoever paused for it reads on (each on its own shard).
  for (const PacketSource& who : resuming_) ResumeSender(who);
  resuming_.clear();
}

void Shard::NoteReceivedFrom(ClientConn& dst, const derp::PublicKey& src) {
  if (dst.MaybeLastSource(src)) return;
  dst.SetLastSource(src);
  if (dst.AddHeardFrom(src)) receivers_[src].push_back(dst.id());
}

void Shard::HandleKeyGone(const derp::PublicKey& key) {
  auto it = receivers_.find(key);
  if (it == receivers_.end()) return;
  for (std::uint64_t id : it->second) {
    ClientConn* conn = Find(id);
    if (conn != nullptr && conn->ForgetHeardFrom(key)) {
      if (conn->MaybeLastSource(key)) conn->SetLastSource(derp::PublicKey{});
      conn->QueuePeerGone(key, derp::PeerGoneReason::kDisconnected);
    }
  }
  receivers_.erase(it);
}

asio::awaitable<void> Shard::ConnectionTicker() {
  // KeepAlives every keepalive_tick_ (KeepAliveTick). Waiting writers: every kWatchdogTick when
  // there are write deadlines, else with the keepalives.
  const RelayConfig& config = server_.config();
  auto tick = keepalive_tick_;
  const bool measure_busy = server_.shard_count() > 1 && config.move_connections;
  if (config.tcp_write_timeout.count() > 0 || config.mesh_write_timeout.count() > 0 ||
      measure_busy) {
    tick = std::min<std::chrono::milliseconds>(tick, kWatchdogTick);
  }
  ticker_timer_ = std::make_unique<asio::steady_timer>(io_);
  auto next_keepalives = std::chrono::steady_clock::now();
  std::vector<ClientConn*> overdue;
  for (;;) {
    ticker_timer_->expires_after(tick);
    auto [ec] = co_await ticker_timer_->async_wait(net::kAsTuple);
    if (ec) co_return;
    const auto now = std::chrono::steady_clock::now();
    MeasureBusy(now);
    if (now >= next_keepalives) {
      // KeepAliveDue only queues and posts a flush: conns_ does not change under us. A closed
      // connection's id is not found and drops out of the wheel.
      keepalive_wheel_.TakeDue(now, keepalives_due_);
      for (std::uint64_t id : keepalives_due_) {
        ClientConn* conn = Find(id);
        if (conn == nullptr) continue;
        if (auto next = conn->KeepAliveDue(now)) keepalive_wheel_.Schedule(id, *next);
      }
      keepalives_due_.clear();
      next_keepalives = now + keepalive_tick_;
      std::erase_if(moved_away_,
                    [&](const auto& entry) { return now - entry.second.at > kMovedForwardFor; });
    }
    // Neither releasing senders nor the check changes writing_; closing does (later), so the
    // overdue are closed after the loop.
    for (ClientConn* conn : writing_) {
      conn->ReleaseSendersIfStalled(now);
      if (conn->WriteOverdue(now)) overdue.push_back(conn);
    }
    for (ClientConn* conn : overdue) {
      stats_.write_timeouts.Add();
      conn->Close(CloseReason::kWriteTimeout);
    }
    overdue.clear();
  }
}

void Shard::MeasureBusy(std::chrono::steady_clock::time_point now) {
  const std::int64_t cpu = ThisThreadCpuTime().count();
  const std::int64_t used = cpu - cpu_ns_.load(std::memory_order_relaxed);
  cpu_ns_.store(cpu, std::memory_order_relaxed);
  const auto since = busy_measured_at_;
  busy_measured_at_ = now;
  if (since == std::chrono::steady_clock::time_point{} || now <= since) return;
  const std::int64_t wall = std::chrono::nanoseconds(now - since).count();
  const auto period = static_cast<int>(std::clamp<std::int64_t>(used * 1000 / wall, 0, 1000));
  // An eighth of the last period, seven eighths of what came before (about 2 s of history at
  // 250 ms): one period's figure jumps with the scheduler, and a figure that jumped across both
  // marks by turns would gather and spread the same pairs by turns.
  busy_permille_.store((busy_permille() * (kBusyHistoryWeight - 1) + period) / kBusyHistoryWeight,
                       std::memory_order_relaxed);

  if (server_.shard_count() < 2 || !server_.config().move_connections) return;
  if (periods_since_shed_ < kPeriodsBetweenSpreads) ++periods_since_shed_;
  shard_views_.clear();
  for (int i = 0; i < server_.shard_count(); ++i) shard_views_.push_back(server_.shard(i).view());
  const ShardLoadView here = view();
  shed_to_ = ShedTarget(placement_, here, shard_views_);
  if (periods_since_shed_ < (Spreading(placement_, here) ? kPeriodsBetweenSpreads : 1)) {
    shed_to_ = -1;
  }
}

void Shard::CloseAll() {
  std::vector<ClientConn*> all;
  all.reserve(conns_.size());
  for (auto& [id, conn] : conns_) all.push_back(conn);
  for (ClientConn* conn : all) conn->Close(CloseReason::kServerShutdown);
  if (ticker_timer_) ticker_timer_->cancel();
}

}  // namespace derpkit::relay
