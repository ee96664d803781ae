// RelayConfig: everything derp-relay is told at start-up. main.cc fills it from flags; Validate()
// checks it once; the rest of the relay only reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/util/expected.h"
#include "lib/util/netaddr.h"

namespace derpkit::relay {

struct RelayConfig {
  // -a: the main listener, "host:port", "[v6]:port" or ":port" (all addresses).
  std::string addr = ":443";
  // --http-port: the plain captive-portal listener beside a TLS main listener; -1 disables it.
  int http_port = 80;
  bool stun = true;
  int stun_port = 3478;
  // Answer only Tailscale's form of binding request (SOFTWARE "tailnode" + FINGERPRINT), like
  // derper; by default any valid RFC 5389 binding request is answered.
  bool stun_strict = false;
  // -c: derper's key file, {"PrivateKey": "privkey:<hex>"}, created (mode 0600) when missing.
  std::string key_file;
  // "" (plain unless the port is 443), "manual" (<certdir>/<hostname>.crt/.key) or "selfsigned"
  // (like manual, but generated on first start when missing).
  std::string cert_mode;
  std::string cert_dir;
  std::string hostname = "derp.tailscale.com";
  // --dev: plain HTTP on :3340 with a fresh key every start (derper's development mode).
  bool dev = false;
  // --derp=false keeps STUN, probes and the home page but answers /derp with 404.
  bool derp = true;
  std::string home;
  std::chrono::seconds tcp_keepalive_time{600};
  std::chrono::milliseconds tcp_user_timeout{15000};
  // 0 means writes have no deadline.
  std::chrono::milliseconds tcp_write_timeout{2000};
  std::chrono::milliseconds mesh_write_timeout{30000};
  std::chrono::milliseconds handshake_timeout{10000};
  // Event loops, one per core by default (0 = all cores).
  int workers = 0;
  // Per-client send queue depth, separately for disco and other packets (derper: 32).
  int send_queue_depth = 32;
  // --mesh-with: the other relays of this region ("host", "host:port", "host/dialhost" or a
  // URL). This relay's own name may be listed; a link that reaches this relay is dropped.
  std::vector<std::string> mesh_with;
  // --mesh-psk-file: the region's 64-hex-digit mesh key (whitespace trimmed).
  std::string mesh_psk_file;
  // --mesh-ca-file: trust anchors for dialling mesh peers over TLS (default: system roots).
  std::string mesh_ca_file;
  // /debug/ access beyond loopback and the tailnet: CIDRs ("192.0.2.0/24", comma list on the
  // command line) and a file whose trimmed contents, given as ?debugkey=, also grant access.
  std::vector<std::string> debug_trusted_cidrs;
  std::string debug_key_file;
  // --debug-addr: a separate plain HTTP listener serving only /debug/ ("host:port"); empty: none.
  std::string debug_addr;
  // Listeners that expect a PROXY protocol (v1 or v2) header first: any of "main", "http",
  // "debug". The header's source address is then the client's for access, logs and metrics.
  std::vector<std::string> proxy_protocol;
  // KeepAlive frame period (derper: 60 s plus up to 5 s of jitter). Tests shorten it.
  std::chrono::milliseconds keepalive_interval{60000};
  // How long a shutdown waits for connections to close before the process exits anyway.
  std::chrono::milliseconds shutdown_grace{2000};

  // Derived by Validate().
  std::string listen_host;
  std::uint16_t listen_port = 0;
  bool tls = false;
  std::vector<netaddr::Prefix> debug_trusted_prefixes;
  std::string debug_listen_host;
  std::uint16_t debug_listen_port = 0;
  bool proxy_main = false;
  bool proxy_http = false;
  bool proxy_debug = false;

  // Checks every field and fills the derived ones. The error is one line for the operator.
  Expected<void, std::string> Validate();
};

}  // namespace derpkit::relay
