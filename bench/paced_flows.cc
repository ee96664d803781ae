// derp-load's throughput flows on event loops (see paced_flows.h). Every coroutine here runs on
// its pair's event-loop thread.
#include "bench/paced_flows.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <vector>

#include "lib/derp/frame.h"
#include "lib/net/as_tuple.h"

namespace derpkit::bench {
namespace {

using namespace std::chrono_literals;

// One write carries up to this many bytes of frames (unpaced, or a paced backlog).
constexpr std::size_t kBatchBytes = 64 * 1024;
// Paced senders wake this often and send what is due.
constexpr auto kPacingTick = 1ms;
// A paced sender that fell behind (the relay pushed back) forgives debt beyond this much, so it
// does not answer back-pressure with an unbounded burst.
constexpr auto kMaxPacingDebt = 20ms;

}  // namespace

asio::awaitable<void> SendLoop(net::Stream& stream, derp::PublicKey dst, std::size_t size,
                               double packets_per_second, bool write_per_frame, const Window& w,
                               FlowStats& st) {
  const std::size_t frame_size = kSendPayloadOffset + size;
  const std::size_t batch = std::max<std::size_t>(1, kBatchBytes / frame_size);
  Bytes frames = BuildFrames(dst, size, batch);
  asio::steady_timer timer(stream.tcp().get_executor());
  const double max_debt =
      std::max(1.0, packets_per_second * std::chrono::duration<double>(kMaxPacingDebt).count());
  double forgiven = 0;  // packets the token bucket gave up on after back-pressure
  std::uint64_t seq = 0, tokens_used = 0;

  timer.expires_at(w.start);
  co_await timer.async_wait(net::kAsTuple);
  for (;;) {
    const auto now = Clock::now();
    if (now >= w.measure_end) break;
    std::size_t n = batch;
    if (packets_per_second > 0) {
      const double elapsed = std::chrono::duration<double>(now - w.start).count();
      double due = elapsed * packets_per_second - forgiven - static_cast<double>(tokens_used);
      if (due > max_debt) {
        forgiven += due - max_debt;
        due = max_debt;
      }
      if (due < 1) {
        timer.expires_at(now + kPacingTick);
        co_await timer.async_wait(net::kAsTuple);
        continue;
      }
      n = std::min(batch, static_cast<std::size_t>(due));
      tokens_used += n;
    }
    const std::int64_t now_ns = ToNs(now);
    for (std::size_t i = 0; i < n; ++i) {
      StoreStamp(frames.data() + i * frame_size + kSendPayloadOffset, now_ns, seq++);
    }
    std::size_t written = 0;
    if (write_per_frame) {
      for (; written < n; ++written) {
        const asio::const_buffer buf(frames.data() + written * frame_size, frame_size);
        auto r = co_await stream.WriteAll(std::span(&buf, 1));
        if (r.ec) {
          NoteError(st.error, w, "send", r.ec);
          break;
        }
      }
    } else {
      const asio::const_buffer buf(frames.data(), n * frame_size);
      auto r = co_await stream.WriteAll(std::span(&buf, 1));
      if (r.ec) {
        NoteError(st.error, w, "send", r.ec);
      } else {
        written = n;
      }
    }
    if (w.Measures(now_ns)) {
      st.sent_packets += written;
      st.sent_bytes += written * size;
    }
    if (written < n) break;
  }
}

asio::awaitable<void> RecvLoop(net::Stream& stream, const Window& w, FlowStats& st) {
  derp::FrameReader reader(kMaxFramePayload);
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st.error, w, "receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    const bool in_window = w.Measures(ToNs(Clock::now()));
    auto f = reader.Next();
    for (; f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket ||
          f->payload.size() < derp::kKeySize + kStampSize) {
        ++st.other_frames;
        continue;
      }
      const std::byte* packet = f->payload.data() + derp::kKeySize;
      const std::size_t packet_size = f->payload.size() - derp::kKeySize;
      if (w.Measures(LoadSendNs(packet))) ++st.arrived_packets;
      if (in_window) {
        ++st.received_packets;
        st.received_bytes += packet_size;
      }
    }
    if (f.error() == derp::FrameReader::Status::kTooLarge) {
      if (st.error.empty()) st.error = "receive: frame over 1 MiB";
      break;
    }
  }
}

asio::awaitable<void> DiscardLoop(net::Stream& stream) {
  std::vector<std::byte> buf(4096);
  for (;;) {
    auto r = co_await stream.ReadSome(buf);
    if (r.ec) break;
  }
}

}  // namespace derpkit::bench
