// Fuzzes DERP framing and every frame parser. Input: one control byte, then a byte stream.
// The control byte picks the read size (1..64 bytes per read) and the reader's limit (100 bytes
// or 1 MiB). The stream is fed to FrameReader in reads of that size, and:
// - the frames it returns must be exactly those a one-shot walk with ParseFrameHeader finds;
// - each frame goes through the Parse function of its type; what parses and has a canonical form
//   (the current wire form, no ignored trailing bytes) must re-encode to the same bytes;
// - handshake frames are opened with fixed keys (they fail cleanly unless the fuzzer finds a box).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"

namespace {

using derpkit::Bytes;
using derpkit::ByteSpan;
using namespace derpkit::derp;  // NOLINT(google-build-using-namespace): test driver

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckSame(const Bytes& again, ByteSpan wire) {
  Check(again.size() == wire.size() && std::equal(again.begin(), again.end(), wire.begin()));
}

// Fixed handshake keys; public halves computed once, the fuzzer runs millions of frames.
const PrivateKey kServer = PrivateKey::FromRaw(std::array<std::byte, kKeySize>{std::byte{1}});
const PrivateKey kClient = PrivateKey::FromRaw(std::array<std::byte, kKeySize>{std::byte{2}});
const PublicKey kServerPublic = kServer.Public();

// Parses one frame by type; `wire` is the whole frame, header included.
void ParseFrame(FrameType type, ByteSpan payload, ByteSpan wire) {
  Bytes again;
  switch (type) {
    case FrameType::kServerKey:
      if (auto key = ParseServerKey(payload); key && payload.size() == kMagicSize + kKeySize) {
        AppendServerKey(again, *key);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kClientInfo:
      (void)OpenClientInfo(payload, kServer);
      break;
    case FrameType::kServerInfo:
      (void)OpenServerInfo(payload, kClient, kServerPublic);
      break;
    case FrameType::kSendPacket:
      if (auto v = ParseSendPacket(payload)) {
        Check(v->packet.size() <= kMaxPacketSize);
        AppendSendPacket(again, v->dst, v->packet);
        CheckSame(again, wire);
        (void)IsDiscoPacket(v->packet);
      }
      break;
    case FrameType::kRecvPacket:
      // Larger packets parse (the client has no per-type limit) but cannot be re-encoded.
      if (auto v = ParseRecvPacket(payload); v && v->packet.size() <= kMaxPacketSize) {
        AppendRecvPacket(again, v->src, v->packet);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kForwardPacket:
      if (auto v = ParseForwardPacket(payload)) {
        AppendForwardPacket(again, v->src, v->dst, v->packet);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kKeepAlive:
      if (payload.empty()) {
        AppendKeepAlive(again);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kNotePreferred:
      if (auto v = ParseNotePreferred(payload); v && payload[0] <= std::byte{1}) {
        AppendNotePreferred(again, *v);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kPeerGone:
      if (auto v = ParsePeerGone(payload); v && payload.size() == kKeySize + 1) {
        AppendPeerGone(again, v->key, v->reason);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kPeerPresent:
      if (auto v = ParsePeerPresent(payload)) {
        Check(v->has_endpoint == (payload.size() >= 50) && v->has_flags == (payload.size() >= 51));
        if (payload.size() == 51) {
          AppendPeerPresent(again, *v);
          CheckSame(again, wire);
        }
      }
      break;
    case FrameType::kWatchConns:
      if (ParseWatchConns(payload)) {
        AppendWatchConns(again);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kClosePeer:
      if (auto v = ParseClosePeer(payload)) {
        AppendClosePeer(again, *v);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kPing:
      if (auto v = ParsePing(payload); v && payload.size() == kPingSize) {
        AppendPing(again, *v);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kPong:
      if (auto v = ParsePong(payload); v && payload.size() == kPingSize) {
        AppendPong(again, *v);
        CheckSame(again, wire);
      }
      break;
    case FrameType::kHealth:
      AppendHealth(again, ParseHealth(payload));
      CheckSame(again, wire);
      break;
    case FrameType::kRestarting:
      if (auto v = ParseRestarting(payload); v && payload.size() == 8) {
        AppendRestarting(again, *v);
        CheckSame(again, wire);
      }
      break;
    default:
      Check(!IsKnownFrameType(type));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t read_size = (data[0] & 0x3f) + 1;
  const std::uint32_t max_length = (data[0] & 0x40) ? 100 : kMaxInfoSize;
  const ByteSpan stream = std::as_bytes(std::span(data + 1, size - 1));

  FrameReader reader(max_length);
  std::size_t fed = 0;
  std::size_t walked = 0;  // offset of the next frame in `stream`, found by a one-shot walk
  bool too_large = false;
  while (fed < stream.size() && !too_large) {
    auto room = reader.PrepareWrite(read_size);
    Check(!room.empty());  // every complete frame was drained below
    const std::size_t n = std::min({read_size, room.size(), stream.size() - fed});
    std::memcpy(room.data(), stream.data() + fed, n);
    reader.CommitWrite(n);
    fed += n;
    Check(reader.buffered() <= kFrameHeaderSize + max_length);
    for (;;) {
      auto frame = reader.Next();
      const auto header = ParseFrameHeader(stream.subspan(walked), max_length);
      if (!frame) {
        if (frame.error() == FrameReader::Status::kTooLarge) {
          Check(!header && header.error() == FrameError::kTooLarge);
          too_large = true;
        } else {
          // Either the header or its payload is still incomplete.
          Check(!header || walked + kFrameHeaderSize + header->length > fed);
        }
        break;
      }
      Check(header && header->type == frame->type && header->length == frame->payload.size());
      const ByteSpan wire = stream.subspan(walked, kFrameHeaderSize + header->length);
      Check(std::equal(frame->payload.begin(), frame->payload.end(),
                       wire.begin() + kFrameHeaderSize));
      Bytes header_again;
      AppendFrameHeader(header_again, header->type, header->length);
      Check(std::equal(header_again.begin(), header_again.end(), wire.begin()));
      ParseFrame(frame->type, frame->payload, wire);
      walked += wire.size();
    }
  }
  return 0;
}
