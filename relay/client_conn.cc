#include "relay/client_conn.h"

#include <cstring>
#include <random>
#include <utility>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/net/gather.h"
#include "lib/net/log.h"
#include "relay/admission.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {

using Clock = std::chrono::steady_clock;

namespace {

// The handshake's first buffer: a ClientInfo is a few hundred bytes, and ReadMore grows it
// for a larger one. Thousands of connections may be handshaking at once.
constexpr std::size_t kInitialReadBuffer = 1024;
constexpr std::size_t kBusyReadBuffer = 32 * 1024;
// How often a long write asks the kernel whether the client is taking bytes (WriteIdleFor).
constexpr auto kProgressCheckEvery = std::chrono::milliseconds(50);
// A sender held this long reads one chunk and waits again (WaitWhilePaused).
constexpr auto kMaxPause = std::chrono::milliseconds(250);
// The largest frame a client may send us: a ClientInfo (the handshake) or a ForwardPacket.
constexpr std::size_t kMaxFrameBuffer = derp::kFrameHeaderSize + derp::kMaxClientInfoSize;
// A connection moves at most this often: two connections that each talk mostly to the other
// decide alike (Shard::ProposeMove), but a peer that changes its mind must not bounce it.
constexpr auto kMoveCooldown = std::chrono::seconds(10);
// A pair a shard sheds may have moved this recently: sheds are paced by the shard (one pair per
// few ticker periods), and a pair gathered when its relay was idle must be able to spread as
// soon as it gets busy. A pair that was itself shed waits kMoveCooldown: one pair that carries
// most of a busy thread's work makes the thread it goes to the busy one, and would be shed back.
constexpr auto kShedCooldown = std::chrono::seconds(1);
// A window of packets older than this says nothing about where a connection's peers are now.
constexpr auto kTallyFresh = std::chrono::seconds(2);
// After asking its peer to come over, a connection waits this long before it decides again: the
// peer may be on its way, and its route not yet updated (deciding on the old one could make the
// two swap shards).
constexpr auto kAskAgainAfter = std::chrono::milliseconds(500);

std::chrono::milliseconds KeepAliveJitter() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<int> dist(
      0, static_cast<int>(std::chrono::milliseconds(derp::kKeepAliveJitterMax).count()) - 1);
  return std::chrono::milliseconds(dist(rng));
}

}  // namespace

ClientConn::ClientConn(Shard& shard, std::unique_ptr<net::Stream> stream, ConnStart start)
    : shard_(&shard),
      stats_(&shard.stats()),
      stream_(std::move(stream)),
      start_(std::move(start)),
      id_(shard.server().NextConnId()),
      resume_(shard.io()),
      wake_(shard.io()) {}

ClientConn::~ClientConn() = default;

CloseReason ClientConn::Classify(const std::error_code& ec) const {
  if (close_reason_) return *close_reason_;
  if (ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated) {
    return CloseReason::kPeerClosed;
  }
  if (ec == asio::error::operation_aborted) return CloseReason::kServerShutdown;
  // WebSocket framing violations (net::WsStream) are the client's protocol error.
  if (ec == std::errc::protocol_error) return CloseReason::kBadFrame;
  return CloseReason::kIoError;
}

void ClientConn::Close(CloseReason reason) {
  if (!close_reason_) close_reason_ = reason;
  stream_->Close();
  wake_->cancel();
  resume_->cancel();
}

asio::awaitable<CloseReason> ClientConn::Serve() {
  // One coroutine for the connection's life on a shard, the first and after each move: an idle
  // connection is mostly its suspended frames, so there is no frame between this and ReadLoop.
  if (!loops_started_) {
    connected_at_ = Clock::now();
    shard_->Attach(*this);
    rbuf_ = std::move(start_.read_ahead);
    rend_ = rbuf_.size();
    if (rbuf_.size() < kInitialReadBuffer) rbuf_.resize(kInitialReadBuffer);

    CloseReason handshake = co_await Handshake();
    if (close_reason_) handshake = *close_reason_;
    if (!registered_ || close_reason_) co_return Finish(handshake);

    if (stream_->supports_try_read()) {
      // From here on the shard's buffer does the reading: keep only what the handshake read
      // past the ClientInfo.
      partial_.assign(rbuf_.begin() + static_cast<std::ptrdiff_t>(rstart_),
                      rbuf_.begin() + static_cast<std::ptrdiff_t>(rend_));
      Bytes().swap(rbuf_);
      rstart_ = rend_ = 0;
    }
    // Jitter only at production periods: it spreads keepalives of clients that connected
    // together. The shard's ticker sends them (KeepAliveDue).
    const auto base = shard_->server().config().keepalive_interval;
    keepalive_interval_ =
        std::chrono::duration_cast<Clock::duration>(base) +
        (base >= derp::kKeepAliveInterval ? Clock::duration(KeepAliveJitter()) : Clock::duration{});
    next_keepalive_ = Clock::now() + keepalive_interval_;
    shard_->ScheduleKeepAlive(id_, next_keepalive_);
    loops_started_ = true;
  } else if (shard_->server().stopping()) {
    // Arrived after a move: a shutdown that began while it was between shards did not see it.
    Close(CloseReason::kServerShutdown);
  }

  // Frames that came with the ClientInfo may be packets to ourselves or to peers that
  // registered just before: Shard::RoutePacket applies the routes queued so far first.
  asio::awaitable<std::optional<CloseReason>> reader =
      stream_->supports_try_read() ? ReadLoop() : ReadLoopWithOwnBuffer();
  // The writer runs beside the reader as a coroutine of its own (lighter than a parallel
  // group: an idle connection is mostly its suspended coroutines). The first loop to end
  // closes the stream, which ends the other; the connection lives until both have. (A
  // connection that has just arrived may have one already: a delivery woke it.)
  if (!writer_running_) StartWriter();
  const std::optional<CloseReason> read_end = co_await std::move(reader);
  // Leaving for another shard (not an end: leaving() says so); the reader saw the writer idle
  // and nothing queued (CanLeaveNow).
  if (!read_end) co_return CloseReason::kPeerClosed;
  CloseReason reason = *read_end;
  // The first loop to end decides the reason and closes the stream, which ends the writer.
  if (!close_reason_) close_reason_ = reason;
  stream_->Close();
  wake_->cancel();
  while (writer_running_) {
    resume_->expires_at(Clock::time_point::max());
    awaiting_writer_ = true;
    co_await resume_->async_wait(net::kAsTuple);
    awaiting_writer_ = false;
  }
  if (close_reason_) reason = *close_reason_;
  // The client hung up because we told it to. An OpenSSL client answers our FIN (no
  // close_notify follows Restarting) with a decode_error alert, which reads as kIoError.
  if (restarting_sent_ && (reason == CloseReason::kPeerClosed || reason == CloseReason::kIoError)) {
    reason = CloseReason::kServerShutdown;
  }
  co_return Finish(reason);
}

CloseReason ClientConn::Finish(CloseReason reason) {
  if (registered_) {
    shard_->server().registry().Unregister(key_, id_);
    stats_->connection_seconds.Observe(
        std::chrono::duration<double>(Clock::now() - connected_at_).count());
    stats_->current_connections.Add(-1);
    if (preferred_) stats_->home_connections.Add(-1);
    ResumePausedSenders();
    // Whatever was still queued will never be written.
    for (PacketQueue* q : {&disco_queue_, &data_queue_}) {
      while (!q->empty()) {
        Packet p = q->Pop();
        stats_->RecordDrop(DropReason::kGoneDisconnected,
                           p.disco ? PacketKind::kDisco : PacketKind::kOther, p.payload.size());
      }
    }
  }
  if (move_to_ >= 0) AbandonMove();
  shard_->Detach(*this);
  stream_->Close();
  stats_->RecordClose(reason);
  return reason;
}

bool ClientConn::MayMove(Clock::time_point now, Clock::duration cooldown) const {
  return shard_->server().shard_count() > 1 && shard_->server().config().move_connections &&
         loops_started_ && !close_reason_ && !restarting_queued_ && !restarting_sent_ &&
         !is_mesh_ && !watching_ && !dup_ && move_to_ < 0 && stream_->can_change_loop() &&
         (moved_at_ == Clock::time_point{} || now - moved_at_ >= cooldown);
}

bool ClientConn::CanLeaveNow() const {
  // Not a receiver that is holding senders back either: it is behind, and what is in flight to it
  // (mailboxes, then what the move holds) would land in its queue at once.
  return !close_reason_ && !writer_running_ && !write_in_flight_ && batch_ == nullptr &&
         !flush_queued_ && !HasPendingWrites() && pause_holds_ == 0 && paused_senders_.empty() &&
         !stream_->has_pending_output() && !stalled_reader_.watching() && !restarting_queued_ &&
         !restarting_sent_ && !shard_->server().stopping();
}

void ClientConn::ConsiderMovingToPeer() {
  const auto now = Clock::now();
  const auto peer = sent_to_.Dominant(now, kTallyFresh);
  if (!peer) return;
  if (peer->shard == shard_->index()) {
    ConsiderShedding(*peer, now);
    return;
  }
  if (!MayMove(now, kMoveCooldown)) return;
  if (asked_at_ != Clock::time_point{} && now - asked_at_ < kAskAgainAfter) return;
  if (!shard_->ProposeMove(*this, *peer)) asked_at_ = now;
}

void ClientConn::ConsiderShedding(PeerRef peer, Clock::time_point now) {
  const int to = shard_->shed_target();
  const auto shed_lately = [&](const ClientConn& c) {
    return c.shed_at_ != Clock::time_point{} && now - c.shed_at_ < kMoveCooldown;
  };
  if (to < 0 || !MayMove(now, kShedCooldown) || shed_lately(*this)) return;
  ClientConn* other = shard_->Find(peer.conn_id);
  if (other == nullptr || other == this || !other->MayMove(now, kShedCooldown) ||
      shed_lately(*other) || other->write_in_flight_ || !other->paused_senders_.empty() ||
      !other->TalksMostlyWith(id_, now)) {
    return;
  }
  shard_->NoteShed();
  shed_at_ = now;
  other->shed_at_ = now;
  CommitMove(to);  // the reader leaves after this chunk
  other->FollowTo(to);
}

bool ClientConn::TalksMostlyWith(std::uint64_t peer, Clock::time_point now) const {
  const auto from = received_from_.Dominant(now, kTallyFresh);
  if (!from || from->conn_id != peer) return false;
  const auto sent = sent_to_.Dominant(now, kTallyFresh);
  return !sent || sent->conn_id == peer;
}

void ClientConn::ConsiderMove(int to, std::uint64_t requester) {
  const auto now = Clock::now();
  if (to == shard_->index() || !MayMove(now, kMoveCooldown) || write_in_flight_ ||
      !paused_senders_.empty()) {
    return;
  }
  // Only for the peer it mostly hears from, and not away from one it mostly talks to.
  if (TalksMostlyWith(requester, now)) FollowTo(to);
}

void ClientConn::FollowTo(int to) {
  CommitMove(to);
  // The reader acts on it at its next turn; one that waits for the socket is woken (the wait
  // ends with operation_aborted; no write waits, so nothing else is cancelled).
  if (reader_in_socket_wait_) {
    std::error_code ignored;
    stream_->tcp().cancel(ignored);
  }
}

void ClientConn::CommitMove(int to) {
  move_to_ = to;
  CountMoveAsDone(+1);
}

void ClientConn::AbandonMove() {
  CountMoveAsDone(-1);
  move_to_ = -1;
}

void ClientConn::CountMoveAsDone(int sign) {
  shard_->server().shard(move_to_).AdjustLoad(sign);
  shard_->AdjustLoad(-sign);
}

void ClientConn::LeaveShard() {
  Shard& from = *shard_;
  leaving_ = true;
  from.Detach(*this, /*counted=*/false);
  from.NoteMovedAway(id_, move_to_);
  // This connection's packets routed in its last chunk leave for their shards before anything it
  // sends from the new one, so that a peer on the new shard gets them in order. After the
  // Detach: a full mailbox's pause for this reader then finds nobody (and its resume too).
  from.FlushOutboxNow();
  stats_->current_connections.Add(-1);
  if (preferred_) stats_->home_connections.Add(-1);
  resume_.reset();
  wake_.reset();
  stream_->LeaveLoop();
}

void ClientConn::ArriveOn(Shard& to) {
  shard_ = &to;
  stats_ = &to.stats();
  stream_->JoinLoop(to.io());
  resume_.emplace(to.io());
  wake_.emplace(to.io());
  to.Attach(*this, /*counted=*/false);
  stats_->current_connections.Add(1);
  if (preferred_) stats_->home_connections.Add(1);
  stats_->connections_moved_in.Add();
  to.ScheduleKeepAlive(id_, next_keepalive_);
  // PeerGone: the keys this client heard from are now looked up on this shard.
  for (const derp::PublicKey& src : heard_from_) to.AdoptReceiver(src, id_);
  leaving_ = false;
  move_to_ = -1;
  moved_at_ = Clock::now();
  sent_to_.Reset();
  received_from_.Reset();
  // Routes now name this shard; until every shard has applied them, the old one forwards.
  to.server().registry().Move(key_, id_, to.index());
}

asio::awaitable<std::error_code> ClientConn::ReadMore(std::size_t need) {
  // Make room: move unread bytes to the front, and grow only to what a valid frame needs.
  if (rstart_ > 0 && (rend_ == rstart_ || rbuf_.size() - rend_ < need)) {
    std::memmove(rbuf_.data(), rbuf_.data() + rstart_, rend_ - rstart_);
    rend_ -= rstart_;
    rstart_ = 0;
  }
  if (rbuf_.size() - rend_ < need) rbuf_.resize(std::min(kMaxFrameBuffer, rend_ + need));
  const std::size_t room = rbuf_.size() - rend_;
  auto r = co_await stream_->ReadSome(std::span(rbuf_).subspan(rend_));
  if (r.ec) co_return r.ec;
  rend_ += r.bytes;
  // A read that filled the buffer means the client is sending faster than we read: a larger
  // buffer turns many small reads into one (syscalls dominate the per-packet cost). Idle
  // clients never fill theirs and stay small. Not larger than about a send queue's worth of
  // full-size packets (32 x 1.4 KB): one read's packets for one receiver must fit its queue
  // before its writer gets a turn, or the batch itself causes queue_head drops.
  if (r.bytes == room && rbuf_.size() < kBusyReadBuffer) rbuf_.resize(kBusyReadBuffer);
  co_return std::error_code{};
}

asio::awaitable<CloseReason> ClientConn::Handshake() {
  const Server& server = shard_->server();
  // The deadline closes the socket rather than cancelling the read: that ends every pending
  // operation, TLS included, without relying on per-operation cancellation. It lives in this
  // frame, not Serve()'s, which stays for the connection's life.
  ShardTimer deadline(shard_->io(), server.config().handshake_timeout);
  deadline.async_wait([this](const std::error_code& ec) {
    if (!ec) Close(CloseReason::kHandshakeTimeout);
  });
  for (;;) {
    const ByteSpan buffered = std::span(rbuf_).subspan(rstart_, rend_ - rstart_);
    auto hdr = derp::ParseFrameHeader(buffered, derp::kMaxClientInfoSize);
    if (!hdr && hdr.error() == derp::FrameError::kTooLarge) {
      LOG_INFO("%s: handshake frame over %u bytes, closing", start_.remote.c_str(),
               derp::kMaxClientInfoSize);
      co_return CloseReason::kFrameTooLarge;
    }
    if (hdr && hdr->type != derp::FrameType::kClientInfo) {
      LOG_INFO("%s: first frame is %s, not ClientInfo; closing", start_.remote.c_str(),
               std::string(derp::FrameTypeName(hdr->type)).c_str());
      co_return CloseReason::kFrameBeforeHandshake;
    }
    if (hdr && buffered.size() >= derp::kFrameHeaderSize + hdr->length) {
      const ByteSpan payload = buffered.subspan(derp::kFrameHeaderSize, hdr->length);
      auto opened = derp::OpenClientInfo(payload, server.private_key());
      if (!opened) {
        LOG_INFO("%s: bad ClientInfo: %s", start_.remote.c_str(),
                 std::string(derp::Describe(opened.error())).c_str());
        co_return CloseReason::kBadClientInfo;
      }
      rstart_ += derp::kFrameHeaderSize + hdr->length;
      key_ = opened->client;
      can_ack_pings_ = opened->info.can_ack_pings;
      is_prober_ = opened->info.is_prober;
      is_mesh_ = server.IsMeshKey(opened->info.mesh_key);
      break;
    }
    const std::size_t need =
        hdr ? derp::kFrameHeaderSize + hdr->length - buffered.size() : derp::kFrameHeaderSize;
    if (auto ec = co_await ReadMore(need)) co_return Classify(ec);
  }

  // Client verification (relay/admission.h): after ClientInfo, before anything is registered or
  // ServerInfo is sent; mesh peers skip it, as in derper. A refused client just sees the close.
  Admission& admission = shard_->server().admission();
  if (!is_mesh_ && admission.enabled()) {
    const netaddr::IpAddress source = netaddr::IpAddress::V6(start_.remote_ip16);
    const Verdict verdict = co_await admission.Admit(key_, source, start_.remote);
    if (close_reason_) co_return *close_reason_;
    if (!verdict.admit) co_return CloseReason::kNotAdmitted;
  }

  // Register before ServerInfo leaves, as derper does: a client that has its ServerInfo can be
  // sent packets at once. The routes made here are queued for every shard before ServerInfo is
  // written, and a shard applies its queued routes before it routes a packet, so a packet sent
  // after this client's ServerInfo arrived finds it (Shard::PostRoute).
  registered_ = true;
  stats_->current_connections.Add(1);
  derp::PeerPresent presence;
  presence.key = key_;
  presence.ip = start_.remote_ip16;
  presence.port = start_.remote_port;
  presence.has_endpoint = true;
  presence.has_flags = true;
  if (is_mesh_) presence.flags |= derp::PeerPresentFlags::kIsMeshPeer;
  if (is_prober_) presence.flags |= derp::PeerPresentFlags::kIsProber;
  if (start_.not_ideal) presence.flags |= derp::PeerPresentFlags::kNotIdeal;
  if (presence.flags == 0) presence.flags = derp::PeerPresentFlags::kIsRegular;
  shard_->server().registry().Register(presence, shard_->index(), id_);

  Bytes out;
  derp::AppendServerInfo(out, server.private_key(), key_, derp::ServerInfo{}, derp::RandomNonce());
  const asio::const_buffer buf(out.data(), out.size());
  auto r = co_await stream_->WriteAll(std::span(&buf, 1));
  if (r.ec) co_return Classify(r.ec);

  LOG_DEBUG("%s: client %s connected (%s%s)", start_.remote.c_str(), key_.ShortString().c_str(),
            stream_->kind(), is_mesh_ ? ", mesh" : "");
  co_return CloseReason::kPeerClosed;  // not a close: the caller checks registered_
}

asio::awaitable<std::optional<CloseReason>> ClientConn::WaitWhilePaused() {
  while (pause_holds_ > 0) {
    if (Clock::now() >= pause_until_) {
      // Held this long: let one chunk through and wait again (a slow trickle, never a flood that
      // the holders' queues would have to drop).
      pause_until_ = Clock::now() + kMaxPause;
      break;
    }
    resume_->expires_at(pause_until_);
    reader_waiting_ = true;
    co_await resume_->async_wait(net::kAsTuple);
    reader_waiting_ = false;
    if (close_reason_) co_return *close_reason_;
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return CloseReason::kServerShutdown;
  }
  co_return std::nullopt;
}

void ClientConn::PauseReading() {
  if (close_reason_) return;
  if (pause_holds_++ == 0) {
    pause_until_ = Clock::now() + kMaxPause;
    stats_->sender_pauses.Add();
  }
}

void ClientConn::ResumeReading() {
  if (pause_holds_ == 0) return;  // its pause came after we closed and was not counted
  if (--pause_holds_ == 0 && reader_waiting_) resume_->cancel();
}

asio::awaitable<std::optional<CloseReason>> ClientConn::ReadLoop() {
  // Frames that came with the ClientInfo (a fast start) go first.
  if (!partial_.empty()) {
    std::size_t consumed = 0;
    const auto reason = RoutePass(partial_, consumed);
    if (reason) co_return reason;
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(consumed));
  }
  // After a read that filled its chunk the socket may hold more: read again after letting the
  // shard's other work run, without asking the reactor. After a short read the socket is empty.
  bool maybe_more = true;
  for (;;) {
    if (move_to_ >= 0) {
      // Committed to move (after a window of packets, or a peer asked): leave now if nothing is
      // in flight, else stay (the next window may try again).
      if (CanLeaveNow()) {
        // Off the shard before anything else runs on it: from here nobody finds this
        // connection until the new shard takes it in (the owner hands it over).
        LeaveShard();
        co_return std::nullopt;
      }
      AbandonMove();
    }
    if (pause_holds_ > 0) {
      auto ended = co_await WaitWhilePaused();
      if (ended) co_return ended;
    }
    if (move_to_ >= 0) {
      // A peer asked while we were paused: act on it before waiting for the socket.
      maybe_more = true;
      continue;
    }
    if (maybe_more) {
      co_await asio::post(shard_->io(), asio::use_awaitable);
    } else if (stream_->socket_readiness_suffices()) {
      // No structured binding here: GCC 12 mis-compiles one in a branch of a coroutine.
      std::error_code ec;
      // The read before this one was short or found nothing: the socket is empty, so the wait
      // needs no re-arming (lib/net/drained_wait.h).
      reader_in_socket_wait_ = true;
      co_await net::AsyncWaitReadableDrained(shard_->reactor(), stream_->tcp(),
                                             asio::redirect_error(asio::use_awaitable, ec));
      reader_in_socket_wait_ = false;
      if (WokenToMove(ec)) {
        maybe_more = true;  // the wait did not see the socket: read before waiting again
        continue;
      }
      if (ec) co_return Classify(ec);
    } else {
      reader_in_socket_wait_ = true;
      const std::error_code ec = co_await stream_->WaitReadable();
      reader_in_socket_wait_ = false;
      if (WokenToMove(ec)) {
        maybe_more = true;
        continue;
      }
      if (ec) co_return Classify(ec);
    }
    if (close_reason_) co_return *close_reason_;
    // The shard's buffer is ours until the next co_await: the unfinished frame first, then what
    // the socket has.
    const std::span<std::byte> buf = shard_->read_buffer();
    const std::size_t have = partial_.size();
    if (have > 0) std::memcpy(buf.data(), partial_.data(), have);
    const std::size_t chunk = std::min(kReadChunkSize, buf.size() - have);
    const net::IoResult r = stream_->TryRead(buf.subspan(have, chunk));
    if (r.ec == asio::error::would_block || r.ec == asio::error::try_again) {
      maybe_more = false;
      continue;
    }
    if (r.ec) co_return Classify(r.ec);
    maybe_more = r.bytes == chunk;
    std::size_t consumed = 0;
    const auto reason = RoutePass(ByteSpan(buf.data(), have + r.bytes), consumed);
    if (reason) co_return reason;
    const std::size_t left = have + r.bytes - consumed;
    partial_.assign(buf.data() + consumed, buf.data() + consumed + left);
    // A large unfinished frame (up to 64 KiB) must not stay allocated once it is done.
    if (partial_.empty() && partial_.capacity() > 4096) Bytes().swap(partial_);
  }
}

bool ClientConn::WokenToMove(const std::error_code& ec) const {
  return ec == asio::error::operation_aborted && move_to_ >= 0 && !close_reason_;
}

asio::awaitable<std::optional<CloseReason>> ClientConn::ReadLoopWithOwnBuffer() {
  for (;;) {
    std::size_t consumed = 0;
    const auto reason = RoutePass(ByteSpan(rbuf_.data() + rstart_, rend_ - rstart_), consumed);
    rstart_ += consumed;
    if (rstart_ == rend_) rstart_ = rend_ = 0;
    if (reason) co_return *reason;
    if (pause_holds_ > 0) {
      auto ended = co_await WaitWhilePaused();
      if (ended) co_return *ended;
    }
    std::size_t need = 1;
    const ByteSpan buffered = std::span(rbuf_).subspan(rstart_, rend_ - rstart_);
    if (skip_remaining_ == 0) {
      auto hdr = derp::ParseFrameHeader(buffered, UINT32_MAX);
      need = hdr ? derp::kFrameHeaderSize + hdr->length - buffered.size()
                 : derp::kFrameHeaderSize - buffered.size();
    }
    // Reading more than one frame at a time keeps syscalls per packet low under load.
    if (auto ec = co_await ReadMore(std::max<std::size_t>(need, 1))) co_return Classify(ec);
  }
}

std::optional<CloseReason> ClientConn::RoutePass(ByteSpan data, std::size_t& consumed) {
  const RoutingClock::Pass pass(shard_->routing_clock());
  auto reason = ProcessFrames(data, consumed);
  shard_->FlushOutbox(PacketSource{shard_->index(), id_});
  shard_->FlushWrites();
  return reason;
}

std::optional<CloseReason> ClientConn::ProcessFrames(ByteSpan data, std::size_t& consumed) {
  consumed = 0;
  for (;;) {
    ByteSpan buffered = data.subspan(consumed);
    if (skip_remaining_ > 0) {
      const std::size_t n = std::min<std::uint64_t>(skip_remaining_, buffered.size());
      consumed += n;
      skip_remaining_ -= n;
      if (skip_remaining_ > 0) break;
      continue;
    }
    auto hdr = derp::ParseFrameHeader(buffered, UINT32_MAX);
    if (!hdr) break;  // kShort: read more
    const auto type = hdr->type;
    if (dup_ && !active_) {
      // derper's policy: a duplicate that speaks (any frame, once its header is read) becomes
      // the active one.
      shard_->server().registry().NoteActivity(key_, id_);
      active_ = true;
    }
    const std::uint32_t max = derp::MaxServerPayloadSize(type, UINT32_MAX);
    if (max == UINT32_MAX) {
      // A type the relay does not act on (a Pong, a second ClientInfo, server->client and
      // unknown types): skip it, whatever its length, as derper does.
      stats_->unknown_frames.Add();
      consumed += derp::kFrameHeaderSize;
      skip_remaining_ = hdr->length;
      continue;
    }
    if (hdr->length > max) {
      LOG_INFO("%s: %s frame of %u bytes is over the limit of %u; closing", start_.remote.c_str(),
               std::string(derp::FrameTypeName(type)).c_str(), hdr->length, max);
      return CloseReason::kFrameTooLarge;
    }
    if (hdr->length < derp::MinServerPayloadSize(type)) {
      LOG_INFO("%s: %s frame of %u bytes is too short; closing", start_.remote.c_str(),
               std::string(derp::FrameTypeName(type)).c_str(), hdr->length);
      return CloseReason::kBadFrame;
    }
    if (buffered.size() < derp::kFrameHeaderSize + hdr->length) break;
    auto reason = HandleFrame(type, buffered.subspan(derp::kFrameHeaderSize, hdr->length));
    consumed += derp::kFrameHeaderSize + hdr->length;
    if (reason) return reason;
  }
  return std::nullopt;
}

std::optional<CloseReason> ClientConn::HandleFrame(derp::FrameType type, ByteSpan payload) {
  using derp::FrameType;
  switch (type) {
    case FrameType::kSendPacket:
      return HandleSendPacket(payload);
    case FrameType::kPing: {
      stats_->got_ping.Add();
      auto ping = derp::ParsePing(payload);
      if (!ping) return CloseReason::kBadFrame;
      // One pending pong at most; a ping while one is queued is ignored, as derper does.
      if (!pending_pong_) {
        pending_pong_ = *ping;
        Wake();
      }
      return std::nullopt;
    }
    case FrameType::kNotePreferred: {
      auto preferred = derp::ParseNotePreferred(payload);
      if (!preferred) return CloseReason::kBadFrame;
      HandleNotePreferred(*preferred);
      return std::nullopt;
    }
    case FrameType::kWatchConns:
    case FrameType::kClosePeer:
    case FrameType::kForwardPacket:
      if (!is_mesh_) {
        LOG_INFO("%s: %s from a client without the mesh key; closing", start_.remote.c_str(),
                 std::string(derp::FrameTypeName(type)).c_str());
        return CloseReason::kNotAllowed;
      }
      return HandleMeshFrame(type, payload);
    default:  // not reached: ProcessFrames skips the types MaxServerPayloadSize() leaves open
      return std::nullopt;
  }
}

std::optional<CloseReason> ClientConn::HandleSendPacket(ByteSpan payload) {
  auto send = derp::ParseSendPacket(payload);
  if (!send) return CloseReason::kBadFrame;
  const bool disco = derp::IsDiscoPacket(send->packet);
  stats_->packets_received.Add();
  stats_->bytes_received.Add(send->packet.size());
  ++traffic_.packets_in;
  traffic_.bytes_in += send->packet.size();
  stats_->packets_received_kind[disco ? 0 : 1].Add();
  Packet p;
  p.src = key_;
  p.disco = disco;
  p.payload = shard_->pool().Take(send->packet.size());
  std::memcpy(p.payload.data(), send->packet.data(), send->packet.size());
  shard_->RoutePacket(send->dst, std::move(p), *this);
  return std::nullopt;
}

std::optional<CloseReason> ClientConn::HandleMeshFrame(derp::FrameType type, ByteSpan payload) {
  Registry& registry = shard_->server().registry();
  switch (type) {
    case derp::FrameType::kWatchConns:
      if (!derp::ParseWatchConns(payload)) return CloseReason::kBadFrame;
      // The server's own key watching itself is a self-mesh: derper ignores it too.
      if (key_ != shard_->server().public_key() && !watching_) {
        watching_ = true;
        registry.AddWatcher(shard_->index(), id_);
      }
      return std::nullopt;
    case derp::FrameType::kClosePeer: {
      auto target = derp::ParseClosePeer(payload);
      if (!target) return CloseReason::kBadFrame;
      const std::size_t closed = registry.CloseKey(*target);
      LOG_INFO("%s: mesh peer closed %zu connection(s) of %s", start_.remote.c_str(), closed,
               target->ShortString().c_str());
      return std::nullopt;
    }
    case derp::FrameType::kForwardPacket: {
      auto fwd = derp::ParseForwardPacket(payload);
      if (!fwd) return CloseReason::kBadFrame;
      stats_->packets_forwarded_in.Add();
      Packet p;
      p.src = fwd->src;
      p.disco = derp::IsDiscoPacket(fwd->packet);
      p.payload = shard_->pool().Take(fwd->packet.size());
      std::memcpy(p.payload.data(), fwd->packet.data(), fwd->packet.size());
      shard_->RouteForwarded(fwd->dst, std::move(p), *this);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

void ClientConn::QueuePeerPresent(const derp::PeerPresent& present) {
  derp::AppendPeerPresent(control_, present);
  Wake();
}

std::chrono::milliseconds ClientConn::write_timeout() const {
  const RelayConfig& config = shard_->server().config();
  return is_mesh_ ? config.mesh_write_timeout : config.tcp_write_timeout;
}

void ClientConn::HandleNotePreferred(bool preferred) {
  if (preferred == preferred_) return;
  preferred_ = preferred;
  stats_->home_connections.Add(preferred ? 1 : -1);
  // Moves right after connecting are a client settling, not a move (derper: 5 s).
  if (Clock::now() - connected_at_ > std::chrono::seconds(5)) {
    (preferred ? stats_->home_moves_in : stats_->home_moves_out).Add();
  }
}

void ClientConn::Enqueue(Packet&& packet, PacketSource from) {
  const RelayConfig& config = shard_->server().config();
  const auto now = shard_->routing_clock().Now();
  packet.enqueued = now;
  if (from.conn_id != 0) received_from_.Count(from.shard, from.conn_id);
  if (packet.disco) {
    if (disco_queue_.size() >= static_cast<std::size_t>(config.send_queue_depth)) {
      Packet old = disco_queue_.Pop();
      stats_->RecordDrop(DropReason::kQueueHead, PacketKind::kDisco, old.payload.size());
      shard_->pool().Give(std::move(old.payload));
    }
    disco_queue_.Push(std::move(packet));
    Wake();
    return;
  }
  const auto limit = static_cast<std::size_t>(config.send_queue_bytes);
  while (!data_queue_.empty() && data_queue_.bytes() + packet.payload.size() > limit) {
    Packet old = data_queue_.Pop();
    stats_->RecordDrop(DropReason::kQueueHead, PacketKind::kOther, old.payload.size());
    shard_->pool().Give(std::move(old.payload));
  }
  data_queue_.Push(std::move(packet));
  Wake();
  // Over the high mark: the sender waits for us, unless we are not draining (then it would wait
  // for nothing, and we only lose our own packets).
  if (from.conn_id != 0 && QueuedBytes() > limit / 4 && !WriteStalled(now)) {
    // By place as well as id: a sender that moved to another shard is a new place to pause (the
    // pause sent to its old place found nobody, and so will the resume that matches it).
    for (const PacketSource& s : paused_senders_) {
      if (s.conn_id == from.conn_id && s.shard == from.shard) return;
    }
    paused_senders_.push_back(from);
    shard_->PauseSender(from);
  }
}

bool ClientConn::WriteIdleFor(Clock::time_point now, Clock::duration limit) {
  if (!write_in_flight_) return false;
  // The kernel is asked at most every kProgressCheckEvery (never during a write's first one).
  // Bytes acknowledged since the last look, or a first look, count as taken now.
  if (now - progress_checked_at_ >= kProgressCheckEvery) {
    progress_checked_at_ = now;
    if (const auto progress = ReadSendProgress(stream_->tcp().native_handle())) {
      if (write_acked_ != progress->acked_bytes) {
        write_acked_ = progress->acked_bytes;
        write_progress_at_ = now;
      }
    }  // the kernel does not say: the write's age decides
  }
  return now - write_progress_at_ > limit;
}

bool ClientConn::WriteStalled(Clock::time_point now) {
  return WriteIdleFor(now, shard_->server().config().stalled_write_after);
}

bool ClientConn::WriteOverdue(Clock::time_point now) {
  const auto timeout = write_timeout();
  return !close_reason_ && timeout.count() > 0 && WriteIdleFor(now, timeout);
}

void ClientConn::ReleaseSendersIfStalled(Clock::time_point now) {
  if (!paused_senders_.empty() && WriteStalled(now)) ResumePausedSenders();
}

void ClientConn::ResumePausedSenders() {
  for (const PacketSource& s : paused_senders_) shard_->ResumeSender(s);
  paused_senders_.clear();
}

void ClientConn::QueuePeerGone(const derp::PublicKey& peer, derp::PeerGoneReason reason) {
  if (reason == derp::PeerGoneReason::kNotHere) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - not_here_refill_).count();
    not_here_refill_ = now;
    not_here_tokens_ = std::min(3.0, not_here_tokens_ + elapsed);
    if (not_here_tokens_ < 1.0) return;
    not_here_tokens_ -= 1.0;
    stats_->peer_gone_not_here_frames.Add();
  } else {
    stats_->peer_gone_disconnected_frames.Add();
  }
  derp::AppendPeerGone(control_, peer, reason);
  Wake();
}

void ClientConn::SetDupState(bool dup, bool active) {
  dup_ = dup;
  active_ = active;
}

void ClientConn::Wake() {
  if (!loops_started_ || close_reason_ || restarting_sent_) return;
  if (writer_running_) {
    if (writer_waiting_) wake_->cancel();
  } else if (!flush_queued_) {
    // Written by FlushNow() once the current read chunk (or mailbox batch) has been routed, so
    // that everything it queued for us leaves in one write.
    flush_queued_ = true;
    shard_->QueueFlush(*this);
  }
}

bool ClientConn::HasPendingWrites() const {
  return !control_.empty() || pending_pong_ || !disco_queue_.empty() || !data_queue_.empty();
}

void ClientConn::StartWriter() {
  writer_running_ = true;
  asio::co_spawn(shard_->io(), WriteLoop(),
                 [this](const std::exception_ptr& e, std::optional<CloseReason> ended) {
                   writer_running_ = false;
                   if (e) ended = CloseReason::kIoError;
                   if (ended) {
                     EndConnection(*ended);
                   } else if (!close_reason_ && !restarting_sent_ && HasPendingWrites()) {
                     StartWriter();  // queued after the loop looked for the last time
                   }
                   if (awaiting_writer_) resume_->cancel();
                 });
}

std::optional<Clock::time_point> ClientConn::KeepAliveDue(Clock::time_point now) {
  if (!loops_started_ || close_reason_ || restarting_queued_ || restarting_sent_) {
    return std::nullopt;
  }
  if (now >= next_keepalive_) {
    derp::AppendKeepAlive(control_);
    stats_->keepalives_sent.Add();
    next_keepalive_ = now + keepalive_interval_;
    Wake();
  }
  return next_keepalive_;
}

void ClientConn::EndConnection(CloseReason reason) {
  // The first to end decides the reason; closing the stream ends the reader (and the writer).
  if (!close_reason_) close_reason_ = reason;
  stream_->Close();
  wake_->cancel();
  resume_->cancel();
}

void ClientConn::BuildBatch() {
  // Everything ready leaves in one gather write: disco packets (small and latency-sensitive),
  // then data, then control frames. Packets before control is the order derper's writer
  // produced in the captured sessions (a packet, then the pong of a later ping), and a
  // PeerGone then follows the last packet from that peer.
  batch_ = shard_->batches().Take();
  WriteBatch& b = *batch_;
  b.control.swap(control_);
  control_.clear();
  b.restarting = std::exchange(restarting_queued_, false);
  b.pong = pending_pong_.has_value();
  if (pending_pong_) {
    derp::AppendPong(b.control, *pending_pong_);
    pending_pong_.reset();
    stats_->sent_pong.Add();
  }
  while (!disco_queue_.empty()) b.packets.push_back(disco_queue_.Pop());
  while (!data_queue_.empty()) b.packets.push_back(data_queue_.Pop());
  b.headers.resize(b.packets.size());
  for (std::size_t i = 0; i < b.packets.size(); ++i) {
    const Packet& p = b.packets[i];
    auto& h = b.headers[i];
    derp::StoreFrameHeader(std::span(h).first<derp::kFrameHeaderSize>(),
                           derp::FrameType::kRecvPacket,
                           static_cast<std::uint32_t>(derp::kKeySize + p.payload.size()));
    std::memcpy(h.data() + derp::kFrameHeaderSize, p.src.bytes.data(), derp::kKeySize);
    b.iov.emplace_back(h.data(), h.size());
    b.iov.emplace_back(p.payload.data(), p.payload.size());
    b.payload_bytes += p.payload.size();
  }
  if (!b.control.empty()) b.iov.emplace_back(b.control.data(), b.control.size());
}

CloseReason ClientConn::FailBatch(const std::error_code& ec) {
  for (Packet& p : batch_->packets) {
    stats_->RecordDrop(DropReason::kWriteError, p.disco ? PacketKind::kDisco : PacketKind::kOther,
                       p.payload.size());
  }
  shard_->batches().Give(std::move(batch_));
  return Classify(ec);
}

std::optional<CloseReason> ClientConn::FinishBatch(bool& stop_writing) {
  WriteBatch& b = *batch_;
  stats_->packets_sent.Add(b.packets.size());
  stats_->bytes_sent.Add(b.payload_bytes);
  traffic_.packets_out += b.packets.size();
  traffic_.bytes_out += b.payload_bytes;
  const auto written = Clock::now();
  for (const Packet& p : b.packets) {
    stats_->queue_delay_seconds.Observe(
        std::chrono::duration<double>(written - p.enqueued).count());
  }
  stats_->frames_per_write.Observe(
      static_cast<double>(b.packets.size() + (b.control.empty() ? 0 : 1)));
  for (Packet& p : b.packets) shard_->pool().Give(std::move(p.payload));
  const bool restarting = b.restarting;
  const bool pong = b.pong;
  shard_->batches().Give(std::move(batch_));
  const auto limit = static_cast<std::size_t>(shard_->server().config().send_queue_bytes);
  if (!paused_senders_.empty() && QueuedBytes() < limit / 16) ResumePausedSenders();
  if (!HasPendingWrites()) {
    data_queue_.ReleaseIfEmpty();
    disco_queue_.ReleaseIfEmpty();
  }
  if (restarting) {
    // Nothing more is written. A FIN queues behind the data already written, where closing a
    // socket that has unread input would send a RST and could drop the frame. The reader runs
    // on until the client hangs up (kPeerClosed, counted as our shutdown) or the shutdown
    // closes what is left.
    restarting_sent_ = true;
    std::error_code ignored;
    stream_->tcp().shutdown(asio::socket_base::shutdown_send, ignored);
    stop_writing = true;
    return std::nullopt;
  }
  if (pong) stalled_reader_.AfterPongWrite(written);
  return PollStalledReader();
}

void ClientConn::FlushNow() {
  flush_queued_ = false;
  if (!loops_started_ || close_reason_ || restarting_sent_ || writer_running_) return;
  if (!HasPendingWrites()) return;
  // The Restarting frame goes through the writer, whose WriteAll returns only once the stream
  // has sent every byte: the FIN that follows must not overtake it.
  if (!stream_->supports_try_write() || restarting_queued_) {
    StartWriter();
    return;
  }
  // Right after the read that queued it, without a trip through the event loop: one sendmsg,
  // and the writer coroutine only when the socket has no room for all of it.
  BuildBatch();
  const net::IoResult r = stream_->TryWrite(std::span(batch_->iov).subspan(batch_->iov_done));
  if (r.ec && r.ec != asio::error::would_block && r.ec != asio::error::try_again) {
    EndConnection(FailBatch(r.ec));
    return;
  }
  net::ConsumeWritten(batch_->iov, batch_->iov_done, r.bytes);
  if (batch_->iov_done < batch_->iov.size()) {
    StartWriter();  // finishes this batch when the socket has room
    return;
  }
  bool stop_writing = false;
  if (auto reason = FinishBatch(stop_writing)) {
    EndConnection(*reason);
  } else if (stream_->has_pending_output() || (!stop_writing && stalled_reader_.watching())) {
    // The writer sends what the stream kept (a TLS record the socket did not take whole), or
    // watches the Pong until the client takes it (relay/stalled_reader.h).
    StartWriter();
  }
}

asio::awaitable<std::optional<CloseReason>> ClientConn::WriteLoop() {
  for (;;) {
    if (close_reason_) co_return close_reason_;
    if (batch_ == nullptr && HasPendingWrites()) BuildBatch();
    if (batch_ == nullptr && !stream_->has_pending_output()) {
      // Idle: the coroutine ends (an idle connection holds no writer) and Wake() starts a new
      // one. Only while a Pong waits to be taken does it stay, to look again
      // (relay/stalled_reader.h).
      if (!stalled_reader_.watching()) co_return std::nullopt;
      wake_->expires_at(stalled_reader_.next_check());
      writer_waiting_ = true;
      co_await wake_->async_wait(net::kAsTuple);
      writer_waiting_ = false;
      if (close_reason_) co_return close_reason_;
      if (auto stalled = PollStalledReader()) co_return stalled;
      continue;
    }
    // The rest of the batch, or no buffers at all to push out what a TryWrite left inside the
    // stream; either way under the write deadline (Shard's ticker, WriteOverdue), which counts
    // from here: the socket was full.
    std::span<const asio::const_buffer> rest;
    if (batch_ != nullptr) rest = std::span(batch_->iov).subspan(batch_->iov_done);
    write_progress_at_ = progress_checked_at_ = Clock::now();
    write_acked_.reset();
    write_in_flight_ = true;
    shard_->WatchWrite(*this);
    auto r = co_await stream_->WriteAll(rest);
    shard_->UnwatchWrite(*this);
    write_in_flight_ = false;
    if (batch_ == nullptr) {
      if (r.ec) co_return Classify(r.ec);
      continue;
    }
    if (r.ec) co_return FailBatch(r.ec);
    bool stop_writing = false;
    if (auto reason = FinishBatch(stop_writing)) co_return reason;
    if (stop_writing) co_return std::nullopt;
  }
}

std::optional<CloseReason> ClientConn::PollStalledReader() {
  if (!stalled_reader_.watching() ||
      !stalled_reader_.Poll(stream_->tcp().native_handle(), Clock::now(), write_timeout())) {
    return std::nullopt;
  }
  LOG_INFO("%s: client %s sent Pings but took none of our bytes for %lld ms; closing",
           start_.remote.c_str(), key_.ShortString().c_str(),
           static_cast<long long>(write_timeout().count()));
  stats_->write_timeouts.Add();
  return CloseReason::kWriteTimeout;
}

bool ClientConn::QueueRestarting(const derp::Restarting& restarting) {
  if (!registered_ || close_reason_ || restarting_queued_ || restarting_sent_) return false;
  derp::AppendRestarting(control_, restarting);
  restarting_queued_ = true;
  Wake();
  return true;
}

}  // namespace derpkit::relay
