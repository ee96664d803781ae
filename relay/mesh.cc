#include "relay/mesh.h"

#include <asio/experimental/awaitable_operators.hpp>

#include "lib/derp/messages.h"
#include "lib/net/log.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {

using namespace asio::experimental::awaitable_operators;

namespace {
constexpr std::size_t kMaxQueuedForwards = 1024;
constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(5);  // derper retries every 5 s
}  // namespace

std::optional<MeshPeer> ParseMeshPeer(const std::string& raw, bool tls) {
  std::string entry = raw;
  while (!entry.empty() && entry.back() == ' ') entry.pop_back();
  while (!entry.empty() && entry.front() == ' ') entry.erase(0, 1);
  if (entry.empty()) return std::nullopt;
  MeshPeer peer;
  peer.name = entry;
  if (entry.rfind("http://", 0) == 0 || entry.rfind("https://", 0) == 0) {
    peer.url = entry;
    return peer;
  }
  std::string host = entry;
  if (const auto slash = entry.find('/'); slash != std::string::npos) {
    host = entry.substr(0, slash);
    peer.dial_host = entry.substr(slash + 1);
  }
  peer.url = std::string(tls ? "https://" : "http://") + host + "/derp";
  return peer;
}

MeshLink::MeshLink(Shard& shard, MeshPeer peer)
    : shard_(shard),
      peer_(std::move(peer)),
      id_(shard.server().NextConnId()),
      wake_(shard.io()),
      backoff_(shard.io()) {}

MeshLink::~MeshLink() = default;

void MeshLink::Start() {
  asio::post(shard_.io(), [this] {
    shard_.AttachLink(*this);
    asio::co_spawn(shard_.io(), Run(), asio::detached);
  });
}

void MeshLink::Stop() {
  stopping_ = true;
  backoff_.cancel();
  wake_.cancel();
  if (client_ != nullptr) client_->Close();
}

void MeshLink::EnqueueForward(const derp::PublicKey& dst, Packet&& packet) {
  if (client_ == nullptr) {
    ++stats_.dropped;
    shard_.pool().Give(std::move(packet.payload));
    return;
  }
  if (queue_.size() >= kMaxQueuedForwards) {
    ++stats_.dropped;
    shard_.pool().Give(std::move(queue_.front().second.payload));
    queue_.pop_front();
  }
  queue_.emplace_back(dst, std::move(packet));
  if (writer_waiting_) wake_.cancel();
}

void MeshLink::ForgetLearnt() {
  shard_.server().registry().RemoveAllForwarders(id_);
  stats_.keys = 0;
}

asio::awaitable<void> MeshLink::Run() {
  Server& server = shard_.server();
  auto backoff = std::chrono::milliseconds(kMinBackoff);
  while (!stopping_) {
    derpclient::ClientOptions opts;
    opts.url = peer_.url;
    opts.dial_host = peer_.dial_host;
    opts.key = server.private_key();
    opts.mesh_key = server.mesh_key();
    opts.tls = server.mesh_tls_options();
    opts.connect_timeout = std::chrono::seconds(10);
    derpclient::Client client(shard_.io(), opts);
    client_ = &client;
    auto connected = co_await client.Connect();
    if (connected && client.server_key() == server.public_key()) {
      // derper does the same: an entry for this relay itself is ignored.
      LOG_INFO("mesh: %s is this relay itself; not meshing with it", peer_.name.c_str());
      stats_.is_self.store(true, std::memory_order_relaxed);
      client_ = nullptr;
      break;
    }
    if (connected) {
      if (auto ec = co_await client.WatchConns()) connected = Unexpected{ec.message()};
    }
    if (!connected) {
      client_ = nullptr;
      if (stopping_) break;
      LOG_WARN("mesh: %s: %s; retrying in %lld ms", peer_.name.c_str(), connected.error().c_str(),
               static_cast<long long>(backoff.count()));
      backoff_.expires_after(backoff);
      co_await backoff_.async_wait(net::kAsTuple);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kMinBackoff;
    stats_.connected = true;
    ++stats_.connects;
    LOG_INFO("mesh: connected to %s (%s)", peer_.name.c_str(),
             client.server_key().ShortString().c_str());
    co_await (ReadLoop(client) || WriteLoop(client));
    client.Close();
    client_ = nullptr;
    stats_.connected = false;
    ++stats_.disconnects;
    stats_.dropped += queue_.size();
    for (auto& [dst, p] : queue_) shard_.pool().Give(std::move(p.payload));
    queue_.clear();
    ForgetLearnt();
    if (!stopping_) {
      LOG_WARN("mesh: lost %s; redialling", peer_.name.c_str());
      backoff_.expires_after(kMinBackoff);
      co_await backoff_.async_wait(net::kAsTuple);
    }
  }
  shard_.DetachLink(*this);
}

asio::awaitable<void> MeshLink::ReadLoop(derpclient::Client& client) {
  Registry& registry = shard_.server().registry();
  for (;;) {
    auto msg = co_await client.Recv();
    if (!msg) {
      if (!stopping_) LOG_INFO("mesh: %s: %s", peer_.name.c_str(), msg.error().c_str());
      client.Close();  // ends the write loop too
      co_return;
    }
    if (auto* present = std::get_if<derpclient::PeerPresentMessage>(&*msg)) {
      registry.AddForwarder(present->peer.key, shard_.index(), id_);
      ++stats_.keys;
    } else if (auto* gone = std::get_if<derpclient::PeerGoneMessage>(&*msg)) {
      registry.RemoveForwarder(gone->key, id_);
      --stats_.keys;
    }
  }
}

asio::awaitable<void> MeshLink::WriteLoop(derpclient::Client& client) {
  Bytes out;
  for (;;) {
    if (stopping_) co_return;
    if (queue_.empty()) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      writer_waiting_ = true;
      co_await wake_.async_wait(net::kAsTuple);
      writer_waiting_ = false;
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) co_return;
      continue;
    }
    out.clear();
    std::size_t frames = 0;
    while (!queue_.empty() && out.size() < 256 * 1024) {
      auto& [dst, p] = queue_.front();
      derp::AppendForwardPacket(out, p.src, dst, p.payload);
      shard_.pool().Give(std::move(p.payload));
      queue_.pop_front();
      ++frames;
    }
    if (auto ec = co_await client.SendRaw(out)) {
      client.Close();  // ends the read loop too
      co_return;
    }
    stats_.forwarded += frames;
    shard_.stats().packets_forwarded_out.Add(frames);
  }
}

}  // namespace derpkit::relay
