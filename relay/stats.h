// Counters of one shard. Each shard bumps only its own (relaxed load+store, no locked
// instruction), and readers on other threads sum the shards' values at scrape time, so the
// per-packet path never touches a shared cache line.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace derpkit::relay {

// A counter written by one thread and read by any.
class ShardCounter {
 public:
  void Add(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// A gauge written by one thread and read by any; shards' values are summed.
class ShardGauge {
 public:
  void Add(std::int64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// A histogram written by one thread: fixed upper bounds, a count per bucket and a sum. Shards'
// histograms with the same bounds are summed at scrape time.
template <std::size_t N>
class ShardHistogram {
 public:
  explicit constexpr ShardHistogram(const std::array<double, N>& bounds) : bounds_(bounds) {}
  void Observe(double v) {
    std::size_t i = 0;
    while (i < N && v > bounds_[i]) ++i;
    buckets_[i].Add();
    sum_micro_.Add(static_cast<std::uint64_t>(v * 1e6));
  }
  const std::array<double, N>& bounds() const { return bounds_; }
  // Count in bucket i (i == N is +Inf), not cumulative.
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].value(); }
  double sum() const { return static_cast<double>(sum_micro_.value()) / 1e6; }

 private:
  std::array<double, N> bounds_;
  std::array<ShardCounter, N + 1> buckets_{};
  ShardCounter sum_micro_;  // sum in millionths of the unit: integer adds, no atomic double
};

// Seconds a packet waited in a send queue.
inline constexpr std::array<double, 12> kQueueDelayBounds = {
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1};
// Frames per socket write (batching).
inline constexpr std::array<double, 9> kFramesPerWriteBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};
// Seconds a DERP connection lasted.
inline constexpr std::array<double, 10> kConnDurationBounds = {1,    10,    60,    300,   900,
                                                               3600, 14400, 43200, 86400, 604800};

// Why a packet was not delivered: derper's reasons.
enum class DropReason : std::uint8_t {
  kUnknownDest,       // no connection, no mesh route
  kUnknownDestOnFwd,  // a mesh peer forwarded a packet for a key not here
  kGoneDisconnected,  // queued for a connection that then closed
  kGoneNotHere,       // reserved for derper parity
  kQueueHead,         // oldest packet pushed out of a full queue
  kQueueTail,         // new packet refused by a full queue
  kWriteError,        // the socket write failed
  kDupClient,         // the key has several connections and none is active
};
inline constexpr std::size_t kDropReasonCount = 8;
inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonLabel = {
    "unknown_dest", "unknown_dest_on_fwd", "gone_disconnected", "gone_not_here",
    "queue_head",   "queue_tail",          "write_error",       "dup_client"};

enum class PacketKind : std::uint8_t { kDisco, kOther };
inline constexpr std::size_t kPacketKindCount = 2;
inline constexpr std::array<std::string_view, kPacketKindCount> kPacketKindLabel = {"disco",
                                                                                    "other"};

// One T per (DropReason, PacketKind), indexed [reason][kind].
template <typename T>
using PerDropReasonAndKind = std::array<std::array<T, kPacketKindCount>, kDropReasonCount>;

// Why a connection ended. Every connection ends with exactly one.
enum class CloseReason : std::uint8_t {
  kPeerClosed,            // EOF or reset from the client
  kServerShutdown,        // the relay is stopping
  kHandshakeTimeout,      // TLS, HTTP head or ClientInfo did not arrive in time
  kTlsError,              // the TLS handshake failed
  kBadHttp,               // bytes that are not an HTTP/1.1 request head
  kHeadTooLarge,          // request head over the limit
  kHttpDone,              // an ordinary HTTP exchange finished
  kFrameTooLarge,         // a frame length over the limit for its type
  kBadFrame,              // a frame whose payload does not parse
  kBadClientInfo,         // the ClientInfo box does not open or its JSON is bad
  kFrameBeforeHandshake,  // the first frame was not ClientInfo
  kNotAllowed,            // a mesh-only frame from a client without the mesh key
  kWriteTimeout,          // a write did not finish within --tcp-write-timeout
  kIoError,               // any other socket error
  kClosedByMesh,          // ClosePeer from a mesh peer
  kBadProxyHeader,        // a PROXY protocol header was expected and missing or malformed
  kNotAdmitted,           // client verification refused the client (relay/admission.h)
};
inline constexpr std::size_t kCloseReasonCount = 17;
inline constexpr std::array<std::string_view, kCloseReasonCount> kCloseReasonLabel = {
    "peer_closed",
    "server_shutdown",
    "handshake_timeout",
    "tls_error",
    "bad_http",
    "head_too_large",
    "http_done",
    "frame_too_large",
    "bad_frame",
    "bad_client_info",
    "frame_before_handshake",
    "not_allowed",
    "write_timeout",
    "io_error",
    "closed_by_mesh",
    "bad_proxy_header",
    "not_admitted"};

struct ShardStats {
  ShardCounter accepts;            // TCP connections accepted
  ShardCounter derp_accepts;       // connections upgraded to DERP (derper's derp_accepts)
  ShardCounter websocket_accepts;  // of which over WebSocket
  ShardCounter http_requests;      // non-DERP HTTP requests served
  ShardGauge current_connections;  // DERP clients registered on this shard
  ShardGauge home_connections;
  ShardCounter home_moves_in;
  ShardCounter home_moves_out;
  ShardCounter packets_received;
  ShardCounter bytes_received;
  std::array<ShardCounter, kPacketKindCount> packets_received_kind;
  ShardCounter packets_sent;
  ShardCounter bytes_sent;
  // Drops by [reason][kind]: derper's derp_packets_dropped{reason,kind} and
  // derp_bytes_dropped{reason,kind}; totals by reason or by kind are sums at scrape time.
  PerDropReasonAndKind<ShardCounter> packets_dropped;
  PerDropReasonAndKind<ShardCounter> bytes_dropped;
  std::array<ShardCounter, kCloseReasonCount> closes;
  ShardCounter got_ping;
  ShardCounter sent_pong;
  ShardCounter peer_gone_disconnected_frames;
  ShardCounter peer_gone_not_here_frames;
  ShardCounter unknown_frames;
  ShardCounter write_timeouts;
  // Times a sender stopped being read because a receiver's queue was over its high mark.
  ShardCounter sender_pauses;
  ShardCounter keepalives_sent;
  ShardCounter cross_shard_packets;
  // Connections that moved to this shard to be with the peer they talk to.
  ShardCounter connections_moved_in;
  ShardCounter packets_forwarded_in;   // ForwardPacket frames from mesh peers
  ShardCounter packets_forwarded_out;  // ForwardPacket frames written to mesh peers

  // TLS handshakes that completed, by negotiated version (index: 0 = TLS 1.2, 1 = TLS 1.3), and
  // those that failed.
  std::array<ShardCounter, 2> tls_versions;
  // TLS 1.3 connections handed from OpenSSL to the relay's own record layer (Tls13Stream).
  ShardCounter tls13_record_layer;
  ShardCounter tls_handshake_failures;
  ShardCounter proxy_header_failures;
  // Plain HTTP requests by route (relay/http_routes.h RouteId).
  std::array<ShardCounter, 16> http_requests_by_route;

  ShardHistogram<kQueueDelayBounds.size()> queue_delay_seconds{kQueueDelayBounds};
  ShardHistogram<kFramesPerWriteBounds.size()> frames_per_write{kFramesPerWriteBounds};
  ShardHistogram<kConnDurationBounds.size()> connection_seconds{kConnDurationBounds};

  void RecordDrop(DropReason reason, PacketKind kind, std::size_t bytes) {
    const auto r = static_cast<std::size_t>(reason);
    const auto k = static_cast<std::size_t>(kind);
    packets_dropped[r][k].Add();
    bytes_dropped[r][k].Add(bytes);
  }
  void RecordClose(CloseReason reason) { closes[static_cast<std::size_t>(reason)].Add(); }
};

}  // namespace derpkit::relay
