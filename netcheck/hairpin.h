// The hairpin check (Tailscale ≤ v1.67's Report.HairPinning): can a packet sent from behind the
// NAT to our own public IPv4 endpoint come back to us? Peers on the same LAN behind one NAT can
// then reach each other through their public endpoints.
//
// How: a fresh UDP socket asks the STUN server that answered first where it sees us (endpoint E),
// then sends a STUN Binding Request to E from the same socket and waits `wait` for that very
// request (matched by transaction ID) to arrive back. lib/net's StunSocket drops Binding Requests
// it receives, so the check owns its socket rather than reusing the probe socket: the question
// answered is the same (does the NAT loop traffic to its own public address back inside).
//
// Thread affinity: a coroutine on the caller's io_context.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <optional>
#include <string>

namespace derpkit::netcheck {

struct HairpinResult {
  std::optional<bool> hairpins;  // nullopt: could not be measured (STUN step failed)
  std::string note;              // one line for --verbose
};

// `server`: an IPv4 STUN server that answers us; `bind_address`: as for the probe sockets.
// `stun_deadline` bounds the STUN step; `wait` is how long the hairpinned packet may take.
asio::awaitable<HairpinResult> CheckHairpin(asio::io_context& io, asio::ip::udp::endpoint server,
                                            std::string bind_address,
                                            std::chrono::steady_clock::time_point stun_deadline,
                                            std::chrono::milliseconds wait);

}  // namespace derpkit::netcheck
