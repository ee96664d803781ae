// derp-load --mode ws-burst: what a browser tab does when it wakes. Two DERP clients speak DERP
// over WebSocket (ws:// or wss://: Upgrade: websocket, subprotocol "derp", one WebSocket message
// per DERP frame, as Tailscale's browser client writes); at the same moment each sends
// --burst-packets packets of --size bytes to the other, as fast as it can. What arrives within
// --burst-wait of the burst's start counts; the rest is lost. Repeated --tries times on the same
// two connections; reported per try, worst try and total.
//
// Threads: the main thread connects, starts each try and reads the counters (atomics); each
// client lives on an event loop of its own (so both bursts really leave at once) that runs its
// receiver for the whole run and its sender once per try.
#pragma once

#include "bench/load_config.h"

namespace derpkit::bench {

// Runs the mode and prints its report (text or --json). Returns the exit status: 0 when every
// try ran (whatever was lost), 1 when a client failed to connect or a connection broke.
int RunWsBurst(const LoadConfig& cfg);

}  // namespace derpkit::bench
