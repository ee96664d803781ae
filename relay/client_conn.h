// One DERP connection at the relay, from the first frame after the HTTP upgrade to the close:
//
//   Serve():  ServerKey was sent by the front door
//             -> ClientInfo under the handshake deadline -> ServerInfo
//             -> register (RAII) -> ReadLoop(), with WriteLoop() beside it while there is
//                something to write -> one CloseReason -> unregister
//
// ReadLoop parses frames and hands packets to the shard's router; WriteLoop drains the send
// queues, control frames and keepalives in batched writes.
//
// Reading: a stream that supports TryRead (TCP, TLS) is read only once it is readable, into the
// shard's one read buffer, at most kReadChunkSize per turn; the connection keeps only the tail
// of an unfinished frame. An idle connection therefore holds no read buffer. Other streams
// (WebSocket) read into a buffer of their own.
//
// Back-pressure instead of drops: Enqueue() never blocks. When a receiver has more than a quarter
// of --send-queue-bytes queued (or in a write), the connection that sent the packet is asked to
// pause: its ReadLoop stops reading after the current chunk, so TCP slows the sender, until the
// receiver is below a sixteenth. Pauses are counted holds, one per receiver (and one per full
// mailbox between shards), so one receiver draining does not release a sender another still
// holds. A sender held for kMaxPause reads one chunk and waits again: a hold that outlives its
// reason costs throughput, never packets. A receiver whose write has been stuck for
// RelayConfig::stalled_write_after, 200 ms (it takes nothing), releases its holds and pauses
// nobody: its queue runs up to the limit and then drops its oldest packets (derper's queue_head),
// so a client that does not read only loses its own packets. Disco packets never pause anyone;
// their queue is --send-queue-depth packets.
//
// Moving (with --workers above 1): a packet between connections on two shards costs a hand-over
// and a wake-up of the other thread, so a connection that sends (or receives) three quarters of
// a window of packets to (from) one peer on another shard joins it there: one of the two moves,
// to the shard relay/placement.h's MeetingShard chooses (the lower index while the threads are
// lightly loaded, the less busy one otherwise; Shard::ProposeMove), at most once per
// kMoveCooldown. A pair that talks within a shard moves to another, both members at once, when
// the shard sheds (ShedTarget: its thread is busy and another is not, or two threads are lightly
// loaded and a lower-index one can take it), at most once per kShedCooldown. A connection moves
// only between reads with nothing in flight (no write waiting, nothing queued, not paused); mesh
// peers, duplicates and streams that cannot change loops (WebSocket, TLS 1.2) stay. The reader then
// lets go of the old shard (LeaveShard) and Serve() returns with leaving() set; the owner
// (relay/conn_runner.h) hands the connection to the new shard, which calls ArriveOn() on its
// thread, and Serve() goes on from there.
//
// Thread affinity: everything runs on the owning shard's thread (the one shard_ names; between
// LeaveShard() and ArriveOn() nobody touches the connection).
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
#include "relay/packet_queue.h"
#include "relay/peer_tally.h"
#include "relay/stalled_reader.h"
#include "relay/stats.h"
#include "relay/write_batch.h"

namespace derpkit::relay {

class Shard;

// A timer bound to the shard's io_context by its concrete executor type: a fraction of the size
// of asio::steady_timer (whose any_io_executor is ~50 bytes), and every connection has two.
using ShardTimer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                              asio::wait_traits<std::chrono::steady_clock>,
                                              asio::io_context::executor_type>;

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

  // Runs the connection to its end and returns why it ended, or until it leaves for another
  // shard (leaving()); after ArriveOn() it runs it on from there. Never throws for network
  // errors.
  asio::awaitable<CloseReason> Serve();

  Shard& shard() const { return *shard_; }
  // Serve() returned because the connection moves to shard move_target(): it has let go of its
  // old shard (LeaveShard) and waits for the owner to hand it to the new one.
  bool leaving() const { return leaving_; }
  int move_target() const { return move_to_; }
  // On the new shard's thread: takes the connection in (table, timers, socket, routes).
  void ArriveOn(Shard& shard);
  // Called by Shard::RoutePacket with the route of each packet this connection sent.
  void NoteSentTo(int shard, std::uint64_t conn_id) {
    if (sent_to_.Count(shard, conn_id)) ConsiderMovingToPeer();
  }
  // Commits to moving to `to` (the shards' load() takes it as done; the reader leaves at its next
  // turn, or abandons the move when something is in flight then).
  void CommitMove(int to);
  // A connection on shard `to` that sends mostly to this one asks it to come over: it does when
  // what it received lately came mostly from `requester` and it can move now.
  void ConsiderMove(int to, std::uint64_t requester);

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

  // Queues a packet for this client (same shard only). Never blocks; may ask `from` to pause.
  void Enqueue(Packet&& packet, PacketSource from);
  // Back-pressure from a receiver: one hold each; reading stops after the current chunk while
  // any hold is left (one chunk per kMaxPause gets through).
  void PauseReading();
  void ResumeReading();
  // A receiver that takes nothing (its write stuck for RelayConfig::stalled_write_after) lets its
  // senders go.
  void ReleaseSendersIfStalled(std::chrono::steady_clock::time_point now);
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
  // Called by the shard's ticker: a write has waited on the socket while the client took
  // nothing for write_timeout().
  bool WriteOverdue(std::chrono::steady_clock::time_point now);
  // Called by the shard's ticker when this connection's KeepAlive may be due: queues one when it is
  // (derper: every 60 s). Returns when the next is due, or nothing once the connection sends no
  // more (closing, or restarting).
  std::optional<std::chrono::steady_clock::time_point> KeepAliveDue(
      std::chrono::steady_clock::time_point now);
  // Called by the shard after a read chunk or a mailbox batch was routed (Shard::FlushWrites):
  // writes what Wake() queued, at once and without waiting where the stream allows.
  void FlushNow();
  bool flush_queued() const { return flush_queued_; }

 private:
  asio::awaitable<CloseReason> Handshake();
  // Unregisters, drops what is queued, detaches: the end of Serve().
  CloseReason Finish(CloseReason reason);
  // ReadLoop for streams with TryRead (through the shard's buffer), and for the others.
  // Both return why the connection ended, or nullopt when it leaves for another shard (only
  // ReadLoop's streams can).
  asio::awaitable<std::optional<CloseReason>> ReadLoop();
  asio::awaitable<std::optional<CloseReason>> ReadLoopWithOwnBuffer();
  // Moving: whether this connection may move at all now (kind, state, cooldown), whether it can
  // leave right now (nothing in flight), and the step after a window of sent packets.
  // `cooldown`: since its last move (kMoveCooldown; a shed uses kShedCooldown).
  bool MayMove(std::chrono::steady_clock::time_point now,
               std::chrono::steady_clock::duration cooldown) const;
  bool CanLeaveNow() const;
  // The reader, once CanLeaveNow(): off the shard's tables, timers and loop.
  void LeaveShard();
  void ConsiderMovingToPeer();
  // `peer` (on this shard) is the one this connection mostly sends to: when the shard sheds a
  // pair now (Shard::shed_target) and both may move (neither was shed in the last
  // kMoveCooldown), both go.
  void ConsiderShedding(PeerRef peer, std::chrono::steady_clock::time_point now);
  // What this connection received lately came mostly from `peer`, and what it sent (if it sent)
  // went mostly to `peer`: moving it with `peer` splits no other pair.
  bool TalksMostlyWith(std::uint64_t peer, std::chrono::steady_clock::time_point now) const;
  // CommitMove, and a reader that waits for the socket is woken to act on it.
  void FollowTo(int to);
  void AbandonMove();
  // The shards' load() with the committed move counted as done (+1) or undone (-1).
  void CountMoveAsDone(int sign);
  // The reader's wait for the socket ended because ConsiderMove() cancelled it.
  bool WokenToMove(const std::error_code& ec) const;
  // Waits while a receiver asked this connection to pause; a reason when the connection ended.
  asio::awaitable<std::optional<CloseReason>> WaitWhilePaused();
  // The writer: a coroutine of its own that runs while there is something to write and ends
  // when idle (nullopt), or with the reason the connection must end. StartWriter() spawns it.
  asio::awaitable<std::optional<CloseReason>> WriteLoop();
  void StartWriter();
  void EndConnection(CloseReason reason);
  // A batch: everything pending, in batch_ (BuildBatch); written in one go by FlushNow() when the
  // socket takes it, else finished by the writer; then accounted (FinishBatch, which says when
  // the connection must end or, after a Restarting frame, that nothing more is written).
  void BuildBatch();
  CloseReason FailBatch(const std::error_code& ec);
  std::optional<CloseReason> FinishBatch(bool& stop_writing);
  // kWriteTimeout once the client has taken none of our bytes, a Pong among them, for the write
  // timeout (relay/stalled_reader.h).
  std::optional<CloseReason> PollStalledReader();
  // One routing pass over a read chunk: ProcessFrames under one RoutingClock::Pass, then the
  // shard's outbox and writes flushed.
  std::optional<CloseReason> RoutePass(ByteSpan data, std::size_t& consumed);
  // Parses the whole frames at the front of `data` and counts the bytes it used in `consumed`;
  // returns a reason when the connection must end.
  std::optional<CloseReason> ProcessFrames(ByteSpan data, std::size_t& consumed);
  std::optional<CloseReason> HandleFrame(derp::FrameType type, ByteSpan payload);
  std::optional<CloseReason> HandleSendPacket(ByteSpan payload);
  void HandleNotePreferred(bool preferred);
  std::optional<CloseReason> HandleMeshFrame(derp::FrameType type, ByteSpan payload);
  void Wake();
  bool HasPendingWrites() const;
  // Reads at least `need` more bytes than are buffered; compacts and grows the buffer as needed.
  asio::awaitable<std::error_code> ReadMore(std::size_t need);
  CloseReason Classify(const std::error_code& ec) const;

  // Bytes of other packets queued or in the write now in flight.
  std::size_t QueuedBytes() const {
    return data_queue_.bytes() + (batch_ != nullptr ? batch_->payload_bytes : 0);
  }
  // True when the write in flight has taken nothing for RelayConfig::stalled_write_after.
  bool WriteStalled(std::chrono::steady_clock::time_point now);
  // True when a write is in flight and the client has acknowledged none of our bytes for about
  // `limit` (up to kProgressCheckEvery more). A write that is merely long (a big batch to a slow
  // but steady reader) is not idle: the kernel is asked (TCP_INFO) at most every
  // kProgressCheckEvery while a write waits.
  bool WriteIdleFor(std::chrono::steady_clock::time_point now,
                    std::chrono::steady_clock::duration limit);
  // Lets every paused sender go on reading.
  void ResumePausedSenders();

  Shard* shard_;
  ShardStats* stats_;
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

  // Read side. rbuf_ serves the handshake and streams without TryRead; afterwards partial_ holds
  // the unfinished frame a read ended in (empty most of the time).
  Bytes rbuf_;
  std::size_t rstart_ = 0;
  std::size_t rend_ = 0;
  Bytes partial_;
  std::uint64_t skip_remaining_ = 0;  // bytes of an unknown frame still to discard
  int pause_holds_ = 0;               // receivers (and mailboxes) that asked us to stop reading
  std::chrono::steady_clock::time_point pause_until_{};
  // Timers of the shard's loop: re-made on the new one when the connection moves.
  std::optional<ShardTimer> resume_;
  bool reader_waiting_ = false;
  bool reader_in_socket_wait_ = false;  // ReadLoop waits for the socket to be readable
  bool writer_running_ = false;         // WriteLoop's coroutine has not ended yet
  bool awaiting_writer_ = false;        // Serve() waits on resume_ for it

  // Write side.
  PacketQueue disco_queue_;
  PacketQueue data_queue_;
  bool write_in_flight_ = false;              // the writer waits for the socket to take a write
  std::vector<PacketSource> paused_senders_;  // senders this receiver asked to pause
  Bytes control_;  // whole frames (PeerGone, Pong, KeepAlive) waiting to be written
  std::optional<derp::PingData> pending_pong_;
  StalledReaderCheck stalled_reader_;  // a Pong the client has not taken yet
  std::optional<ShardTimer> wake_;
  bool writer_waiting_ = false;
  bool loops_started_ = false;  // after the handshake; Wake() starts the writer from then on
  std::chrono::steady_clock::time_point next_keepalive_;
  std::chrono::steady_clock::duration keepalive_interval_{};
  // When the writer began to wait, or the last time the client was seen taking bytes since.
  std::chrono::steady_clock::time_point write_progress_at_{};
  std::chrono::steady_clock::time_point progress_checked_at_{};
  std::optional<std::uint64_t> write_acked_;  // tcpi_bytes_acked at the last look
  std::unique_ptr<WriteBatch> batch_;  // from the shard's pool while a batch is being written
  bool flush_queued_ = false;          // in the shard's list for FlushNow()

  // Duplicate-key state, pushed by the Registry.
  bool dup_ = false;
  bool active_ = true;

  // PeerGone bookkeeping.
  std::unordered_set<derp::PublicKey, derp::PublicKeyHash> heard_from_;
  derp::PublicKey last_src_{};
  double not_here_tokens_ = 3;  // token bucket: 1 per second, burst 3
  std::chrono::steady_clock::time_point not_here_refill_{};

  // Moving: the peers this connection sent to and received from lately, the shard it committed
  // to move to (-1: none), when it last moved and when it last asked its peer to.
  PeerTally sent_to_;
  PeerTally received_from_;
  int move_to_ = -1;
  bool leaving_ = false;
  std::chrono::steady_clock::time_point moved_at_{};
  std::chrono::steady_clock::time_point asked_at_{};  // when it last asked its peer over
  std::chrono::steady_clock::time_point shed_at_{};   // when its shard last shed it

  std::optional<CloseReason> close_reason_;
  Traffic traffic_;
  bool restarting_queued_ = false;  // a Restarting frame is in control_
  bool restarting_sent_ = false;    // it was written; the client hanging up is our shutdown
};

}  // namespace derpkit::relay
