#include "relay/shard.h"

#include <asio/experimental/as_tuple.hpp>

#include "lib/net/log.h"
#include "relay/client_conn.h"
#include "relay/mesh.h"
#include "relay/server.h"

namespace derpkit::relay {

namespace {
constexpr auto kWatchdogTick = std::chrono::milliseconds(250);
}  // namespace

Shard::Shard(int index, Server& server)
    : index_(index),
      server_(server),
      work_(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          io_.get_executor())),
      outbox_(static_cast<std::size_t>(server.shard_count())) {}

Shard::~Shard() { StopAndJoin(); }

void Shard::StartThread() {
  asio::co_spawn(io_, WriteWatchdog(), asio::detached);
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
}

void Shard::AttachLink(MeshLink& link) { links_[link.id()] = &link; }

void Shard::DetachLink(MeshLink& link) { links_.erase(link.id()); }

ClientConn* Shard::Find(std::uint64_t conn_id) const {
  auto it = conns_.find(conn_id);
  return it == conns_.end() ? nullptr : it->second;
}

void Shard::ApplyRoute(const derp::PublicKey& key, ConnRoute route) {
  if (route.id == 0) {
    routes_.erase(key);
  } else {
    routes_[key] = route;
  }
}

void Shard::RoutePacket(const derp::PublicKey& dst, Packet&& packet, ClientConn& from) {
  const PacketKind kind = packet.disco ? PacketKind::kDisco : PacketKind::kOther;
  auto it = routes_.find(dst);
  if (it == routes_.end()) {
    stats_.RecordDrop(DropReason::kUnknownDest, kind, packet.payload.size());
    if (packet.disco) from.QueuePeerGone(dst, derp::PeerGoneReason::kNotHere);
    pool_.Give(std::move(packet.payload));
    return;
  }
  Deliver(dst, it->second, std::move(packet));
}

void Shard::RouteForwarded(const derp::PublicKey& dst, Packet&& packet, ClientConn& from_mesh) {
  const PacketKind kind = packet.disco ? PacketKind::kDisco : PacketKind::kOther;
  auto it = routes_.find(dst);
  if (it == routes_.end() || it->second.mesh) {
    // Mesh forwarding is one hop: a packet for a key that is not local here is dropped.
    stats_.RecordDrop(DropReason::kUnknownDestOnFwd, kind, packet.payload.size());
    if (packet.disco) from_mesh.QueuePeerGone(dst, derp::PeerGoneReason::kNotHere);
    pool_.Give(std::move(packet.payload));
    return;
  }
  Deliver(dst, it->second, std::move(packet));
}

void Shard::Deliver(const derp::PublicKey& dst, ConnRoute route, Packet&& packet) {
  if (route.shard == index_) {
    DeliverLocal(dst, route, std::move(packet));
    return;
  }
  auto& box = outbox_[static_cast<std::size_t>(route.shard)];
  if (box.empty()) outbox_dirty_.push_back(route.shard);
  box.push_back(Delivery{dst, route.id, route.mesh, std::move(packet)});
}

void Shard::DeliverLocal(const derp::PublicKey& dst, ConnRoute route, Packet&& packet) {
  if (route.mesh) {
    auto it = links_.find(route.id);
    if (it != links_.end()) {
      it->second->EnqueueForward(dst, std::move(packet));
      return;
    }
  } else if (ClientConn* conn = Find(route.id)) {
    NoteReceivedFrom(*conn, packet.src);
    conn->Enqueue(std::move(packet));
    return;
  }
  // The connection or link went away between the route lookup and now (another shard's view
  // was older).
  stats_.RecordDrop(DropReason::kGoneDisconnected,
                    packet.disco ? PacketKind::kDisco : PacketKind::kOther, packet.payload.size());
  pool_.Give(std::move(packet.payload));
}

void Shard::FlushOutbox() {
  for (int dst : outbox_dirty_) {
    auto& box = outbox_[static_cast<std::size_t>(dst)];
    stats_.cross_shard_packets.Add(box.size());
    server_.shard(dst).PostDeliveries(std::move(box));
    box.clear();
  }
  outbox_dirty_.clear();
}

void Shard::PostDeliveries(std::vector<Delivery>&& batch) {
  bool schedule = false;
  {
    std::lock_guard lock(inbox_mu_);
    if (inbox_.empty()) {
      inbox_.swap(batch);
    } else {
      for (auto& d : batch) inbox_.push_back(std::move(d));
    }
    if (!inbox_scheduled_) {
      inbox_scheduled_ = true;
      schedule = true;
    }
  }
  if (schedule) asio::post(io_, [this] { DrainInbox(); });
}

void Shard::DrainInbox() {
  {
    std::lock_guard lock(inbox_mu_);
    draining_.swap(inbox_);
    inbox_scheduled_ = false;
  }
  for (auto& d : draining_) {
    DeliverLocal(d.dst, ConnRoute{index_, d.dst_id, d.mesh}, std::move(d.packet));
  }
  draining_.clear();
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

void Shard::WatchWrite(ClientConn& conn) { writing_.insert(&conn); }

void Shard::UnwatchWrite(ClientConn& conn) { writing_.erase(&conn); }

asio::awaitable<void> Shard::WriteWatchdog() {
  if (server_.config().tcp_write_timeout.count() == 0 &&
      server_.config().mesh_write_timeout.count() == 0) {
    co_return;
  }
  watchdog_timer_ = std::make_unique<asio::steady_timer>(io_);
  for (;;) {
    watchdog_timer_->expires_after(kWatchdogTick);
    auto [ec] = co_await watchdog_timer_->async_wait(net::kAsTuple);
    if (ec) co_return;
    if (writing_.empty()) continue;
    const auto now = std::chrono::steady_clock::now();
    std::vector<ClientConn*> expired;
    for (ClientConn* conn : writing_) {
      const auto timeout = conn->write_timeout();
      if (timeout.count() > 0 && now - conn->write_started() > timeout) expired.push_back(conn);
    }
    for (ClientConn* conn : expired) {
      writing_.erase(conn);
      stats_.write_timeouts.Add();
      conn->Close(CloseReason::kWriteTimeout);
    }
  }
}

void Shard::CloseAll() {
  std::vector<ClientConn*> all;
  all.reserve(conns_.size());
  for (auto& [id, conn] : conns_) all.push_back(conn);
  for (ClientConn* conn : all) conn->Close(CloseReason::kServerShutdown);
  if (watchdog_timer_) watchdog_timer_->cancel();
}

}  // namespace derpkit::relay
