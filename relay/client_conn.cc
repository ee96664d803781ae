#include "relay/client_conn.h"

#include <asio/experimental/awaitable_operators.hpp>
#include <cstring>
#include <random>
#include <utility>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/net/log.h"
#include "relay/admission.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kInitialReadBuffer = 8 * 1024;
constexpr std::size_t kBusyReadBuffer = 32 * 1024;
// The largest frame a client may send us: a ClientInfo (the handshake) or a ForwardPacket.
constexpr std::size_t kMaxFrameBuffer = derp::kFrameHeaderSize + derp::kMaxClientInfoSize;

std::chrono::milliseconds KeepAliveJitter() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<int> dist(
      0, static_cast<int>(std::chrono::milliseconds(derp::kKeepAliveJitterMax).count()) - 1);
  return std::chrono::milliseconds(dist(rng));
}

}  // namespace

void ClientConn::PacketRing::Push(Packet&& p) {
  if (slots_.empty()) slots_.resize(depth_);
  slots_[(head_ + size_) % depth_] = std::move(p);
  ++size_;
}

Packet ClientConn::PacketRing::Pop() {
  Packet p = std::move(slots_[head_]);
  head_ = (head_ + 1) % depth_;
  --size_;
  return p;
}

ClientConn::ClientConn(Shard& shard, std::unique_ptr<net::Stream> stream, ConnStart start)
    : shard_(shard),
      stats_(shard.stats()),
      stream_(std::move(stream)),
      start_(std::move(start)),
      id_(shard.server().NextConnId()),
      disco_queue_(static_cast<std::size_t>(shard.server().config().send_queue_depth)),
      data_queue_(static_cast<std::size_t>(shard.server().config().send_queue_depth)),
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
  wake_.cancel();
}

asio::awaitable<CloseReason> ClientConn::Serve() {
  connected_at_ = Clock::now();
  shard_.Attach(*this);
  rbuf_ = std::move(start_.read_ahead);
  rend_ = rbuf_.size();
  if (rbuf_.size() < kInitialReadBuffer) rbuf_.resize(kInitialReadBuffer);

  // The deadline closes the socket rather than cancelling the read: that ends every pending
  // operation, TLS included, without relying on per-operation cancellation.
  asio::steady_timer deadline(shard_.io(), shard_.server().config().handshake_timeout);
  deadline.async_wait([this](const std::error_code& ec) {
    if (!ec) Close(CloseReason::kHandshakeTimeout);
  });
  CloseReason reason = co_await Handshake();
  deadline.cancel();
  if (close_reason_) reason = *close_reason_;

  if (registered_ && !close_reason_) {
    auto ended = co_await (EndsConnection(ReadLoop()) || EndsConnection(WriteLoop()));
    reason = std::visit([](CloseReason r) { return r; }, ended);
    if (close_reason_) reason = *close_reason_;
    if (restarting_sent_ && reason == CloseReason::kPeerClosed) {
      reason = CloseReason::kServerShutdown;  // the client hung up because we told it to
    }
  }
  if (registered_) {
    shard_.server().registry().Unregister(key_, id_);
    stats_.connection_seconds.Observe(
        std::chrono::duration<double>(Clock::now() - connected_at_).count());
    stats_.current_connections.Add(-1);
    if (preferred_) stats_.home_connections.Add(-1);
    // Whatever was still queued will never be written.
    for (PacketRing* q : {&disco_queue_, &data_queue_}) {
      while (!q->empty()) {
        Packet p = q->Pop();
        stats_.RecordDrop(DropReason::kGoneDisconnected,
                          p.disco ? PacketKind::kDisco : PacketKind::kOther, p.payload.size());
      }
    }
  }
  shard_.Detach(*this);
  stream_->Close();
  stats_.RecordClose(reason);
  co_return reason;
}

asio::awaitable<CloseReason> ClientConn::EndsConnection(asio::awaitable<CloseReason> loop) {
  const CloseReason reason = co_await std::move(loop);
  // The first loop to end decides the reason and closes the stream, which ends the other loop.
  if (!close_reason_) close_reason_ = reason;
  stream_->Close();
  wake_.cancel();
  co_return reason;
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
  const Server& server = shard_.server();
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
  Admission& admission = shard_.server().admission();
  if (!is_mesh_ && admission.enabled()) {
    const netaddr::IpAddress source = netaddr::IpAddress::V6(start_.remote_ip16);
    const Verdict verdict = co_await admission.Admit(key_, source, start_.remote);
    if (close_reason_) co_return *close_reason_;
    if (!verdict.admit) co_return CloseReason::kNotAdmitted;
  }

  // Register before ServerInfo leaves, as derper does: a client that has its ServerInfo can be
  // sent packets at once, and the route updates posted here reach every shard's queue before
  // any packet that could follow from a peer that heard of this client.
  registered_ = true;
  stats_.current_connections.Add(1);
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
  shard_.server().registry().Register(presence, shard_.index(), id_);

  Bytes out;
  derp::AppendServerInfo(out, server.private_key(), key_, derp::ServerInfo{}, derp::RandomNonce());
  const asio::const_buffer buf(out.data(), out.size());
  auto r = co_await stream_->WriteAll(std::span(&buf, 1));
  if (r.ec) co_return Classify(r.ec);

  LOG_DEBUG("%s: client %s connected (%s%s)", start_.remote.c_str(), key_.ShortString().c_str(),
            stream_->kind(), is_mesh_ ? ", mesh" : "");
  co_return CloseReason::kPeerClosed;  // not a close: the caller checks registered_
}

asio::awaitable<CloseReason> ClientConn::ReadLoop() {
  for (;;) {
    if (auto reason = ProcessFrames()) {
      shard_.FlushOutbox();
      co_return *reason;
    }
    shard_.FlushOutbox();
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

std::optional<CloseReason> ClientConn::ProcessFrames() {
  for (;;) {
    ByteSpan buffered = std::span(rbuf_).subspan(rstart_, rend_ - rstart_);
    if (skip_remaining_ > 0) {
      const std::size_t n = std::min<std::uint64_t>(skip_remaining_, buffered.size());
      rstart_ += n;
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
      shard_.server().registry().NoteActivity(key_, id_);
      active_ = true;
    }
    const std::uint32_t max = derp::MaxServerPayloadSize(type, UINT32_MAX);
    if (max == UINT32_MAX) {
      // A type the relay does not act on (a Pong, a second ClientInfo, server->client and
      // unknown types): skip it, whatever its length, as derper does.
      stats_.unknown_frames.Add();
      rstart_ += derp::kFrameHeaderSize;
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
    rstart_ += derp::kFrameHeaderSize + hdr->length;
    if (reason) return reason;
  }
  if (rstart_ == rend_) rstart_ = rend_ = 0;
  return std::nullopt;
}

std::optional<CloseReason> ClientConn::HandleFrame(derp::FrameType type, ByteSpan payload) {
  using derp::FrameType;
  switch (type) {
    case FrameType::kSendPacket:
      return HandleSendPacket(payload);
    case FrameType::kPing: {
      stats_.got_ping.Add();
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
  stats_.packets_received.Add();
  stats_.bytes_received.Add(send->packet.size());
  ++traffic_.packets_in;
  traffic_.bytes_in += send->packet.size();
  stats_.packets_received_kind[disco ? 0 : 1].Add();
  Packet p;
  p.src = key_;
  p.disco = disco;
  p.payload = shard_.pool().Take(send->packet.size());
  std::memcpy(p.payload.data(), send->packet.data(), send->packet.size());
  shard_.RoutePacket(send->dst, std::move(p), *this);
  return std::nullopt;
}

std::optional<CloseReason> ClientConn::HandleMeshFrame(derp::FrameType type, ByteSpan payload) {
  Registry& registry = shard_.server().registry();
  switch (type) {
    case derp::FrameType::kWatchConns:
      if (!derp::ParseWatchConns(payload)) return CloseReason::kBadFrame;
      // The server's own key watching itself is a self-mesh: derper ignores it too.
      if (key_ != shard_.server().public_key() && !watching_) {
        watching_ = true;
        registry.AddWatcher(shard_.index(), id_);
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
      stats_.packets_forwarded_in.Add();
      Packet p;
      p.src = fwd->src;
      p.disco = derp::IsDiscoPacket(fwd->packet);
      p.payload = shard_.pool().Take(fwd->packet.size());
      std::memcpy(p.payload.data(), fwd->packet.data(), fwd->packet.size());
      shard_.RouteForwarded(fwd->dst, std::move(p), *this);
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
  const RelayConfig& config = shard_.server().config();
  return is_mesh_ ? config.mesh_write_timeout : config.tcp_write_timeout;
}

void ClientConn::HandleNotePreferred(bool preferred) {
  if (preferred == preferred_) return;
  preferred_ = preferred;
  stats_.home_connections.Add(preferred ? 1 : -1);
  // Moves right after connecting are a client settling, not a move (derper: 5 s).
  if (Clock::now() - connected_at_ > std::chrono::seconds(5)) {
    (preferred ? stats_.home_moves_in : stats_.home_moves_out).Add();
  }
}

void ClientConn::Enqueue(Packet&& packet) {
  PacketRing& q = packet.disco ? disco_queue_ : data_queue_;
  if (q.full()) {
    Packet old = q.Pop();
    stats_.RecordDrop(DropReason::kQueueHead, old.disco ? PacketKind::kDisco : PacketKind::kOther,
                      old.payload.size());
    shard_.pool().Give(std::move(old.payload));
  }
  packet.enqueued = Clock::now();
  q.Push(std::move(packet));
  Wake();
}

void ClientConn::QueuePeerGone(const derp::PublicKey& peer, derp::PeerGoneReason reason) {
  if (reason == derp::PeerGoneReason::kNotHere) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - not_here_refill_).count();
    not_here_refill_ = now;
    not_here_tokens_ = std::min(3.0, not_here_tokens_ + elapsed);
    if (not_here_tokens_ < 1.0) return;
    not_here_tokens_ -= 1.0;
    stats_.peer_gone_not_here_frames.Add();
  } else {
    stats_.peer_gone_disconnected_frames.Add();
  }
  derp::AppendPeerGone(control_, peer, reason);
  Wake();
}

void ClientConn::SetDupState(bool dup, bool active) {
  dup_ = dup;
  active_ = active;
}

void ClientConn::Wake() {
  if (writer_waiting_) wake_.cancel();
}

bool ClientConn::HasPendingWrites() const {
  return !control_.empty() || pending_pong_ || !disco_queue_.empty() || !data_queue_.empty();
}

asio::awaitable<CloseReason> ClientConn::WriteLoop() {
  // Jitter only at production periods: it spreads keepalives of clients that connected together.
  const auto base = shard_.server().config().keepalive_interval;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(base) +
      (base >= derp::kKeepAliveInterval ? Clock::duration(KeepAliveJitter()) : Clock::duration{});
  next_keepalive_ = Clock::now() + interval;
  for (;;) {
    if (close_reason_) co_return *close_reason_;
    if (!HasPendingWrites()) {
      // While a Pong waits to be taken, wake up to look again (relay/stalled_reader.h).
      auto wake_at = next_keepalive_;
      if (stalled_reader_.watching()) wake_at = std::min(wake_at, stalled_reader_.next_check());
      wake_.expires_at(wake_at);
      writer_waiting_ = true;
      auto [ec] = co_await wake_.async_wait(net::kAsTuple);
      writer_waiting_ = false;
      if (close_reason_) co_return *close_reason_;
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) co_return CloseReason::kServerShutdown;
      if (auto stalled = PollStalledReader()) co_return *stalled;
      if (!ec && Clock::now() >= next_keepalive_) {
        derp::AppendKeepAlive(control_);
        stats_.keepalives_sent.Add();
        next_keepalive_ = Clock::now() + interval;
      }
      continue;
    }

    // Everything ready leaves in one gather write: disco packets (small and latency-sensitive),
    // then data, then control frames. Packets before control is the order derper's writer
    // produced in the captured sessions (a packet, then the pong of a later ping), and a
    // PeerGone then follows the last packet from that peer.
    control_in_flight_.swap(control_);
    control_.clear();
    const bool restarting_in_flight = std::exchange(restarting_queued_, false);
    const bool writes_pong = pending_pong_.has_value();
    if (pending_pong_) {
      derp::AppendPong(control_in_flight_, *pending_pong_);
      pending_pong_.reset();
      stats_.sent_pong.Add();
    }
    iov_.clear();
    in_flight_.clear();
    while (!disco_queue_.empty()) in_flight_.push_back(disco_queue_.Pop());
    while (!data_queue_.empty()) in_flight_.push_back(data_queue_.Pop());
    headers_.resize(in_flight_.size());
    std::size_t payload_bytes = 0;
    for (std::size_t i = 0; i < in_flight_.size(); ++i) {
      const Packet& p = in_flight_[i];
      auto& h = headers_[i];
      derp::StoreFrameHeader(std::span(h).first<derp::kFrameHeaderSize>(),
                             derp::FrameType::kRecvPacket,
                             static_cast<std::uint32_t>(derp::kKeySize + p.payload.size()));
      std::memcpy(h.data() + derp::kFrameHeaderSize, p.src.bytes.data(), derp::kKeySize);
      iov_.emplace_back(h.data(), h.size());
      iov_.emplace_back(p.payload.data(), p.payload.size());
      payload_bytes += p.payload.size();
    }
    if (!control_in_flight_.empty()) {
      iov_.emplace_back(control_in_flight_.data(), control_in_flight_.size());
    }

    write_started_ = Clock::now();
    shard_.WatchWrite(*this);
    auto r = co_await stream_->WriteAll(iov_);
    shard_.UnwatchWrite(*this);
    if (r.ec) {
      for (Packet& p : in_flight_) {
        stats_.RecordDrop(DropReason::kWriteError,
                          p.disco ? PacketKind::kDisco : PacketKind::kOther, p.payload.size());
      }
      in_flight_.clear();
      co_return Classify(r.ec);
    }
    stats_.packets_sent.Add(in_flight_.size());
    stats_.bytes_sent.Add(payload_bytes);
    traffic_.packets_out += in_flight_.size();
    traffic_.bytes_out += payload_bytes;
    const auto written = Clock::now();
    for (const Packet& p : in_flight_) {
      stats_.queue_delay_seconds.Observe(
          std::chrono::duration<double>(written - p.enqueued).count());
    }
    stats_.frames_per_write.Observe(
        static_cast<double>(in_flight_.size() + (control_in_flight_.empty() ? 0 : 1)));
    for (Packet& p : in_flight_) shard_.pool().Give(std::move(p.payload));
    in_flight_.clear();
    control_in_flight_.clear();
    if (restarting_in_flight) {
      const CloseReason after = co_await WaitAfterRestarting();
      co_return after;
    }
    if (writes_pong) stalled_reader_.AfterPongWrite(written);
    if (auto stalled = PollStalledReader()) co_return *stalled;
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
  stats_.write_timeouts.Add();
  return CloseReason::kWriteTimeout;
}

bool ClientConn::QueueRestarting(const derp::Restarting& restarting) {
  if (!registered_ || close_reason_ || restarting_queued_ || restarting_sent_) return false;
  derp::AppendRestarting(control_, restarting);
  restarting_queued_ = true;
  Wake();
  return true;
}

asio::awaitable<CloseReason> ClientConn::WaitAfterRestarting() {
  restarting_sent_ = true;
  // A FIN queues behind the data already written, where closing a socket that has unread input
  // would send a RST and could drop the frame. The read side runs on until the client hangs up
  // (kPeerClosed, counted as our shutdown) or the shutdown closes what is left.
  std::error_code ignored;
  stream_->tcp().shutdown(asio::socket_base::shutdown_send, ignored);
  for (;;) {
    wake_.expires_at(Clock::time_point::max());
    writer_waiting_ = true;
    co_await wake_.async_wait(net::kAsTuple);
    writer_waiting_ = false;
    if (close_reason_) co_return *close_reason_;
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return CloseReason::kServerShutdown;
  }
}

}  // namespace derpkit::relay
