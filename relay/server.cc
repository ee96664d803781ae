#include "relay/server.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "lib/derp/messages.h"
#include "lib/net/certs.h"
#include "lib/net/log.h"
#include "lib/net/socket_options.h"
#include "lib/net/tls.h"
#include "lib/util/netaddr.h"
#include "relay/client_conn.h"
#include "relay/front.h"

namespace derpkit::relay {

namespace {

derp::MeshKey LoadMeshKey(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--mesh-psk-file " + path + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  auto key = derp::MeshKey::Parse(text.str());
  if (!key) {
    throw std::runtime_error("--mesh-psk-file " + path +
                             ": want 64 hex digits: " + std::string(derp::Describe(key.error())));
  }
  if (key->IsZero()) throw std::runtime_error("--mesh-psk-file " + path + ": the key is all zero");
  return *key;
}

}  // namespace

Server::Server(RelayConfig config, derp::PrivateKey key)
    : config_(std::move(config)),
      private_key_(key),
      public_key_(key.Public()),
      bootstrap_dns_(BootstrapDnsOptions{.published = config_.bootstrap_dns_names,
                                         .unpublished = config_.unpublished_bootstrap_dns_names,
                                         .resolver = config_.bootstrap_dns_resolver}) {
  if (config_.tls) {
    net::RawKey raw_key;
    std::memcpy(raw_key.data(), public_key_.bytes.data(), derp::kKeySize);
    certs_ = std::make_unique<CertManager>(config_, raw_key);
  }
  if (!config_.mesh_psk_file.empty()) mesh_key_ = LoadMeshKey(config_.mesh_psk_file);
  debug_access_.trusted_cidrs = config_.debug_trusted_prefixes;
  if (!config_.debug_key_file.empty()) {
    std::ifstream in(config_.debug_key_file);
    if (!in)
      throw std::runtime_error("--debug-key-file " + config_.debug_key_file + ": cannot read");
    std::stringstream text;
    text << in.rdbuf();
    std::string key = text.str();
    const auto first = key.find_first_not_of(" \t\r\n");
    const auto last = key.find_last_not_of(" \t\r\n");
    key = first == std::string::npos ? "" : key.substr(first, last - first + 1);
    if (key.empty())
      throw std::runtime_error("--debug-key-file " + config_.debug_key_file + ": empty");
    debug_access_.debug_key = key;
  }
  admission_ = std::make_unique<Admission>(config_.admission);
  for (int i = 0; i < config_.workers; ++i) shards_.push_back(std::make_unique<Shard>(i, *this));
}

Server::~Server() { Stop(); }

std::unique_ptr<asio::ip::tcp::acceptor> Server::Bind(const std::string& host, std::uint16_t port) {
  asio::ip::tcp::endpoint ep;
  if (host.empty()) {
    ep = asio::ip::tcp::endpoint(asio::ip::tcp::v6(), port);
  } else {
    ep = asio::ip::tcp::endpoint(asio::ip::make_address(host), port);
  }
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(shard(0).io());
  acceptor->open(ep.protocol());
  acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true));
  if (host.empty()) acceptor->set_option(asio::ip::v6_only(false));
  std::error_code ec;
  acceptor->bind(ep, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + netaddr::JoinHostPort(host, port));
  }
  acceptor->listen(asio::socket_base::max_listen_connections);
  return acceptor;
}

void Server::Start() {
  main_acceptor_ = Bind(config_.listen_host, config_.listen_port);
  port_ = main_acceptor_->local_endpoint().port();
  if (config_.tls && config_.http_port >= 0) {
    http_acceptor_ = Bind(config_.listen_host, static_cast<std::uint16_t>(config_.http_port));
    http_port_ = http_acceptor_->local_endpoint().port();
  }
  if (config_.stun) {
    StunServerConfig sc;
    sc.listen_host = config_.listen_host;
    sc.port = static_cast<std::uint16_t>(config_.stun_port);
    sc.strict = config_.stun_strict;
    sc.threads = config_.workers;
    stun_ = std::make_unique<StunServer>(sc, stun_stats_);
    stun_->Start();
  }
  if (!config_.debug_addr.empty()) {
    debug_acceptor_ = Bind(config_.debug_listen_host, config_.debug_listen_port);
    debug_port_ = debug_acceptor_->local_endpoint().port();
    asio::co_spawn(shard(0).io(), AcceptLoop(*debug_acceptor_, ListenerKind::kDebug),
                   asio::detached);
  }
  asio::co_spawn(shard(0).io(), AcceptLoop(*main_acceptor_, ListenerKind::kMain), asio::detached);
  if (http_acceptor_) {
    asio::co_spawn(shard(0).io(), AcceptLoop(*http_acceptor_, ListenerKind::kHttpPort),
                   asio::detached);
  }
  for (auto& s : shards_) s->StartThread();
  AddMeshPeers(config_.mesh_with);
  bootstrap_dns_.Start();
  // Last: ACME challenges are answered on the listeners bound above.
  if (certs_) certs_->Start();
}

std::uint16_t Server::stun_port() const { return stun_ ? stun_->port() : 0; }

asio::awaitable<void> Server::AcceptLoop(asio::ip::tcp::acceptor& acceptor, ListenerKind kind) {
  asio::steady_timer backoff(shard(0).io());
  std::chrono::steady_clock::time_point last_accept_log{};
  std::uint64_t accept_failures_unlogged = 0;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(net::kAsTuple);
    if (stopping_.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      NoteAcceptError();
      // At the descriptor limit accept fails ten times a second: say so once per 10 s.
      const auto now = std::chrono::steady_clock::now();
      ++accept_failures_unlogged;
      if (now - last_accept_log >= std::chrono::seconds(10)) {
        if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
          LOG_ERROR(
              "accept: out of file descriptors (%s, open-file limit %ld): refusing new "
              "connections until some close; raise the limit (ulimit -n, LimitNOFILE=) "
              "or spread clients over more relays (%llu failed accepts)",
              ec.message().c_str(), net::CurrentOpenFileLimit(),
              static_cast<unsigned long long>(accept_failures_unlogged));
        } else {
          LOG_WARN("accept: %s (%llu failed accepts)", ec.message().c_str(),
                   static_cast<unsigned long long>(accept_failures_unlogged));
        }
        last_accept_log = now;
        accept_failures_unlogged = 0;
      }
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(net::kAsTuple);
      continue;
    }
    if (kind == ListenerKind::kMain && !AdmitByAcceptLimit(socket)) continue;
    // Round robin over shards; the socket moves to its shard's loop by file descriptor.
    Shard& target = shard(static_cast<int>(next_shard_++ % shards_.size()));
    if (&target == &shard(0)) {
      asio::co_spawn(target.io(), ServeConnection(target, std::move(socket), kind), asio::detached);
      continue;
    }
    const auto protocol = socket.local_endpoint().protocol();
    const int fd = socket.release();
    asio::post(target.io(), [&target, protocol, fd, kind] {
      asio::ip::tcp::socket moved(target.io(), protocol, fd);
      asio::co_spawn(target.io(), ServeConnection(target, std::move(moved), kind), asio::detached);
    });
  }
}

void Server::Stop() {
  if (stopping_.exchange(true)) return;
  if (certs_) certs_->Stop();
  if (shards_.empty()) return;
  // Stop accepting first, on the loop that owns the acceptors.
  asio::post(shard(0).io(), [this] {
    std::error_code ignored;
    if (main_acceptor_) main_acceptor_->close(ignored);
    if (http_acceptor_) http_acceptor_->close(ignored);
    if (debug_acceptor_) debug_acceptor_->close(ignored);
  });
  for (auto& link : mesh_links_) {
    asio::post(link->shard().io(), [l = link.get()] { l->Stop(); });
  }
  const auto give_up = std::chrono::steady_clock::now() + config_.shutdown_grace;
  SendRestartingToAll(give_up);
  for (auto& s : shards_) asio::post(s->io(), [&s = *s] { s.CloseAll(); });
  // Connections end on their own once their sockets are closed; wait for that, bounded.
  while (std::chrono::steady_clock::now() < give_up && Snapshot().current_connections > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Answers the handshakes still waiting for a verifier, while the shards can take the answers.
  admission_->Stop();
  for (auto& s : shards_) s->StopAndJoin();
  bootstrap_dns_.Stop();
  if (stun_) stun_->Stop();  // joins its threads
}

StatsSnapshot Server::Snapshot() const {
  StatsSnapshot out;
  for (const auto& s : shards_) {
    const ShardStats& st = s->stats();
    out.accepts += st.accepts.value();
    out.derp_accepts += st.derp_accepts.value();
    out.websocket_accepts += st.websocket_accepts.value();
    out.http_requests += st.http_requests.value();
    out.current_connections += st.current_connections.value();
    out.home_connections += st.home_connections.value();
    out.home_moves_in += st.home_moves_in.value();
    out.home_moves_out += st.home_moves_out.value();
    out.packets_received += st.packets_received.value();
    out.bytes_received += st.bytes_received.value();
    out.packets_sent += st.packets_sent.value();
    out.bytes_sent += st.bytes_sent.value();
    for (std::size_t i = 0; i < kPacketKindCount; ++i) {
      out.packets_received_kind[i] += st.packets_received_kind[i].value();
    }
    for (std::size_t r = 0; r < kDropReasonCount; ++r) {
      for (std::size_t k = 0; k < kPacketKindCount; ++k) {
        const std::uint64_t packets = st.packets_dropped[r][k].value();
        const std::uint64_t bytes = st.bytes_dropped[r][k].value();
        out.packets_dropped_by_kind[r][k] += packets;
        out.bytes_dropped_by_kind[r][k] += bytes;
        out.packets_dropped[r] += packets;
        out.bytes_dropped[r] += bytes;
        out.packets_dropped_kind[k] += packets;
      }
    }
    for (std::size_t i = 0; i < kCloseReasonCount; ++i) out.closes[i] += st.closes[i].value();
    out.got_ping += st.got_ping.value();
    out.sent_pong += st.sent_pong.value();
    out.peer_gone_disconnected_frames += st.peer_gone_disconnected_frames.value();
    out.peer_gone_not_here_frames += st.peer_gone_not_here_frames.value();
    out.unknown_frames += st.unknown_frames.value();
    out.write_timeouts += st.write_timeouts.value();
    out.sender_pauses += st.sender_pauses.value();
    out.keepalives_sent += st.keepalives_sent.value();
    out.cross_shard_packets += st.cross_shard_packets.value();
    out.packets_forwarded_in += st.packets_forwarded_in.value();
    out.packets_forwarded_out += st.packets_forwarded_out.value();
    for (std::size_t i = 0; i < 2; ++i) out.tls_versions[i] += st.tls_versions[i].value();
    out.tls13_record_layer += st.tls13_record_layer.value();
    out.tls_handshake_failures += st.tls_handshake_failures.value();
    out.proxy_header_failures += st.proxy_header_failures.value();
    for (std::size_t i = 0; i < out.http_requests_by_route.size(); ++i) {
      out.http_requests_by_route[i] += st.http_requests_by_route[i].value();
    }
    out.queue_delay_seconds.Add(st.queue_delay_seconds);
    out.frames_per_write.Add(st.frames_per_write);
    out.connection_seconds.Add(st.connection_seconds);
    out.shards.push_back(ShardLoad{st.current_connections.value(), st.packets_received.value(),
                                   st.packets_sent.value(), st.cross_shard_packets.value(),
                                   st.connections_moved_in.value(),
                                   std::chrono::duration<double>(s->cpu_time()).count()});
  }
  out.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  out.listener_accepted = accept_limiter_.accepted();
  out.listener_rejected = accept_limiter_.rejected();
  out.bootstrap_dns = bootstrap_dns_.Stats();
  out.registry = registry_.GetTotals();
  return out;
}

bool Server::IsMeshKey(const std::optional<derp::MeshKey>& key) const {
  return key && mesh_key_ && !key->IsZero() && mesh_key_->ConstantTimeEquals(*key);
}

net::TlsClientOptions Server::mesh_tls_options() const {
  net::TlsClientOptions o;
  o.ca_file = config_.mesh_ca_file;
  return o;
}

void Server::AddMeshPeers(const std::vector<std::string>& entries) {
  for (const std::string& entry : entries) {
    auto peer = ParseMeshPeer(entry, config_.tls);
    // derper skips its own name in --mesh-with; a link that reaches us anyway stops itself.
    if (!peer || peer->name == config_.hostname) continue;
    Shard& s = shard(static_cast<int>(mesh_links_.size() % shards_.size()));
    mesh_links_.push_back(std::make_unique<MeshLink>(s, *peer));
    mesh_links_.back()->Start();
  }
}

void Server::BroadcastRoute(const derp::PublicKey& key, ConnRoute route) {
  for (auto& s : shards_) s->PostRoute(key, route);
}

void Server::NotifyDupState(int shard_index, std::uint64_t conn_id, bool dup, bool active) {
  Shard& s = shard(shard_index);
  asio::post(s.io(), [&s, conn_id, dup, active] {
    if (ClientConn* conn = s.Find(conn_id)) conn->SetDupState(dup, active);
  });
}

void Server::BroadcastKeyGone(const derp::PublicKey& key) {
  for (auto& s : shards_) {
    asio::post(s->io(), [&s = *s, key] { s.HandleKeyGone(key); });
  }
}

void Server::NotifyWatcher(int shard_index, std::uint64_t watcher_conn_id,
                           const derp::PublicKey& key,
                           const std::optional<derp::PeerPresent>& present) {
  Shard& s = shard(shard_index);
  asio::post(s.io(), [&s, watcher_conn_id, key, present] {
    ClientConn* conn = s.Find(watcher_conn_id);
    if (conn == nullptr) return;
    if (present) {
      conn->QueuePeerPresent(*present);
    } else {
      conn->QueuePeerGone(key, derp::PeerGoneReason::kDisconnected);
    }
  });
}

void Server::CloseConnection(int shard_index, std::uint64_t conn_id) {
  Shard& s = shard(shard_index);
  asio::post(s.io(), [&s, conn_id] {
    if (ClientConn* conn = s.Find(conn_id)) conn->Close(CloseReason::kClosedByMesh);
  });
}

}  // namespace derpkit::relay
