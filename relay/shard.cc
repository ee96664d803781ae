#include "relay/shard.h"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>

#include "lib/net/log.h"
#include "relay/client_conn.h"
#include "relay/mesh.h"
#include "relay/server.h"

namespace derpkit::relay {

namespace {
constexpr auto kWatchdogTick = std::chrono::milliseconds(250);

// The ticker's keepalive period: a quarter of the interval (at most 1 s, at least 10 ms), so a
// KeepAlive leaves at most that late, which derper's clients (timeout: 2 minutes) never notice.
std::chrono::milliseconds KeepAliveTick(const RelayConfig& config) {
  const auto interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.keepalive_interval);
  return std::clamp(interval / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

}  // namespace

Shard::Shard(int index, Server& server)
    : index_(index),
      server_(server),
      work_(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          io_.get_executor())),
      reactor_(asio::use_service<net::SocketReactor>(io_)),
      read_buffer_(kShardReadBufferSize),
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

void Shard::Attach(ClientConn& conn) { conns_[conn.id()] = &conn; }

void Shard::Detach(ClientConn& conn) {
  conns_.erase(conn.id());
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
    } else {
      routes_[key] = route;
    }
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

void Shard::Deliver(const derp::PublicKey& dst, ConnRoute route, Packet&& packet,
                    PacketSource from) {
  if (route.shard == index_) {
    DeliverLocal(dst, route, std::move(packet), from);
    return;
  }
  auto& box = outbox_[static_cast<std::size_t>(route.shard)];
  if (box.empty()) outbox_dirty_.push_back(route.shard);
  outbox_bytes_[static_cast<std::size_t>(route.shard)] += packet.payload.size();
  box.push_back(Delivery{dst, route.id, route.mesh, from, std::move(packet)});
}

void Shard::DeliverLocal(const derp::PublicKey& dst, ConnRoute route, Packet&& packet,
                         PacketSource from) {
  if (route.mesh) {
    auto it = links_.find(route.id);
    if (it != links_.end()) {
      it->second->EnqueueForward(dst, std::move(packet));
      return;
    }
  } else if (ClientConn* conn = Find(route.id)) {
    NoteReceivedFrom(*conn, packet.src);
    conn->Enqueue(std::move(packet), from);
    return;
  }
  // The connection or link went away between the route lookup and now (another shard's view
  // was older).
  stats_.RecordDrop(DropReason::kGoneDisconnected,
                    packet.disco ? PacketKind::kDisco : PacketKind::kOther, packet.payload.size());
  pool_.Give(std::move(packet.payload));
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
  for (int dst : outbox_dirty_) {
    const auto i = static_cast<std::size_t>(dst);
    stats_.cross_shard_packets.Add(outbox_[i].size());
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
  {
    std::lock_guard lock(inbox_mu_);
    draining_.swap(inbox_);
    inbox_bytes_ = 0;
    resuming_.swap(inbox_waiters_);
    inbox_scheduled_ = false;
  }
  for (auto& d : draining_) {
    DeliverLocal(d.dst, ConnRoute{index_, d.dst_id, d.mesh}, std::move(d.packet), d.from);
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
  if (config.tcp_write_timeout.count() > 0 || config.mesh_write_timeout.count() > 0) {
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

void Shard::CloseAll() {
  std::vector<ClientConn*> all;
  all.reserve(conns_.size());
  for (auto& [id, conn] : conns_) all.push_back(conn);
  for (ClientConn* conn : all) conn->Close(CloseReason::kServerShutdown);
  if (ticker_timer_) ticker_timer_->cancel();
}

}  // namespace derpkit::relay
