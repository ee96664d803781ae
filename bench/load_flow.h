// What every derp-load flow shares: the run's time window, the stamp at the front of every
// payload, one flow's counters and prebuilt SendPacket frames.
//
// Threads: a Window is written by the main thread before any flow starts and only read after.
// A FlowStats is written by exactly one thread at a time: for a paced pair, its event loop; for a
// bursty pair, the sender thread writes the sent_* fields and the receiver's event loop the rest.
// main reads them after every loop and thread has been joined.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include "lib/derp/keys.h"
#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"

namespace derpkit::bench {

using Clock = std::chrono::steady_clock;

// Every payload starts with this stamp: send time (ns on the steady clock) || sequence number.
inline constexpr std::size_t kStampSize = 16;
// Where a SendPacket frame's payload starts: header, then the destination key.
inline constexpr std::size_t kSendPayloadOffset = derp::kFrameHeaderSize + derp::kKeySize;
// Receivers ask the kernel for this much per read.
inline constexpr std::size_t kReadBytes = 256 * 1024;
// The largest frame a receiver accepts (a DERP packet is at most 64 KiB).
inline constexpr std::uint32_t kMaxFramePayload = 1 << 20;

inline std::int64_t ToNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The phases of a run, as absolute times. Senders start at `start`; only [measure_start,
// measure_end) counts; receivers keep reading until `stop`.
struct Window {
  Clock::time_point start, measure_start, measure_end, stop;
  std::int64_t measure_start_ns = 0, measure_end_ns = 0;

  bool Measures(std::int64_t ns) const { return ns >= measure_start_ns && ns < measure_end_ns; }
  double seconds() const {
    return std::chrono::duration<double>(measure_end - measure_start).count();
  }
  bool Late() const { return Clock::now() >= stop; }
};

// The stamp is our own bytes, read back by this process only, so host byte order is fine.
void StoreStamp(std::byte* payload, std::int64_t send_ns, std::uint64_t seq);
std::int64_t LoadSendNs(const std::byte* payload);
std::uint64_t LoadSeq(const std::byte* payload);

// Counters of one pair (or the latency pair).
struct FlowStats {
  std::uint64_t sent_packets = 0;      // written during the window
  std::uint64_t sent_bytes = 0;        // payload bytes written during the window
  std::uint64_t arrived_packets = 0;   // stamped inside the window and read before `stop`
  std::uint64_t received_bytes = 0;    // payload bytes read during the window
  std::uint64_t received_packets = 0;  // packets read during the window
  std::uint64_t other_frames = 0;      // KeepAlive, PeerGone, ...: anything but RecvPacket
  std::uint64_t frames_written = 0;    // bursty sender: every frame, inside the window or not
  std::uint64_t write_calls = 0;       // bursty sender: write() / SSL_write calls for them
  std::string error;                   // first I/O error inside [start, stop)
  std::string send_error;              // the same for a bursty sender thread (its own field)
};

// Records the first error of a flow. Errors after `stop` are our own Close(); before it they are
// the relay's doing.
void NoteError(std::string& first_error, const Window& w, const std::string& what,
               const std::error_code& ec);

// Builds `count` SendPacket frames to `dst`, each with a `size`-byte payload (a fixed pattern
// after the stamp), back to back in one buffer.
Bytes BuildFrames(const derp::PublicKey& dst, std::size_t size, std::size_t count);

}  // namespace derpkit::bench
