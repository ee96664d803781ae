// The checks derp-probe runs against DERP map nodes, one coroutine per run. Each returns a
// ProbeResult whose error, on failure, is one line in words that names the node and the step
// ("900b (127.0.1.2:443): TLS handshake: certificate has expired (leaf CN derp.test, expired
// 2026-11-01T00:00:00Z)"). None throws; none runs past options.timeout (the caller also bounds
// them). A check owns copies of what it reads.
//
// Thread affinity: coroutines on the io_context given; every call from its thread.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "lib/derp/keys.h"
#include "lib/derpmap/derpmap.h"
#include "probe/model.h"

namespace derpkit::probe {

// What every DERP-speaking check needs besides its nodes.
struct DerpCheckOptions {
  std::chrono::milliseconds timeout{12000};  // the whole run: connects, waits, transfers
  std::string ca_file{};                     // extra trust anchors; "" = system roots
  // --mesh-psk-file: presented in ClientInfo, so the clients pass relays that verify clients.
  std::optional<derp::MeshKey> mesh_key{};
  // --key-file: the sender's and the receiver's fixed keys; fresh random keys when unset.
  std::optional<derp::PrivateKey> sender_key{};
  std::optional<derp::PrivateKey> receiver_key{};
};

// tls: TCP to the node (IPv4 literal, else HostName, else IPv6 literal) on its DERP port, a TLS
// handshake with SNI = HostName, judged as a DERP client would: a CertName of "sha256-raw:<hex>"
// by that pin alone (never a CA), otherwise the chain against ca_file or the system roots for
// CertName, else HostName. Then every certificate in the chain except derper's meta certificate
// (recognised by its CN, reported in CertFacts, never judged) and self-signed roots must be valid
// now and not expire within `expiry_warning`. Latency = TCP connect + handshake. CertFacts is set
// whenever a chain was received, also on failure (so expiry can be charted while it fails).
struct TlsCheckOptions {
  std::chrono::milliseconds timeout{12000};
  std::string ca_file{};
  std::chrono::seconds expiry_warning{7 * 24 * 3600};
};
asio::awaitable<ProbeResult> CheckTls(asio::io_context& io, derpmap::Node node,
                                      TlsCheckOptions options);

// udp / udp6: a Tailscale-form STUN Binding Request to the node's literal IPv4 (or IPv6) on its
// STUN port, through lib/net's StunSocket. As the reference: resend the same transaction after
// each 2 s without an answer until the deadline; an error that comes back fast (ICMP refused)
// fails at once; the answer must parse and echo the transaction id. Latency = the answering
// transaction's round trip. The planner only makes these probes for nodes with a literal address
// and STUN; a node without one fails with a message saying so.
struct StunCheckOptions {
  std::chrono::milliseconds timeout{12000};
  std::chrono::milliseconds resend_after{2000};
};
asio::awaitable<ProbeResult> CheckStun(asio::io_context& io, derpmap::Node node, bool ipv6,
                                       StunCheckOptions options);

// mesh: two fresh clients (IsProber set, the mesh key when given) connect to `from` and `to`; the
// first message each gets must be ServerInfo. A random payload is sent from one to the other
// and must arrive at the receiver, from the sender's key, byte for byte (keepalives and other
// messages ignored). Instead of the reference's fixed 100 ms sleep (which raced the mesh), the
// sender repeats the packet with backoff (50 ms doubling to 1 s) until a copy arrives or the
// deadline passes: the receiver is present once the relays have learnt it. Latency = from the
// send of the copy that arrived to its arrival. A failure says how many copies were sent over
// how long and suggests the likely cause (not meshed, different mesh keys).
asio::awaitable<ProbeResult> CheckMesh(asio::io_context& io, derpmap::Node from, derpmap::Node to,
                                       DerpCheckOptions options);

// bw: like mesh (clients without IsProber, as the reference, to spare the relay's logs), then
// `size_bytes` of random data in packets of at most 64 KiB with at most 30 in flight (under the
// relay's 32-packet queue), received in order and byte for byte. Latency = the transfer time;
// bw_bytes and bw_transfer_time are set (also on failure: what was moved until then).
asio::awaitable<ProbeResult> CheckBandwidth(asio::io_context& io, derpmap::Node from,
                                            derpmap::Node to, std::uint64_t size_bytes,
                                            DerpCheckOptions options);

// qd: continuous. Two clients as for bw; 260-byte packets (a CallMeMaybe's size) carrying a
// big-endian sequence number in their first 8 bytes, `packets_per_second` of them, each one's
// delay reported through on_delay(seconds) when it arrives within `packet_timeout`, else
// on_drop() once. Runs until `run_for` has passed (0 = until cancelled or an error), then returns
// ok; returns a failure on a connection error. Latency = the median delay seen in this run.
struct QdCheckOptions {
  DerpCheckOptions derp{};
  int packets_per_second = 0;
  std::chrono::milliseconds packet_timeout{5000};
  std::chrono::milliseconds run_for{0};
};
asio::awaitable<ProbeResult> RunQueuingDelay(asio::io_context& io, derpmap::Node from,
                                             derpmap::Node to, QdCheckOptions options,
                                             std::function<void(double)> on_delay,
                                             std::function<void()> on_drop);

}  // namespace derpkit::probe
