// RelayConfig: everything derp-relay is told at start-up. main.cc fills it from flags; Validate()
// checks it once; the rest of the relay only reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "lib/util/expected.h"
#include "lib/util/netaddr.h"
#include "relay/admission_config.h"

namespace derpkit::relay {

class DnsResolver;  // relay/bootstrap_dns.h

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
  // (like manual, but generated on first start when missing), or "letsencrypt" (obtained and
  // renewed by the built-in ACME client, stored as manual's files). manual and selfsigned pairs
  // are reloaded when the files change (checked every cert_poll_interval) and on SIGHUP.
  std::string cert_mode;
  std::string cert_dir;
  std::string hostname = "derp.tailscale.com";
  std::chrono::milliseconds cert_poll_interval{5000};
  // letsencrypt: the CA's directory URL, trust anchors for its HTTPS (empty: system roots), the
  // account's contact e-mail (empty: none), the challenge to answer ("http-01" or "tls-alpn-01";
  // Validate() turns empty into http-01 when --http-port is on, else tls-alpn-01), how long
  // before expiry to renew (0: a third of the lifetime, at most 30 days), and the first wait
  // after a failed attempt (doubling per failure, up to an hour).
  std::string acme_directory = "https://acme-v02.api.letsencrypt.org/directory";
  std::string acme_ca_file;
  std::string acme_email;
  std::string acme_challenge;
  std::chrono::seconds acme_renew_before{0};
  std::chrono::milliseconds acme_retry_min{60000};
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
  // With workers > 1: a connection that talks mostly to one peer on another shard moves to that
  // shard, or the peer to its (relay/client_conn.h, "Moving").
  bool move_connections = true;
  // Where moves take pairs (relay/placement.h), in fractions of a core: pairs gather on the
  // lower-index shard while the two shards' threads together use less than move_gather_below,
  // and a thread busier than move_spread_above hands pairs to a less busy one.
  double move_gather_below = 0.7;
  double move_spread_above = 0.85;
  // Per-client queue of disco packets, in packets (derper: 32 for every packet).
  int send_queue_depth = 32;
  // Per-client queue of other packets, in payload bytes. Senders to a client with more than a
  // quarter of this queued stop being read until it is below a sixteenth (back-pressure); only
  // a client that takes nothing for stalled_write_after loses its oldest packets past the limit.
  std::int64_t send_queue_bytes = 512 * 1024;
  // A receiver whose write has taken nothing for this long is not draining: it releases the
  // senders it paused and pauses nobody. Tests that starve a slow reader of CPU lengthen it.
  std::chrono::milliseconds stalled_write_after{200};
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
  // On shutdown every DERP connection is first sent a Restarting frame (derp-protocol.md §7.10):
  // reconnect after reconnect_in, keep trying for try_for. A try_for of 0 sends none (derper).
  std::chrono::milliseconds restart_reconnect_in{500};
  std::chrono::milliseconds restart_try_for{5000};
  // --accept-connection-limit (new connections per second on the main listener) and
  // --accept-connection-burst, derper's: over the rate a connection is accepted and closed at
  // once. +Inf is unlimited; with derper's default burst (the largest int64) so is any rate.
  double accept_connection_limit = std::numeric_limits<double>::infinity();
  std::int64_t accept_connection_burst = std::numeric_limits<std::int64_t>::max();
  // --bootstrap-dns-names and --unpublished-bootstrap-dns-names (§3.7): names resolved in the
  // background for /bootstrap-dns; an unpublished entry may be "name/txtname".
  std::vector<std::string> bootstrap_dns_names;
  std::vector<std::string> unpublished_bootstrap_dns_names;
  // Tests inject a resolver for those names; null uses the system's.
  std::shared_ptr<DnsResolver> bootstrap_dns_resolver;
  // Client verification: --verify-clients, --verify-client-url, --allow-keys-file, ...
  AdmissionConfig admission;

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
