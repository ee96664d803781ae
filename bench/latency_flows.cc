// derp-load's latency pair (--mode latency): A pings B with 64-byte stamped packets on a fixed
// schedule, B echoes each back, A records the round trips. All three coroutines run on the
// latency pair's own event loop, so bulk senders never delay its wake-ups.
#include "bench/latency_flows.h"

#include <span>

#include "lib/derp/frame.h"
#include "lib/derp/messages.h"
#include "lib/net/as_tuple.h"

namespace derpkit::bench {

// Latency pair, B side: echoes every RecvPacket back to `back_to` with the same payload.
asio::awaitable<void> EchoLoop(net::Stream& stream, derp::PublicKey back_to, const Window& w,
                               FlowStats& st) {
  derp::FrameReader reader(kMaxFramePayload);
  Bytes out;
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st.error, w, "echo receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    out.clear();
    for (auto f = reader.Next(); f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket || f->payload.size() < derp::kKeySize) continue;
      derp::AppendSendPacket(out, back_to, f->payload.subspan(derp::kKeySize));
    }
    if (out.empty()) continue;
    const asio::const_buffer buf(out.data(), out.size());
    auto wr = co_await stream.WriteAll(std::span(&buf, 1));
    if (wr.ec) {
      NoteError(st.error, w, "echo send", wr.ec);
      break;
    }
  }
}

// Latency pair, A side: one 64-byte packet every `interval` from w.start to w.measure_end, on a
// fixed schedule (a late wake-up does not push later packets back).
asio::awaitable<void> PingLoop(net::Stream& stream, derp::PublicKey dst,
                               std::chrono::nanoseconds interval, const Window& w, FlowStats& st) {
  Bytes frame = BuildFrames(dst, kLatencyPacketSize, 1);
  asio::steady_timer timer(stream.tcp().get_executor());
  std::uint64_t seq = 0;
  for (auto next = w.start; next < w.measure_end; next += interval) {
    timer.expires_at(next);
    co_await timer.async_wait(net::kAsTuple);
    const std::int64_t now_ns = ToNs(Clock::now());
    if (now_ns >= w.measure_end_ns) break;
    StoreStamp(frame.data() + kSendPayloadOffset, now_ns, seq++);
    const asio::const_buffer buf(frame.data(), frame.size());
    auto r = co_await stream.WriteAll(std::span(&buf, 1));
    if (r.ec) {
      NoteError(st.error, w, "ping send", r.ec);
      break;
    }
    if (w.Measures(now_ns)) {
      ++st.sent_packets;
      st.sent_bytes += kLatencyPacketSize;
    }
  }
}

// Latency pair, A side: records the round trip of every echo whose ping left inside the window.
asio::awaitable<void> PongLoop(net::Stream& stream, const Window& w, FlowStats& st,
                               std::vector<std::int64_t>& rtt_ns) {
  derp::FrameReader reader(kMaxFramePayload);
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st.error, w, "pong receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    const std::int64_t now_ns = ToNs(Clock::now());
    for (auto f = reader.Next(); f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket ||
          f->payload.size() != derp::kKeySize + kLatencyPacketSize) {
        ++st.other_frames;
        continue;
      }
      const std::int64_t sent_ns = LoadSendNs(f->payload.data() + derp::kKeySize);
      if (!w.Measures(sent_ns)) continue;
      ++st.arrived_packets;
      rtt_ns.push_back(now_ns - sent_ns);
    }
  }
}

}  // namespace derpkit::bench
