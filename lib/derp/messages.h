// Codecs for the DERP frames after the handshake (layouts in protocol.h, rules in
// derp-protocol.md §7). Pure: bytes in, values out, and back.
//
// Every Parse* takes the PAYLOAD of a frame whose type the caller already dispatched on (the
// header is gone) and never allocates, except ParseHealth which returns a string. Views alias the
// payload and are valid as long as it is. Every Append* appends the WHOLE frame, header included,
// to `out`; Append* arguments are trusted (sizes asserted), Parse* input is not.
//
// Length rules follow the reading side of the reference implementation: where the Go client
// tolerates trailing bytes (ServerKey, PeerGone, PeerPresent, Pong, Restarting) so do we; where
// the Go server demands an exact size (NotePreferred, WatchConns, ClosePeer) so do we.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"
#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::derp {

enum class MessageError {
  kTooShort,  // payload shorter than the frame type's minimum
  kTooLong,   // payload longer than the frame type's maximum
  kBadMagic,  // ServerKey without the "DERP🔑" magic
  kBadValue,  // a field holds a value the spec does not allow
};
std::string_view Describe(MessageError e);

// ServerKey (0x01): magic[8] || key32 [|| ignored]. kTooShort below 40, kBadMagic.
Expected<PublicKey, MessageError> ParseServerKey(ByteSpan payload);
void AppendServerKey(Bytes& out, const PublicKey& server);

// SendPacket (0x04): dst key32 || packet. kTooShort below 32, kTooLong above 32 + 65536.
struct SendPacketView {
  PublicKey dst;
  ByteSpan packet;  // aliases the payload
};
Expected<SendPacketView, MessageError> ParseSendPacket(ByteSpan payload);
// `packet` is at most kMaxPacketSize bytes (asserted).
void AppendSendPacket(Bytes& out, const PublicKey& dst, ByteSpan packet);

// RecvPacket (0x05): src key32 || packet. kTooShort below 32; no upper bound beyond the frame's.
struct RecvPacketView {
  PublicKey src;
  ByteSpan packet;  // aliases the payload
};
Expected<RecvPacketView, MessageError> ParseRecvPacket(ByteSpan payload);
// `packet` is at most kMaxPacketSize bytes (asserted).
void AppendRecvPacket(Bytes& out, const PublicKey& src, ByteSpan packet);

// ForwardPacket (0x0a): src key32 || dst key32 || packet. kTooShort below 64, kTooLong above
// 64 + 65536.
struct ForwardPacketView {
  PublicKey src;
  PublicKey dst;
  ByteSpan packet;  // aliases the payload
};
Expected<ForwardPacketView, MessageError> ParseForwardPacket(ByteSpan payload);
// `packet` is at most kMaxPacketSize bytes (asserted).
void AppendForwardPacket(Bytes& out, const PublicKey& src, const PublicKey& dst, ByteSpan packet);

// PeerGone (0x08): key32 [|| reason u8 [|| ignored]]. 32 bytes (pre-v1.40 servers) means
// kDisconnected; a reason value without an enumerator is kept as its raw value. kTooShort below
// 32.
struct PeerGone {
  PublicKey key;
  PeerGoneReason reason = PeerGoneReason::kDisconnected;
};
Expected<PeerGone, MessageError> ParsePeerGone(ByteSpan payload);
// Always writes the current 33-byte form.
void AppendPeerGone(Bytes& out, const PublicKey& key, PeerGoneReason reason);
inline void AppendPeerGone(Bytes& out, const PeerGone& gone) {
  AppendPeerGone(out, gone.key, gone.reason);
}

// PeerPresent (0x09): key32 [|| ip[16] || port u16 [|| flags u8 [|| ignored]]]. Accepts the
// three forms servers have sent: 32 bytes = key only (before v1.48; v1.36.2 in the captures),
// 50 = key + endpoint (before v1.70), 51 = all fields; bytes beyond 51 are ignored.
// kTooShort below 32; kBadValue for 33..49 bytes, a cut-off endpoint that no server version
// writes (the Go client would silently read those as key-only).
struct PeerPresent {
  PublicKey key;
  std::array<std::byte, 16> ip{};  // as on the wire: IPv4 peers as ::ffff:a.b.c.d
  std::uint16_t port = 0;
  std::uint8_t flags = 0;  // PeerPresentFlags bits
  bool has_endpoint = false;
  bool has_flags = false;
};
Expected<PeerPresent, MessageError> ParsePeerPresent(ByteSpan payload);
// Always writes the current 51-byte form (ip, port and flags as given, whatever has_* say).
void AppendPeerPresent(Bytes& out, const PeerPresent& peer);

// NotePreferred (0x07): u8, non-zero = preferred (as the Go server reads it). Exactly 1 byte:
// kTooShort for 0, kTooLong for more.
Expected<bool, MessageError> ParseNotePreferred(ByteSpan payload);
void AppendNotePreferred(Bytes& out, bool preferred);

// Ping (0x12) / Pong (0x13): data[8].
using PingData = std::array<std::byte, kPingSize>;
// Returns the first 8 bytes of a Ping. kTooShort below 8, kTooLong above 1000 (the server's
// limits; a client receiving a longer server Ping may treat kTooLong as it likes).
Expected<PingData, MessageError> ParsePing(ByteSpan payload);
void AppendPing(Bytes& out, const PingData& data);
// Returns the first 8 bytes of a Pong. kTooShort below 8; trailing bytes ignored.
Expected<PingData, MessageError> ParsePong(ByteSpan payload);
void AppendPong(Bytes& out, const PingData& data);

// KeepAlive (0x06): empty. Receivers ignore any payload, so there is nothing to parse.
void AppendKeepAlive(Bytes& out);

// WatchConns (0x10): empty. kTooLong for any payload.
Expected<void, MessageError> ParseWatchConns(ByteSpan payload);
void AppendWatchConns(Bytes& out);

// ClosePeer (0x11): key32. Exactly 32 bytes: kTooShort / kTooLong otherwise.
Expected<PublicKey, MessageError> ParseClosePeer(ByteSpan payload);
void AppendClosePeer(Bytes& out, const PublicKey& key);

// Health (0x14): the whole payload is the problem text ("" = healthy). Never fails; the bytes
// are returned as given (UTF-8 is not validated; escape before displaying).
std::string ParseHealth(ByteSpan payload);
void AppendHealth(Bytes& out, std::string_view problem);

// Restarting (0x15): reconnect_in_ms u32 || try_for_ms u32 [|| ignored]. kTooShort below 8.
struct Restarting {
  std::uint32_t reconnect_in_ms = 0;  // wait this long before reconnecting
  std::uint32_t try_for_ms = 0;       // then keep retrying this long before giving up

  std::chrono::milliseconds reconnect_in() const {
    return std::chrono::milliseconds{reconnect_in_ms};
  }
  std::chrono::milliseconds try_for() const { return std::chrono::milliseconds{try_for_ms}; }
};
Expected<Restarting, MessageError> ParseRestarting(ByteSpan payload);
void AppendRestarting(Bytes& out, const Restarting& restarting);

// Returns whether a relayed packet is a disco message: at least kDiscoMinPacketSize bytes,
// starting with kDiscoMagic. The server queues those separately (spec §8.2).
bool IsDiscoPacket(ByteSpan packet);

}  // namespace derpkit::derp
