// The HTTPS latency fallback, used when no STUN answer came back at all (UDP blocked): TLS-dial
// the region (its non-STUNOnly nodes in order, each bounded by 1.5 s), then time one
// `GET /derp/latency-check` on that connection, from the request written to the response head
// read (Tailscale's measureHTTPSLatency, which takes httpstat's ServerProcessing). The status
// must be ≤ 299: anything else is likely a proxy answering for the relay.
//
// TLS follows the DERP map: SNI and verification against HostName, or CertName, or a
// "sha256-raw:" pin; InsecureForTests skips verification.
//
// Thread affinity: a coroutine on the caller's io_context.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/util/expected.h"
#include "netcheck/resolve.h"

namespace derpkit::netcheck {

struct HttpsLatencyOptions {
  std::chrono::milliseconds dial_per_node{1500};  // TCP + TLS to one node
  std::string ca_file;                            // extra trust anchors; "" = system roots
};

struct HttpsLatency {
  std::chrono::nanoseconds latency{0};
  bool via_ipv4 = true;  // the family of the address the connection went to
  std::string node;      // the node that answered
};

// Error: one line naming the node and the failing step ("901a: TLS handshake with 127.0.0.1:443:
// certificate pin mismatch", "901a: unexpected status 403").
asio::awaitable<Expected<HttpsLatency, std::string>> MeasureHttpsLatency(
    asio::io_context& io, derpmap::Region region, SteadyTime deadline, HttpsLatencyOptions options);

}  // namespace derpkit::netcheck
