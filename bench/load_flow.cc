// Stamps, error notes and prebuilt frames of derp-load's flows (see load_flow.h). Called from
// whichever thread owns the flow.
#include "bench/load_flow.h"

#include <cstring>
#include <vector>

#include "lib/derp/messages.h"

namespace derpkit::bench {

void StoreStamp(std::byte* payload, std::int64_t send_ns, std::uint64_t seq) {
  std::memcpy(payload, &send_ns, 8);
  std::memcpy(payload + 8, &seq, 8);
}

std::int64_t LoadSendNs(const std::byte* payload) {
  std::int64_t v;
  std::memcpy(&v, payload, 8);
  return v;
}

std::uint64_t LoadSeq(const std::byte* payload) {
  std::uint64_t v;
  std::memcpy(&v, payload + 8, 8);
  return v;
}

void NoteError(std::string& first_error, const Window& w, const std::string& what,
               const std::error_code& ec) {
  if (first_error.empty() && !w.Late()) first_error = what + ": " + ec.message();
}

Bytes BuildFrames(const derp::PublicKey& dst, std::size_t size, std::size_t count) {
  Bytes payload(size);
  for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::byte>(i * 7 + 1);
  Bytes out;
  out.reserve(count * (kSendPayloadOffset + size));
  for (std::size_t i = 0; i < count; ++i) derp::AppendSendPacket(out, dst, payload);
  return out;
}

}  // namespace derpkit::bench
