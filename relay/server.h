// The relay: shards, the key registry, listeners (DERP over TLS or plain HTTP, the plain
// captive-portal port, STUN) and their lifecycle. main.cc builds one from a validated
// RelayConfig; tests build one in-process on 127.0.0.1 port 0.
//
// Thread affinity: Start() and Stop() from one controlling thread; everything else as noted.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lib/derp/frame.h"
#include "lib/derp/keys.h"
#include "lib/net/tls.h"
#include "relay/accept_limit.h"
#include "relay/admission.h"
#include "relay/bootstrap_dns.h"
#include "relay/cert_manager.h"
#include "relay/config.h"
#include "relay/debug.h"
#include "relay/front.h"
#include "relay/mesh.h"
#include "relay/registry.h"
#include "relay/shard.h"
#include "relay/stats.h"
#include "relay/stun_server.h"

namespace derpkit::relay {

class ClientConn;

// The version the build was configured with (CMake project version).
inline constexpr const char* kDerpkitVersion = DERPKIT_VERSION;

// A histogram summed over shards: `counts` are per bucket (not cumulative), the last is +Inf.
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;
  double sum = 0;

  template <std::size_t N>
  void Add(const ShardHistogram<N>& h) {
    if (bounds.empty()) {
      bounds.assign(h.bounds().begin(), h.bounds().end());
      counts.assign(N + 1, 0);
    }
    for (std::size_t i = 0; i <= N; ++i) counts[i] += h.bucket(i);
    sum += h.sum();
  }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (auto c : counts) n += c;
    return n;
  }
};

// One shard's share of the load.
struct ShardLoad {
  std::int64_t connections = 0;
  std::uint64_t packets_received = 0;
  std::uint64_t packets_sent = 0;
  std::uint64_t cross_shard_packets = 0;
  std::uint64_t connections_moved_in = 0;
  // The shard thread's CPU time as its ticker last read it (every 250 ms by default; at most 1 s
  // old).
  double cpu_seconds = 0;
};

// Totals over all shards, read at any time from any thread.
struct StatsSnapshot {
  std::uint64_t accepts = 0;
  std::uint64_t derp_accepts = 0;
  std::uint64_t websocket_accepts = 0;
  std::uint64_t http_requests = 0;
  std::int64_t current_connections = 0;
  std::int64_t home_connections = 0;
  std::uint64_t home_moves_in = 0;
  std::uint64_t home_moves_out = 0;
  std::uint64_t packets_received = 0;
  std::uint64_t bytes_received = 0;
  std::array<std::uint64_t, kPacketKindCount> packets_received_kind{};
  std::uint64_t packets_sent = 0;
  std::uint64_t bytes_sent = 0;
  // Drops by [reason][kind], and the sums by reason and by kind.
  PerDropReasonAndKind<std::uint64_t> packets_dropped_by_kind{};
  PerDropReasonAndKind<std::uint64_t> bytes_dropped_by_kind{};
  std::array<std::uint64_t, kDropReasonCount> packets_dropped{};
  std::array<std::uint64_t, kDropReasonCount> bytes_dropped{};
  std::array<std::uint64_t, kPacketKindCount> packets_dropped_kind{};
  std::array<std::uint64_t, kCloseReasonCount> closes{};
  std::uint64_t got_ping = 0;
  std::uint64_t sent_pong = 0;
  std::uint64_t peer_gone_disconnected_frames = 0;
  std::uint64_t peer_gone_not_here_frames = 0;
  std::uint64_t unknown_frames = 0;
  std::uint64_t write_timeouts = 0;
  std::uint64_t sender_pauses = 0;
  std::uint64_t keepalives_sent = 0;
  std::uint64_t cross_shard_packets = 0;
  std::uint64_t accept_errors = 0;
  std::uint64_t packets_forwarded_in = 0;
  std::uint64_t packets_forwarded_out = 0;
  std::array<std::uint64_t, 2> tls_versions{};  // 0 = TLS 1.2, 1 = TLS 1.3
  std::uint64_t tls13_record_layer = 0;
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t proxy_header_failures = 0;
  // The main listener's accept limit (derper's tls_listener_{accepted,rejected}_connections).
  std::uint64_t listener_accepted = 0;
  std::uint64_t listener_rejected = 0;
  BootstrapDnsStats bootstrap_dns;
  std::array<std::uint64_t, 16> http_requests_by_route{};
  HistogramSnapshot queue_delay_seconds;
  HistogramSnapshot frames_per_write;
  HistogramSnapshot connection_seconds;
  std::vector<ShardLoad> shards;
  Registry::Totals registry;

  std::uint64_t dropped(DropReason r) const { return packets_dropped[static_cast<int>(r)]; }
  std::uint64_t closed(CloseReason r) const { return closes[static_cast<int>(r)]; }
};

class Server final : public RegistryListener {
 public:
  // Throws std::runtime_error with an operator-facing message when TLS material is unusable.
  Server(RelayConfig config, derp::PrivateKey key);
  ~Server() override;

  // Binds every listener (throws std::system_error naming the address when one fails) and
  // starts the shard threads.
  void Start();
  // Stops accepting, closes every connection, waits up to config.shutdown_grace, joins.
  void Stop();
  // Stop() has begun. Any thread.
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

  const RelayConfig& config() const { return config_; }
  std::chrono::steady_clock::time_point start_time() const { return start_time_; }
  const DebugAccess& debug_access() const { return debug_access_; }
  const derp::PrivateKey& private_key() const { return private_key_; }
  const derp::PublicKey& public_key() const { return public_key_; }
  Registry& registry() { return registry_; }
  // Client verification (relay/admission.h), asked by each connection's handshake.
  Admission& admission() { return *admission_; }
  const Admission& admission() const { return *admission_; }
  int shard_count() const { return config_.workers; }
  Shard& shard(int i) { return *shards_[static_cast<std::size_t>(i)]; }
  std::uint64_t NextConnId() { return next_conn_id_.fetch_add(1) + 1; }
  // The TLS context for a new connection on the main listener (null without TLS). Any thread;
  // a certificate reload swaps it for later calls, and each connection keeps the one it took.
  std::shared_ptr<asio::ssl::context> tls_context() const {
    return certs_ ? certs_->context() : nullptr;
  }
  // The SHA-256 of the leaf certificate DER in service when TLS is on ("sha256-raw:" pin), else
  // empty (also in letsencrypt mode before the first certificate).
  std::string cert_sha256() const { return certs_ ? certs_->cert_sha256() : std::string(); }
  // The certificate in service and its reloads or renewals (relay/cert_manager.h); null without
  // TLS.
  CertManager* certs() { return certs_.get(); }
  const CertManager* certs() const { return certs_.get(); }
  // Re-reads the certificate files now (SIGHUP). Any thread.
  void ReloadCertificates() {
    if (certs_) certs_->RequestReload();
  }

  std::uint16_t port() const { return port_; }
  std::uint16_t http_port() const { return http_port_; }
  std::uint16_t debug_port() const { return debug_port_; }
  std::uint16_t stun_port() const;
  StatsSnapshot Snapshot() const;
  const StunStats& stun_stats() const { return stun_stats_; }

  bool IsMeshKey(const std::optional<derp::MeshKey>& key) const;
  const std::optional<derp::MeshKey>& mesh_key() const { return mesh_key_; }
  // TLS settings for dialling mesh peers.
  net::TlsClientOptions mesh_tls_options() const;
  // Starts a mesh link to each entry (see ParseMeshPeer). Start() calls it with --mesh-with;
  // tests whose relays learn each other's ports only after starting call it themselves.
  void AddMeshPeers(const std::vector<std::string>& entries);
  // The mesh links, for metrics and tests (their stats are safe to read from any thread).
  const std::vector<std::unique_ptr<MeshLink>>& mesh_links() const { return mesh_links_; }

  // Counts an accept() failure (e.g. out of file descriptors).
  void NoteAcceptError() { accept_errors_.fetch_add(1, std::memory_order_relaxed); }
  // /bootstrap-dns answers from the names resolved in the background.
  BootstrapDns& bootstrap_dns() { return bootstrap_dns_; }

  // RegistryListener
  void BroadcastRoute(const derp::PublicKey& key, ConnRoute route) override;
  void NotifyDupState(int shard, std::uint64_t conn_id, bool dup, bool active) override;
  void BroadcastKeyGone(const derp::PublicKey& key) override;
  void NotifyWatcher(int shard, std::uint64_t watcher_conn_id, const derp::PublicKey& key,
                     const std::optional<derp::PeerPresent>& present) override;
  void CloseConnection(int shard, std::uint64_t conn_id) override;

 private:
  asio::awaitable<void> AcceptLoop(asio::ip::tcp::acceptor& acceptor, ListenerKind kind);
  std::unique_ptr<asio::ip::tcp::acceptor> Bind(const std::string& host, std::uint16_t port);
  // relay/server_limits.cc: the main listener's accept limit (closes `socket` when over it),
  // and the Restarting frame to every connection at shutdown, waiting until `give_up` at most
  // half-way for the clients to hang up.
  bool AdmitByAcceptLimit(asio::ip::tcp::socket& socket);
  void SendRestartingToAll(std::chrono::steady_clock::time_point give_up);

  RelayConfig config_;
  const std::chrono::steady_clock::time_point start_time_ = std::chrono::steady_clock::now();
  DebugAccess debug_access_;
  derp::PrivateKey private_key_;
  derp::PublicKey public_key_;
  std::optional<derp::MeshKey> mesh_key_;
  Registry registry_{*this};
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<CertManager> certs_;
  std::atomic<std::uint64_t> next_conn_id_{0};
  std::atomic<std::uint64_t> accept_errors_{0};
  // Used by the main listener's accept loop only (shard 0's thread).
  AcceptLimiter accept_limiter_{config_.accept_connection_limit, config_.accept_connection_burst};
  BootstrapDns bootstrap_dns_;
  std::atomic<bool> stopping_{false};

  std::unique_ptr<asio::ip::tcp::acceptor> main_acceptor_;
  std::unique_ptr<asio::ip::tcp::acceptor> http_acceptor_;
  std::unique_ptr<asio::ip::tcp::acceptor> debug_acceptor_;
  std::uint16_t debug_port_ = 0;
  std::vector<std::unique_ptr<MeshLink>> mesh_links_;
  std::uint16_t port_ = 0;
  std::uint16_t http_port_ = 0;
  std::size_t next_shard_ = 0;

  // STUN answers on its own threads, up to one per --workers (relay/stun_server.h says why not on
  // the shards' loops, and when threads after the first join in). The stats outlive it.
  StunStats stun_stats_;
  std::unique_ptr<StunServer> stun_;
  // Declared last, so destroyed first: its workers post to the shards' loops until then.
  std::unique_ptr<Admission> admission_;
};

}  // namespace derpkit::relay
