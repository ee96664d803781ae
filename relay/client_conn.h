// One DERP connection at the relay, from the first frame after the HTTP upgrade to the close:
//
//   Serve():  ServerKey was sent by the front door
//             -> ClientInfo under the handshake deadline -> ServerInfo
//             -> register (RAII) -> ReadLoop() || WriteLoop() -> one CloseReason -> unregister
//
// ReadLoop parses frames and hands packets to the shard's router; WriteLoop drains the send
// queues, control frames and keepalives in batched writes. Enqueue() never blocks: a full queue
// drops its oldest packet (derper's queue_head), so a client that does not read only loses its
// own packets.
//
// Thread affinity: everything runs on the owning shard's thread.
#pragma once

#include <array>
#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/derp/messages.h"
#include "lib/derp/protocol.h"
#include "lib/net/stream.h"
#include "relay/packet.h"
#include "relay/stalled_reader.h"
#include "relay/stats.h"

namespace derpkit::relay {

class Shard;

// What the front door learnt before handing the connection over.
struct ConnStart {
  std::string remote;  // "ip:port" for logs
  std::array<std::byte, 16> remote_ip16{};
  std::uint16_t remote_port = 0;
  bool not_ideal = false;  // the client sent Ideal-Node
  bool websocket = false;
  Bytes read_ahead;  // bytes after the HTTP head (fast start: the ClientInfo frame)
};

class ClientConn {
 public:
  ClientConn(Shard& shard, std::unique_ptr<net::Stream> stream, ConnStart start);
  ~ClientConn();
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Runs the connection to its end and returns why it ended. Never throws for network errors.
  asio::awaitable<CloseReason> Serve();

  std::uint64_t id() const { return id_; }
  const derp::PublicKey& key() const { return key_; }
  const std::string& remote() const { return start_.remote; }
  std::chrono::steady_clock::time_point connected_at() const { return connected_at_; }
  // Per-client traffic, for /debug/traffic (plain counters: only this shard writes or reads them).
  struct Traffic {
    std::uint64_t packets_in = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t packets_out = 0;
    std::uint64_t bytes_out = 0;
  };
  const Traffic& traffic() const { return traffic_; }

  // Queues a packet for this client (same shard only). Never blocks.
  void Enqueue(Packet&& packet);
  void QueuePeerGone(const derp::PublicKey& peer, derp::PeerGoneReason reason);
  // Tells this watcher (a mesh peer) that a key connected here.
  void QueuePeerPresent(const derp::PeerPresent& present);
  // Shutdown (derp-protocol.md §7.10): queues the Restarting frame after whatever is queued;
  // once it is written the relay sends FIN and waits for the client to hang up. False (and
  // nothing queued) before the handshake has finished or once closing.
  bool QueueRestarting(const derp::Restarting& restarting);
  bool is_mesh() const { return is_mesh_; }
  // Mesh peers get a longer write deadline for the initial PeerPresent flood (derper: 30 s).
  std::chrono::milliseconds write_timeout() const;
  void SetDupState(bool dup, bool active);
  // Remembers `src` as a peer this client heard from; false when it already was one.
  bool AddHeardFrom(const derp::PublicKey& src) { return heard_from_.insert(src).second; }
  bool ForgetHeardFrom(const derp::PublicKey& src) { return heard_from_.erase(src) > 0; }
  bool MaybeLastSource(const derp::PublicKey& src) const { return last_src_ == src; }
  void SetLastSource(const derp::PublicKey& src) { last_src_ = src; }
  // Closes the connection from outside (shutdown, ClosePeer, write deadline).
  void Close(CloseReason reason);
  // Called by the shard's write watchdog.
  std::chrono::steady_clock::time_point write_started() const { return write_started_; }

 private:
  asio::awaitable<CloseReason> Handshake();
  asio::awaitable<CloseReason> EndsConnection(asio::awaitable<CloseReason> loop);
  asio::awaitable<CloseReason> ReadLoop();
  asio::awaitable<CloseReason> WriteLoop();
  // kWriteTimeout once the client has taken none of our bytes, a Pong among them, for the write
  // timeout (relay/stalled_reader.h).
  std::optional<CloseReason> PollStalledReader();
  // After the Restarting frame: writes nothing more, waits until the connection is closed.
  asio::awaitable<CloseReason> WaitAfterRestarting();
  // Parses the frames buffered so far; returns a reason when the connection must end.
  std::optional<CloseReason> ProcessFrames();
  std::optional<CloseReason> HandleFrame(derp::FrameType type, ByteSpan payload);
  std::optional<CloseReason> HandleSendPacket(ByteSpan payload);
  void HandleNotePreferred(bool preferred);
  std::optional<CloseReason> HandleMeshFrame(derp::FrameType type, ByteSpan payload);
  void Wake();
  bool HasPendingWrites() const;
  // Reads at least `need` more bytes than are buffered; compacts and grows the buffer as needed.
  asio::awaitable<std::error_code> ReadMore(std::size_t need);
  CloseReason Classify(const std::error_code& ec) const;

  // A fixed-depth ring of packets. Its slots are allocated on the first push: most clients'
  // disco ring, and every idle client's rings, never need them.
  class PacketRing {
   public:
    explicit PacketRing(std::size_t depth) : depth_(depth) {}
    bool full() const { return size_ == depth_; }
    bool empty() const { return size_ == 0; }
    std::size_t size() const { return size_; }
    void Push(Packet&& p);
    Packet Pop();

   private:
    std::size_t depth_;
    std::vector<Packet> slots_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
  };

  Shard& shard_;
  ShardStats& stats_;
  std::unique_ptr<net::Stream> stream_;
  ConnStart start_;
  const std::uint64_t id_;
  derp::PublicKey key_;
  bool can_ack_pings_ = false;
  bool is_mesh_ = false;
  bool is_prober_ = false;
  bool registered_ = false;
  bool watching_ = false;
  bool preferred_ = false;
  std::chrono::steady_clock::time_point connected_at_;

  // Read side.
  Bytes rbuf_;
  std::size_t rstart_ = 0;
  std::size_t rend_ = 0;
  std::uint64_t skip_remaining_ = 0;  // bytes of an unknown frame still to discard

  // Write side.
  PacketRing disco_queue_;
  PacketRing data_queue_;
  Bytes control_;  // whole frames (PeerGone, Pong, KeepAlive) waiting to be written
  std::optional<derp::PingData> pending_pong_;
  StalledReaderCheck stalled_reader_;  // a Pong the client has not taken yet
  asio::steady_timer wake_;
  bool writer_waiting_ = false;
  std::chrono::steady_clock::time_point next_keepalive_;
  std::chrono::steady_clock::time_point write_started_{};
  std::vector<std::array<std::byte, derp::kFrameHeaderSize + derp::kKeySize>> headers_;
  std::vector<Packet> in_flight_;
  std::vector<asio::const_buffer> iov_;
  Bytes control_in_flight_;

  // Duplicate-key state, pushed by the Registry.
  bool dup_ = false;
  bool active_ = true;

  // PeerGone bookkeeping.
  std::unordered_set<derp::PublicKey, derp::PublicKeyHash> heard_from_;
  derp::PublicKey last_src_{};
  double not_here_tokens_ = 3;  // token bucket: 1 per second, burst 3
  std::chrono::steady_clock::time_point not_here_refill_{};

  std::optional<CloseReason> close_reason_;
  Traffic traffic_;
  bool restarting_queued_ = false;  // a Restarting frame is in control_
  bool restarting_sent_ = false;    // it was written; the client hanging up is our shutdown
};

}  // namespace derpkit::relay
