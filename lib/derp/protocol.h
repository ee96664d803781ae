// The DERP wire protocol: every frame type with its byte layout, the limits, and the connection
// flow. This header is the spec; the codecs in frame.h, messages.h and handshake.h refer to it.
// Source of truth: shared/docs/derp-protocol.md (read from Tailscale at de9ec7ee2) and the
// v1.36.2 captures in shared/testdata/derp/.
//
// Layering
// --------
//   TCP -> (TLS) -> one HTTP/1.1 request "GET /derp" with "Upgrade: DERP" (or a WebSocket
//   upgrade with subprotocol "derp", where each binary WebSocket message carries DERP bytes).
//   After the 101 (or immediately, with "Derp-Fast-Start: 1", where the server sends no HTTP
//   response at all) the byte stream carries DERP frames in both directions.
//
// Framing
// -------
//   offset 0  u8   frame type (FrameType; unknown types must be skipped, never rejected)
//   offset 1  u32  payload length N, big-endian, not counting these 5 bytes
//   offset 5  N    payload
//   The header allows N up to 2^32-1; each reader enforces its own limit BEFORE buffering the
//   payload: the server per frame type (MaxServerPayloadSize), the reference client 1 MiB for
//   every frame.
//
// Connection flow
// ---------------
//   server -> client  ServerKey   always first, even with fast start (the client then ignores it)
//   client -> server  ClientInfo  must be the client's first frame; the server checks, in order:
//                                 type 0x02, 56 <= length <= 256 KiB, the box opens, the JSON
//                                 parses (a present "meshKey" must be 64 hex digits). Any failure:
//                                 close the TCP connection, no error frame.
//                     [server admits and registers the client]
//   server -> client  ServerInfo
//   steady state, both directions in any order:
//     client -> server  SendPacket, NotePreferred, Ping, Pong;
//                       mesh peers only: WatchConns, ClosePeer, ForwardPacket
//     server -> client  RecvPacket, KeepAlive (every 60 s + per-connection jitter in [0, 5 s)),
//                       PeerGone, Pong, PeerPresent (watchers only);
//                       defined but never sent by the reference server: Ping, Health, Restarting
//   The client does not wait for ServerInfo before sending packets.
//
// Handshake crypto
// ----------------
//   Boxes are NaCl crypto_box (X25519 -> HSalsa20 -> XSalsa20-Poly1305), libsodium
//   crypto_box_easy: output = 16-byte Poly1305 tag || ciphertext. The 24-byte nonce is random per
//   box and travels in the clear right before it. Keys are 32-byte Curve25519 (see keys.h).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace derpkit::derp {

// One byte on the wire. Values outside the enumerators are legal (future extensions) and must be
// skipped by both sides; never switch on a FrameType without a default.
enum class FrameType : std::uint8_t {
  // S->C. magic[8] ("DERP🔑") || server public key32 || [reserved, ignored]. Length >= 40.
  kServerKey = 0x01,
  // C->S. client public key32 || nonce[24] || box(JSON ClientInfo). Length 56..262144.
  kClientInfo = 0x02,
  // S->C. nonce[24] || box(JSON ServerInfo). Length >= 24 (client limit 24 + 1 MiB).
  kServerInfo = 0x03,
  // C->S. dst key32 || packet. Length 32..32+65536.
  kSendPacket = 0x04,
  // S->C. src key32 || packet (protocol v2; v1 had no src key). Length >= 32.
  kRecvPacket = 0x05,
  // S->C. Empty. Liveness only; the client does not reply.
  kKeepAlive = 0x06,
  // C->S. u8: 1 = this server is my home region, 0 = it is not. Length exactly 1.
  kNotePreferred = 0x07,
  // S->C. key32 || reason u8 (PeerGoneReason). 33 bytes; servers before v1.40 send 32 (= reason
  // kDisconnected).
  kPeerGone = 0x08,
  // S->C, watchers only. key32 || ip[16] (IPv4 as ::ffff:a.b.c.d) || port u16 || flags u8
  // (PeerPresentFlags). 51 bytes; older servers send 32 (key only, before v1.48) or 50 (no
  // flags, before v1.70). Readers ignore bytes beyond 51.
  kPeerPresent = 0x09,
  // Mesh C->S. src key32 || dst key32 || packet. Length 64..64+65536. Delivered to the local
  // client dst as a RecvPacket from src; never forwarded again.
  kForwardPacket = 0x0a,
  // 0x0b..0x0f are unassigned.
  // Mesh C->S. Empty (exactly 0). Subscribes to PeerPresent/PeerGone for every client.
  kWatchConns = 0x10,
  // Mesh C->S. key32 (exactly 32). Closes every connection of that key.
  kClosePeer = 0x11,
  // Either direction. data[8]; the server accepts 8..1000 bytes and echoes the first 8.
  kPing = 0x12,
  // Either direction. data[8] of the Ping being answered.
  kPong = 0x13,
  // S->C. UTF-8 text describing a problem with this server; empty = healthy again.
  kHealth = 0x14,
  // S->C. reconnect_in_ms u32 || try_for_ms u32 (8 bytes; clients ignore shorter frames).
  kRestarting = 0x15,
  // Above 0x15: unassigned.
};

// Returns the spec name of `t` ("SendPacket"), or "unknown" for a value without an enumerator.
constexpr std::string_view FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kServerKey:
      return "ServerKey";
    case FrameType::kClientInfo:
      return "ClientInfo";
    case FrameType::kServerInfo:
      return "ServerInfo";
    case FrameType::kSendPacket:
      return "SendPacket";
    case FrameType::kRecvPacket:
      return "RecvPacket";
    case FrameType::kKeepAlive:
      return "KeepAlive";
    case FrameType::kNotePreferred:
      return "NotePreferred";
    case FrameType::kPeerGone:
      return "PeerGone";
    case FrameType::kPeerPresent:
      return "PeerPresent";
    case FrameType::kForwardPacket:
      return "ForwardPacket";
    case FrameType::kWatchConns:
      return "WatchConns";
    case FrameType::kClosePeer:
      return "ClosePeer";
    case FrameType::kPing:
      return "Ping";
    case FrameType::kPong:
      return "Pong";
    case FrameType::kHealth:
      return "Health";
    case FrameType::kRestarting:
      return "Restarting";
  }
  return "unknown";
}

// Returns whether `t` is one of the types above (false for unassigned values).
constexpr bool IsKnownFrameType(FrameType t) { return FrameTypeName(t) != "unknown"; }

// Frame header: type u8 + big-endian u32 payload length.
inline constexpr std::size_t kFrameHeaderSize = 1 + 4;
// Curve25519 public and private keys.
inline constexpr std::size_t kKeySize = 32;
// NaCl box nonce.
inline constexpr std::size_t kNonceSize = 24;
// Poly1305 tag in front of every box's ciphertext (libsodium crypto_box_MACBYTES).
inline constexpr std::size_t kBoxOverheadSize = 16;
// Length of kMagic at the start of the ServerKey payload.
inline constexpr std::size_t kMagicSize = 8;
// "DERP🔑": 44 45 52 50 f0 9f 94 91.
inline constexpr std::array<std::byte, kMagicSize> kMagic = {
    std::byte{0x44}, std::byte{0x45}, std::byte{0x52}, std::byte{0x50},
    std::byte{0xf0}, std::byte{0x9f}, std::byte{0x94}, std::byte{0x91}};

// Largest relayed packet (WireGuard or disco datagram), excluding keys and frame header.
inline constexpr std::uint32_t kMaxPacketSize = 64 << 10;
// Largest ClientInfo payload the server reads (key + nonce + box).
inline constexpr std::uint32_t kMaxClientInfoSize = 256 << 10;
// Largest boxed JSON the reference client accepts in ServerInfo, and its limit for any frame.
inline constexpr std::uint32_t kMaxInfoSize = 1 << 20;
// Smallest ClientInfo payload the server reads: key32 + nonce (the box must still open).
inline constexpr std::uint32_t kMinClientInfoSize = kKeySize + kNonceSize;
// The reference client accepts a ServerKey payload of 40..1024 bytes.
inline constexpr std::uint32_t kMaxServerKeySize = 1024;

// Sent as "version" in ClientInfo/ServerInfo and in the Derp-Version response header.
inline constexpr int kProtocolVersion = 2;

// Disco packets (magicsock path discovery) relayed inside Send/RecvPacket start with
// "TS💬" = 54 53 f0 9f 92 ac, then the sender's disco key32, then a nonce[24], then the box.
// The server queues them separately from bulk data (spec §8.2).
inline constexpr std::size_t kDiscoMagicSize = 6;
inline constexpr std::array<std::byte, kDiscoMagicSize> kDiscoMagic = {
    std::byte{0x54}, std::byte{0x53}, std::byte{0xf0},
    std::byte{0x9f}, std::byte{0x92}, std::byte{0xac}};
// magic(6) + disco key32 + nonce(24).
inline constexpr std::size_t kDiscoMinPacketSize = kDiscoMagicSize + kKeySize + kNonceSize;
static_assert(kDiscoMinPacketSize == 62);

// Ping/Pong data size, and the largest Ping payload the server accepts (extra bytes ignored).
inline constexpr std::size_t kPingSize = 8;
inline constexpr std::uint32_t kMaxPingPayloadSize = 1000;

// The server sends KeepAlive every kKeepAliveInterval plus a per-connection random jitter in
// [0, kKeepAliveJitterMax), fixed for the connection. The reference client times out reads after
// 120 s, so the period must stay well below that.
inline constexpr std::chrono::seconds kKeepAliveInterval{60};
inline constexpr std::chrono::seconds kKeepAliveJitterMax{5};

// Reason byte of PeerGone. Other values may appear on the wire and are kept as raw values.
// (0xf0 MeshConnBroke is invented locally by the Go mesh watcher and never on the wire.)
enum class PeerGoneReason : std::uint8_t {
  // The peer that sent you packets left the region.
  kDisconnected = 0,
  // You sent a disco packet to a key the server (region) does not know.
  kNotHere = 1,
};

// Flags byte of PeerPresent. A current server sets kIsMeshPeer/kIsProber/kNotIdeal as they apply
// and kIsRegular only when no other bit is set, so 0 means "old server, unknown".
namespace PeerPresentFlags {  // NOLINT(readability-identifier-naming): spec name
inline constexpr std::uint8_t kIsRegular = 0x01;
inline constexpr std::uint8_t kIsMeshPeer = 0x02;
inline constexpr std::uint8_t kIsProber = 0x04;
// The client connected with an Ideal-Node header naming another node.
inline constexpr std::uint8_t kNotIdeal = 0x08;
}  // namespace PeerPresentFlags

// Returns the largest payload the server's read loop (after the handshake) accepts for
// client->server frame type `t`; longer frames close the connection. Frame types the reference
// server does not act on there (a Pong, a second ClientInfo, server->client types, unassigned
// values) are read and discarded at any length, so for those this returns `unknown_cap`, the
// caller's own bound on what it is willing to skip. The handshake's ClientInfo is bounded by
// kMaxClientInfoSize.
constexpr std::uint32_t MaxServerPayloadSize(FrameType t, std::uint32_t unknown_cap) {
  switch (t) {
    case FrameType::kSendPacket:
      return kKeySize + kMaxPacketSize;
    case FrameType::kForwardPacket:
      return 2 * kKeySize + kMaxPacketSize;
    case FrameType::kNotePreferred:
      return 1;
    case FrameType::kWatchConns:
      return 0;
    case FrameType::kClosePeer:
      return kKeySize;
    case FrameType::kPing:
      return kMaxPingPayloadSize;
    default:
      return unknown_cap;
  }
}

// Returns the smallest payload the server accepts for client->server frame type `t` (0 for
// types it skips).
constexpr std::uint32_t MinServerPayloadSize(FrameType t) {
  switch (t) {
    case FrameType::kSendPacket:
      return kKeySize;
    case FrameType::kForwardPacket:
      return 2 * kKeySize;
    case FrameType::kNotePreferred:
      return 1;
    case FrameType::kWatchConns:
      return 0;
    case FrameType::kClosePeer:
      return kKeySize;
    case FrameType::kPing:
      return kPingSize;
    default:
      return 0;
  }
}

}  // namespace derpkit::derp
