// Fuzzes the RFC 6455 frame codec. Input: a stream of WebSocket frames (the captures after their
// HTTP head are valid inputs). Frames are walked with ParseWsFrameHeader, each as the side its own
// mask bit says (masked: server side reading a client), until an error or the end. Checks:
// - a parsed header re-encodes to exactly the header bytes it came from;
// - the other side refuses the same bytes with kMaskRequired / kMaskForbidden (or an error
//   that the parser reports before looking at the mask bit);
// - a lower limit yields kTooLarge exactly when the payload exceeds it;
// - unmasking a payload in two pieces equals unmasking it at once, and masking twice restores it;
// - a Close payload that parses re-encodes to the same payload.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lib/http/websocket.h"

namespace {

using derpkit::Bytes;
using derpkit::ByteSpan;
using namespace derpkit::http;  // NOLINT(google-build-using-namespace): test driver

constexpr std::uint64_t kLimit = 1 << 20;
constexpr std::uint64_t kLowLimit = 300;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Same(ByteSpan a, ByteSpan b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bool IsMaskError(WsError e) { return e == WsError::kMaskRequired || e == WsError::kMaskForbidden; }

// Errors the parser can only report after the mask bit passed its check.
bool IsDecidedAfterMask(WsError e) {
  return e == WsError::kShort || e == WsError::kNonMinimalLength || e == WsError::kTooLarge;
}

void CheckPayload(const WsFrameHeader& h, ByteSpan payload) {
  Bytes whole(payload.begin(), payload.end());
  if (h.masked) {
    ApplyWsMask(whole, h.mask, 0);
    Bytes pieces(payload.begin(), payload.end());
    const std::size_t split = pieces.size() / 3;
    ApplyWsMask(std::span(pieces).first(split), h.mask, 0);
    ApplyWsMask(std::span(pieces).subspan(split), h.mask, split);
    Check(pieces == whole);
    ApplyWsMask(pieces, h.mask, 0);
    Check(Same(pieces, payload));
  }
  if (h.opcode != WsOpcode::kClose || whole.size() != h.payload_size) return;
  const auto close = ParseWsClosePayload(whole);
  if (!close.has_value()) return;
  Bytes again;
  AppendWsClose(again, close->code, close->reason, nullptr);
  Check(Same(ByteSpan(again).subspan(2), whole));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteSpan in = std::as_bytes(std::span(data, size));
  while (!in.empty()) {
    const bool masked = in.size() >= 2 && (std::to_integer<unsigned>(in[1]) & 0x80) != 0;
    const auto h = ParseWsFrameHeader(in, kLimit, /*expect_masked=*/masked);
    const auto other = ParseWsFrameHeader(in, kLimit, !masked);
    Check(!other.has_value());
    if (!h.has_value()) {
      Check(IsMaskError(other.error()) ? IsDecidedAfterMask(h.error())
                                       : other.error() == h.error());
      return 0;
    }
    Check(IsMaskError(other.error()));
    Check(h->header_size >= 2 && h->header_size <= kWsMaxFrameHeaderSize &&
          h->header_size <= in.size() && h->masked == masked);

    Bytes again;
    AppendWsFrameHeader(again, h->fin, h->opcode, h->payload_size, h->masked ? &h->mask : nullptr);
    Check(Same(again, in.first(h->header_size)));

    const auto low = ParseWsFrameHeader(in, kLowLimit, masked);
    if (h->payload_size > kLowLimit) {
      Check(!low.has_value() && low.error() == WsError::kTooLarge);
    } else {
      Check(low.has_value() && low->header_size == h->header_size);
    }

    in = in.subspan(h->header_size);
    const std::size_t available =
        static_cast<std::size_t>(std::min<std::uint64_t>(h->payload_size, in.size()));
    CheckPayload(*h, in.first(available));
    in = in.subspan(available);
  }
  return 0;
}
