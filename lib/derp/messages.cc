#include "lib/derp/messages.h"

#include <algorithm>
#include <cassert>
#include <limits>

#include "lib/derp/frame.h"

namespace derpkit::derp {
namespace {

PublicKey KeyAt(ByteSpan payload, std::size_t offset) {
  return PublicKey::FromSpan(payload.subspan(offset, kKeySize));
}

// Frame lengths are u32 on the wire; every caller-supplied size is far below that in practice.
std::uint32_t Length(std::size_t n) {
  assert(n <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(n);
}

void AppendKeyAndPacket(Bytes& out, FrameType type, const PublicKey& key, ByteSpan packet) {
  assert(packet.size() <= kMaxPacketSize);
  out.reserve(out.size() + kFrameHeaderSize + kKeySize + packet.size());
  AppendFrameHeader(out, type, Length(kKeySize + packet.size()));
  AppendBytes(out, key.bytes);
  AppendBytes(out, packet);
}

PingData FirstPingBytes(ByteSpan payload) {
  PingData data;
  std::copy_n(payload.begin(), kPingSize, data.begin());
  return data;
}

}  // namespace

std::string_view Describe(MessageError e) {
  switch (e) {
    case MessageError::kTooShort:
      return "frame payload is shorter than its type allows";
    case MessageError::kTooLong:
      return "frame payload is longer than its type allows";
    case MessageError::kBadMagic:
      return "ServerKey payload does not start with the DERP magic";
    case MessageError::kBadValue:
      return "frame payload holds a value the protocol does not allow";
  }
  return "unknown message error";
}

// ---- ServerKey ----

Expected<PublicKey, MessageError> ParseServerKey(ByteSpan payload) {
  if (payload.size() < kMagicSize + kKeySize) return Unexpected{MessageError::kTooShort};
  if (!std::equal(kMagic.begin(), kMagic.end(), payload.begin())) {
    return Unexpected{MessageError::kBadMagic};
  }
  return KeyAt(payload, kMagicSize);
}

void AppendServerKey(Bytes& out, const PublicKey& server) {
  AppendFrameHeader(out, FrameType::kServerKey, kMagicSize + kKeySize);
  AppendBytes(out, kMagic);
  AppendBytes(out, server.bytes);
}

// ---- SendPacket / RecvPacket / ForwardPacket ----

Expected<SendPacketView, MessageError> ParseSendPacket(ByteSpan payload) {
  if (payload.size() < kKeySize) return Unexpected{MessageError::kTooShort};
  if (payload.size() > kKeySize + kMaxPacketSize) return Unexpected{MessageError::kTooLong};
  return SendPacketView{KeyAt(payload, 0), payload.subspan(kKeySize)};
}

void AppendSendPacket(Bytes& out, const PublicKey& dst, ByteSpan packet) {
  AppendKeyAndPacket(out, FrameType::kSendPacket, dst, packet);
}

Expected<RecvPacketView, MessageError> ParseRecvPacket(ByteSpan payload) {
  if (payload.size() < kKeySize) return Unexpected{MessageError::kTooShort};
  return RecvPacketView{KeyAt(payload, 0), payload.subspan(kKeySize)};
}

void AppendRecvPacket(Bytes& out, const PublicKey& src, ByteSpan packet) {
  AppendKeyAndPacket(out, FrameType::kRecvPacket, src, packet);
}

Expected<ForwardPacketView, MessageError> ParseForwardPacket(ByteSpan payload) {
  if (payload.size() < 2 * kKeySize) return Unexpected{MessageError::kTooShort};
  if (payload.size() > 2 * kKeySize + kMaxPacketSize) return Unexpected{MessageError::kTooLong};
  return ForwardPacketView{KeyAt(payload, 0), KeyAt(payload, kKeySize),
                           payload.subspan(2 * kKeySize)};
}

void AppendForwardPacket(Bytes& out, const PublicKey& src, const PublicKey& dst, ByteSpan packet) {
  assert(packet.size() <= kMaxPacketSize);
  out.reserve(out.size() + kFrameHeaderSize + 2 * kKeySize + packet.size());
  AppendFrameHeader(out, FrameType::kForwardPacket, Length(2 * kKeySize + packet.size()));
  AppendBytes(out, src.bytes);
  AppendBytes(out, dst.bytes);
  AppendBytes(out, packet);
}

// ---- PeerGone / PeerPresent ----

Expected<PeerGone, MessageError> ParsePeerGone(ByteSpan payload) {
  if (payload.size() < kKeySize) return Unexpected{MessageError::kTooShort};
  PeerGone gone{KeyAt(payload, 0), PeerGoneReason::kDisconnected};
  if (payload.size() > kKeySize) gone.reason = static_cast<PeerGoneReason>(payload[kKeySize]);
  return gone;
}

void AppendPeerGone(Bytes& out, const PublicKey& key, PeerGoneReason reason) {
  AppendFrameHeader(out, FrameType::kPeerGone, kKeySize + 1);
  AppendBytes(out, key.bytes);
  out.push_back(static_cast<std::byte>(reason));
}

namespace {
constexpr std::size_t kPeerPresentIpOffset = kKeySize;
constexpr std::size_t kPeerPresentPortOffset = kPeerPresentIpOffset + 16;
constexpr std::size_t kPeerPresentFlagsOffset = kPeerPresentPortOffset + 2;
constexpr std::size_t kPeerPresentSize = kPeerPresentFlagsOffset + 1;
static_assert(kPeerPresentSize == 51);
}  // namespace

Expected<PeerPresent, MessageError> ParsePeerPresent(ByteSpan payload) {
  if (payload.size() < kKeySize) return Unexpected{MessageError::kTooShort};
  if (payload.size() > kKeySize && payload.size() < kPeerPresentFlagsOffset) {
    return Unexpected{MessageError::kBadValue};  // a cut-off endpoint: no server writes this
  }
  PeerPresent peer;
  peer.key = KeyAt(payload, 0);
  if (payload.size() >= kPeerPresentFlagsOffset) {
    std::copy_n(payload.begin() + kPeerPresentIpOffset, peer.ip.size(), peer.ip.begin());
    peer.port = LoadBigEndian16(payload.subspan(kPeerPresentPortOffset, 2));
    peer.has_endpoint = true;
  }
  if (payload.size() >= kPeerPresentSize) {
    peer.flags = std::to_integer<std::uint8_t>(payload[kPeerPresentFlagsOffset]);
    peer.has_flags = true;
  }
  return peer;
}

void AppendPeerPresent(Bytes& out, const PeerPresent& peer) {
  AppendFrameHeader(out, FrameType::kPeerPresent, kPeerPresentSize);
  AppendBytes(out, peer.key.bytes);
  AppendBytes(out, peer.ip);
  AppendBigEndian16(out, peer.port);
  out.push_back(static_cast<std::byte>(peer.flags));
}

// ---- NotePreferred ----

Expected<bool, MessageError> ParseNotePreferred(ByteSpan payload) {
  if (payload.empty()) return Unexpected{MessageError::kTooShort};
  if (payload.size() > 1) return Unexpected{MessageError::kTooLong};
  return payload[0] != std::byte{0};
}

void AppendNotePreferred(Bytes& out, bool preferred) {
  AppendFrameHeader(out, FrameType::kNotePreferred, 1);
  out.push_back(preferred ? std::byte{1} : std::byte{0});
}

// ---- Ping / Pong ----

Expected<PingData, MessageError> ParsePing(ByteSpan payload) {
  if (payload.size() < kPingSize) return Unexpected{MessageError::kTooShort};
  if (payload.size() > kMaxPingPayloadSize) return Unexpected{MessageError::kTooLong};
  return FirstPingBytes(payload);
}

void AppendPing(Bytes& out, const PingData& data) {
  AppendFrameHeader(out, FrameType::kPing, kPingSize);
  AppendBytes(out, data);
}

Expected<PingData, MessageError> ParsePong(ByteSpan payload) {
  if (payload.size() < kPingSize) return Unexpected{MessageError::kTooShort};
  return FirstPingBytes(payload);
}

void AppendPong(Bytes& out, const PingData& data) {
  AppendFrameHeader(out, FrameType::kPong, kPingSize);
  AppendBytes(out, data);
}

// ---- KeepAlive / WatchConns / ClosePeer ----

void AppendKeepAlive(Bytes& out) { AppendFrameHeader(out, FrameType::kKeepAlive, 0); }

Expected<void, MessageError> ParseWatchConns(ByteSpan payload) {
  if (!payload.empty()) return Unexpected{MessageError::kTooLong};
  return {};
}

void AppendWatchConns(Bytes& out) { AppendFrameHeader(out, FrameType::kWatchConns, 0); }

Expected<PublicKey, MessageError> ParseClosePeer(ByteSpan payload) {
  if (payload.size() < kKeySize) return Unexpected{MessageError::kTooShort};
  if (payload.size() > kKeySize) return Unexpected{MessageError::kTooLong};
  return KeyAt(payload, 0);
}

void AppendClosePeer(Bytes& out, const PublicKey& key) {
  AppendFrameHeader(out, FrameType::kClosePeer, kKeySize);
  AppendBytes(out, key.bytes);
}

// ---- Health / Restarting ----

std::string ParseHealth(ByteSpan payload) { return std::string(AsText(payload)); }

void AppendHealth(Bytes& out, std::string_view problem) {
  AppendFrameHeader(out, FrameType::kHealth, Length(problem.size()));
  AppendBytes(out, AsBytes(problem));
}

Expected<Restarting, MessageError> ParseRestarting(ByteSpan payload) {
  if (payload.size() < 8) return Unexpected{MessageError::kTooShort};
  return Restarting{LoadBigEndian32(payload.subspan(0, 4)), LoadBigEndian32(payload.subspan(4, 4))};
}

void AppendRestarting(Bytes& out, const Restarting& restarting) {
  AppendFrameHeader(out, FrameType::kRestarting, 8);
  AppendBigEndian32(out, restarting.reconnect_in_ms);
  AppendBigEndian32(out, restarting.try_for_ms);
}

// ---- disco ----

bool IsDiscoPacket(ByteSpan packet) {
  return packet.size() >= kDiscoMinPacketSize &&
         std::equal(kDiscoMagic.begin(), kDiscoMagic.end(), packet.begin());
}

}  // namespace derpkit::derp
