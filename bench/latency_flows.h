// derp-load's latency pair (--mode latency): the ping, pong and echo coroutines. They run on the
// latency pair's own event loop and own the pair's two streams (A: ping writes, pong reads;
// B: echo reads and writes).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bench/load_flow.h"
#include "lib/derp/keys.h"
#include "lib/net/stream.h"

namespace derpkit::bench {

inline constexpr std::size_t kLatencyPacketSize = 64;

// B side: echoes every RecvPacket back to `back_to` with the same payload.
asio::awaitable<void> EchoLoop(net::Stream& stream, derp::PublicKey back_to, const Window& w,
                               FlowStats& st);

// A side: one 64-byte packet every `interval` from w.start to w.measure_end, on a fixed schedule
// (a late wake-up does not push later packets back).
asio::awaitable<void> PingLoop(net::Stream& stream, derp::PublicKey dst,
                               std::chrono::nanoseconds interval, const Window& w, FlowStats& st);

// A side: records the round trip of every echo whose ping left inside the window.
asio::awaitable<void> PongLoop(net::Stream& stream, const Window& w, FlowStats& st,
                               std::vector<std::int64_t>& rtt_ns);

}  // namespace derpkit::bench
