// derp-load's throughput flows on event loops: the paced (or unpaced) sender coroutine, the
// receiver that counts what arrives, and the reader that discards what the relay sends a sender.
//
// Each coroutine runs on its pair's Loop and owns the stream side it uses: the sender writes A's
// stream, DiscardLoop reads it, RecvLoop reads B's. They take the streams over from
// derpclient::Client after ServerInfo (see derp_load.cc).
#pragma once

#include <asio.hpp>
#include <cstddef>

#include "bench/load_flow.h"
#include "lib/derp/keys.h"
#include "lib/net/stream.h"

namespace derpkit::bench {

// Sends to `dst` from w.start until w.measure_end, paced at `packets_per_second` (0 = unpaced):
// wakes every millisecond and writes every frame that is due. By default the due frames leave
// in one write (up to 64 KiB; TlsStream makes that a few full TLS records); with
// `write_per_frame` every frame is its own write, over TLS its own record.
asio::awaitable<void> SendLoop(net::Stream& stream, derp::PublicKey dst, std::size_t size,
                               double packets_per_second, bool write_per_frame, const Window& w,
                               FlowStats& st);

// Reads B's side until the stream closes, counting RecvPackets (FlowStats::arrived_packets,
// received_*).
asio::awaitable<void> RecvLoop(net::Stream& stream, const Window& w, FlowStats& st);

// Reads and discards whatever the relay sends a sender (KeepAlive, PeerGone).
asio::awaitable<void> DiscardLoop(net::Stream& stream);

}  // namespace derpkit::bench
