// derp-relay: flags -> RelayConfig -> Server; runs until SIGINT or SIGTERM.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "lib/net/key_file.h"
#include "lib/net/log.h"
#include "lib/net/record_aead.h"
#include "lib/net/socket_options.h"
#include "lib/util/duration.h"
#include "lib/util/go_flags.h"
#include "lib/util/netaddr.h"
#include "relay/config.h"
#include "relay/server.h"

namespace {

using derpkit::relay::RelayConfig;

// Splits "a, b,,c" into {"a", "b", "c"}.
std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (!text.empty() && at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string entry = text.substr(at, comma - at);
    const auto first = entry.find_first_not_of(' ');
    const auto last = entry.find_last_not_of(' ');
    if (first != std::string::npos) out.push_back(entry.substr(first, last - first + 1));
    at = comma + 1;
  }
  return out;
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "derp-relay: %s\n", message.c_str());
  std::exit(2);
}

template <typename Duration>
Duration ParseDurationFlag(const std::string& flag, const std::string& text) {
  auto d = derpkit::ParseGoDuration(text);
  if (!d) Fail("--" + flag + " " + text + ": " + std::string(derpkit::Describe(d.error())));
  return std::chrono::duration_cast<Duration>(*d);
}

// Go's strconv.ParseFloat as derper's flag package reads --accept-connection-limit: a number,
// or "+Inf"/"inf"/"infinity" in any case.
double ParseRateFlag(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isnan(v)) {
    Fail("--" + flag + " " + text + ": want a number of connections per second or +Inf");
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  RelayConfig config;
  CLI::App app{
      "derp-relay: a DERP relay for Tailscale and Headscale tailnets, wire-compatible with "
      "Tailscale's derper, with a STUN responder.\n"
      "Flags may be written -flag or --flag, with a space or '=' before the value."};
  app.option_defaults()->always_capture_default();
  std::string keepalive = "10m0s", user_timeout = "15s", write_timeout = "2s";
  bool verbose = false;
  app.add_option("-a,--a", config.addr,
                 "Address to listen on for DERP (TLS or plain HTTP): host:port, [v6]:port, or "
                 ":port for all addresses.");
  app.add_option("--http-port", config.http_port,
                 "Port for the plain HTTP listener beside a TLS listener (captive-portal "
                 "checks, redirects to HTTPS); -1 disables it.");
  app.add_flag("--stun", config.stun, "Run the STUN responder (--stun=false disables it).");
  app.add_option("--stun-port", config.stun_port, "UDP port of the STUN responder.");
  app.add_flag("--stun-strict", config.stun_strict,
               "Answer only Tailscale's form of STUN binding request, like derper; by default any "
               "valid RFC 5389 binding request is answered so standard tools can check the relay.");
  app.add_option("-c,--c", config.key_file,
                 "Key file ({\"PrivateKey\": \"privkey:...\"}, derper's format), created with mode "
                 "0600 when missing. Default /var/lib/derper/derper.key when run as root.");
  app.add_option("--certmode", config.cert_mode,
                 "TLS certificates: empty for none (plain HTTP unless the port is 443), "
                 "letsencrypt (obtained and renewed by the built-in ACME client), manual "
                 "(<certdir>/<hostname>.crt and .key) or selfsigned (generated when missing). "
                 "manual and selfsigned files are reloaded when they change and on SIGHUP.");
  app.add_option("--certdir", config.cert_dir,
                 "Directory of the TLS certificate and key (and of the ACME account key).");
  app.add_option("--hostname", config.hostname,
                 "TLS host name: the certificate's name, and the SNI clients send.");
  std::string acme_renew_before = "0s";
  app.add_option("--acme-email", config.acme_email,
                 "letsencrypt: contact e-mail of the ACME account (expiry notices); empty for "
                 "none.");
  app.add_option("--acme-directory", config.acme_directory,
                 "letsencrypt: directory URL of the ACME CA (e.g. Let's Encrypt staging, or "
                 "another CA).");
  app.add_option("--acme-ca-file", config.acme_ca_file,
                 "letsencrypt: PEM trust anchors for the ACME CA's HTTPS (a test CA such as "
                 "pebble's); empty uses the system roots.");
  app.add_option("--acme-challenge", config.acme_challenge,
                 "letsencrypt: http-01 (answered on --http-port) or tls-alpn-01 (answered on the "
                 "main TLS port); empty picks http-01 unless --http-port is -1.");
  app.add_option("--acme-renew-before", acme_renew_before,
                 "letsencrypt: renew when the certificate has less than this left (Go "
                 "duration); 0 renews after two thirds of its lifetime, at most 30 days before "
                 "it expires.");
  app.add_flag("--dev", config.dev,
               "Development mode: plain HTTP on :3340 and a new random key on every start.");
  app.add_flag("--derp", config.derp,
               "Serve DERP (--derp=false answers /derp with 404 but keeps STUN and the rest).");
  app.add_option("--home", config.home,
                 "Home page: empty for the default page, \"blank\" for an empty page, or an "
                 "http(s):// URL to redirect to.");
  app.add_option("--tcp-keepalive-time", keepalive,
                 "TCP keepalive idle time (Go duration, e.g. 10m0s); 0 leaves the system default.");
  app.add_option("--tcp-user-timeout", user_timeout,
                 "TCP_USER_TIMEOUT: how long sent data may go unacknowledged before the "
                 "connection is dropped (Go duration); 0 leaves the system default.");
  app.add_option("--tcp-write-timeout", write_timeout,
                 "Write deadline (Go duration): a client that takes no byte of a waiting write for "
                 "this long is disconnected; 0 results in no timeout being set on writes.");
  app.add_option("--workers", config.workers,
                 "Event loops (threads), each owning its share of the connections; 0 means one "
                 "per core.");
  app.add_flag("--move-connections", config.move_connections,
               "With --workers above 1, move a connection that talks mostly to one peer to the "
               "peer's worker, or the peer to its (--move-connections=false keeps every "
               "connection where it was accepted).");
  app.add_option("--move-gather-below", config.move_gather_below,
                 "With --move-connections: pairs gather on one worker while two workers' threads "
                 "together use less than this fraction of a core (0 never gathers).");
  app.add_option("--move-spread-above", config.move_spread_above,
                 "With --move-connections: a worker whose thread uses more than this fraction of "
                 "a core hands talking pairs to a less busy worker (1 never spreads).");
  app.add_option("--send-queue-depth", config.send_queue_depth,
                 "Disco packets queued per client before the oldest is dropped.");
  app.add_option("--send-queue-bytes", config.send_queue_bytes,
                 "Payload bytes of other packets queued per client. Senders to a client with a "
                 "quarter of this queued are not read until it drains (back-pressure); past "
                 "the limit a client that takes nothing loses its oldest packets.");
  std::string mesh_with;
  app.add_option("--mesh-with", mesh_with,
                 "Comma-separated list of the other relays of this region to mesh with: host, "
                 "host:port, host/dialhost (verify TLS for host, dial dialhost) or a URL. This "
                 "relay's own name may be listed.");
  app.add_option("--mesh-psk-file", config.mesh_psk_file,
                 "File holding the region's mesh key (64 hex digits). Clients presenting it may "
                 "watch connections and forward packets; required with --mesh-with.");
  app.add_option("--mesh-ca-file", config.mesh_ca_file,
                 "PEM file of trust anchors for dialling mesh peers over TLS; empty uses the "
                 "system roots.");
  std::string trusted_cidrs, proxy_listeners;
  app.add_option("--debug-trusted-cidrs", trusted_cidrs,
                 "Comma-separated CIDRs, besides loopback and the tailnet (100.64.0.0/10, "
                 "fd7a:115c:a1e0::/48), that may read /debug/.");
  app.add_option("--debug-key-file", config.debug_key_file,
                 "File holding a secret that grants /debug/ access from anywhere as "
                 "?debugkey=<secret> (GET only).");
  app.add_option("--debug-addr", config.debug_addr,
                 "Also serve /debug/ (and only that) on this plain HTTP address, e.g. "
                 "127.0.0.1:8081; empty for none.");
  app.add_option("--proxy-protocol", proxy_listeners,
                 "Comma-separated listeners (main, http, debug) that expect a PROXY protocol v1 "
                 "or v2 header first, as sent by HAProxy, nginx or Traefik in front; its source "
                 "address is then used for /debug/ access, logs and metrics. A connection "
                 "without a valid header is closed.");
  std::string accept_limit = "+Inf", bootstrap_names, unpublished_names;
  std::string restart_reconnect_in = "500ms", restart_try_for = "5s";
  app.add_option("--accept-connection-limit", accept_limit,
                 "New connections per second on the main listener (TLS, or plain HTTP); over it "
                 "a connection is accepted and closed at once. +Inf is unlimited. Set "
                 "--accept-connection-burst too: with the default burst any rate is unlimited.");
  app.add_option("--accept-connection-burst", config.accept_connection_burst,
                 "Connections accepted at once above --accept-connection-limit.");
  app.add_option("--bootstrap-dns-names", bootstrap_names,
                 "Comma-separated host names whose addresses /bootstrap-dns serves, resolved in "
                 "the background every 10 minutes.");
  app.add_option("--unpublished-bootstrap-dns-names", unpublished_names,
                 "Comma-separated host names /bootstrap-dns?q=NAME answers but never lists; an "
                 "entry NAME/TXTNAME is served to the share of clients (0-100 %) that TXTNAME's "
                 "TXT record holds.");
  app.add_option("--restart-reconnect-in", restart_reconnect_in,
                 "On SIGTERM or SIGINT every client is first sent a Restarting frame telling it "
                 "to reconnect after this long (Go duration).");
  app.add_option("--restart-try-for", restart_try_for,
                 "How long the Restarting frame tells clients to keep trying to reconnect; 0 "
                 "sends no Restarting frame (derper's behaviour).");
  // Client verification (relay/admission.h): derper's three flags, then ours.
  std::string verify_cache_ttl = "30s", verify_cache_deny_ttl = "5s";
  app.add_flag("--verify-clients", config.admission.verify_clients,
               "Admit only clients the tailscaled on this host knows (whois over --socket, as "
               "derper does); when tailscaled cannot be asked, the client is refused.");
  app.add_option("--socket", config.admission.tailscaled_socket,
                 "Path of tailscaled's LocalAPI unix socket, for --verify-clients.");
  app.add_option("--verify-client-url", config.admission.verify_client_url,
                 "If non-empty, an admission controller URL (e.g. Headscale's "
                 "https://headscale.example.com/verify): each new client is POSTed as "
                 "{\"NodePublic\",\"Source\"} and admitted only on 200 {\"Allow\": true}.");
  app.add_flag("--verify-client-url-fail-open", config.admission.verify_client_url_fail_open,
               "Admit clients when --verify-client-url cannot be reached (refused, timeout, DNS, "
               "TLS); =false refuses them. A non-200 or unreadable answer always refuses. "
               "Default true, as derper.");
  app.add_option("--allow-keys-file", config.admission.allow_keys_file,
                 "File of node keys (nodekey:<hex>, one per line, # comments) admitted without "
                 "asking tailscaled or the admission controller; re-read when it changes. Alone, "
                 "it admits only the keys it lists.");
  app.add_option("--verify-cache-ttl", verify_cache_ttl,
                 "How long a verifier's admission is remembered per node key and source IP, so "
                 "that reconnects do not ask again (Go duration; 0 remembers nothing).");
  app.add_option("--verify-cache-deny-ttl", verify_cache_deny_ttl,
                 "How long a refusal (or a fail-open admission) is remembered (Go duration; 0 "
                 "remembers nothing).");
  app.add_option("--verify-max-in-flight", config.admission.max_in_flight,
                 "Verifications in progress at once; a new client beyond that is refused at "
                 "once (it retries) instead of queueing.");
  app.add_flag("-v,--verbose", verbose, "Log every connection (debug level).");

  const std::vector<std::string> args = derpkit::NormalizeGoFlags(argc, argv);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    Fail(std::string(e.what()) + " (see --help)");
  }
  config.tcp_keepalive_time =
      ParseDurationFlag<std::chrono::seconds>("tcp-keepalive-time", keepalive);
  config.acme_renew_before =
      ParseDurationFlag<std::chrono::seconds>("acme-renew-before", acme_renew_before);
  config.tcp_user_timeout =
      ParseDurationFlag<std::chrono::milliseconds>("tcp-user-timeout", user_timeout);
  config.tcp_write_timeout =
      ParseDurationFlag<std::chrono::milliseconds>("tcp-write-timeout", write_timeout);
  config.mesh_with = SplitComma(mesh_with);
  config.debug_trusted_cidrs = SplitComma(trusted_cidrs);
  config.proxy_protocol = SplitComma(proxy_listeners);
  config.accept_connection_limit = ParseRateFlag("accept-connection-limit", accept_limit);
  config.bootstrap_dns_names = SplitComma(bootstrap_names);
  config.unpublished_bootstrap_dns_names = SplitComma(unpublished_names);
  config.restart_reconnect_in =
      ParseDurationFlag<std::chrono::milliseconds>("restart-reconnect-in", restart_reconnect_in);
  config.restart_try_for =
      ParseDurationFlag<std::chrono::milliseconds>("restart-try-for", restart_try_for);
  config.admission.cache_allow_ttl =
      ParseDurationFlag<std::chrono::milliseconds>("verify-cache-ttl", verify_cache_ttl);
  config.admission.cache_deny_ttl =
      ParseDurationFlag<std::chrono::milliseconds>("verify-cache-deny-ttl", verify_cache_deny_ttl);
  if (config.key_file.empty() && !config.dev && ::geteuid() == 0) {
    config.key_file = "/var/lib/derper/derper.key";
  }
  if (auto ok = config.Validate(); !ok) Fail(ok.error());
  if (verbose) derpkit::log::SetMinLevel(derpkit::log::Level::kDebug);

  const long files = derpkit::net::RaiseOpenFileLimit();
  try {
    derpkit::derp::PrivateKey key = derpkit::derp::PrivateKey::Generate();
    if (!config.dev) {
      auto loaded = derpkit::net::LoadOrCreateKeyFile(config.key_file);
      key = loaded.key;
      if (loaded.created) LOG_INFO("created key file %s", config.key_file.c_str());
    }
    derpkit::relay::Server server(config, key);
    server.Start();
    const char* scheme = config.tls ? "https" : "http";
    LOG_INFO("derp-relay: server key %s", server.public_key().ToText().c_str());
    LOG_INFO("derp-relay: DERP on %s://%s/derp (%d workers, open-file limit %ld)", scheme,
             derpkit::netaddr::JoinHostPort(config.listen_host, server.port()).c_str(),
             config.workers, files);
    if (!server.cert_sha256().empty()) {
      LOG_INFO("derp-relay: certificate for %s, CertName sha256-raw:%s", config.hostname.c_str(),
               server.cert_sha256().c_str());
    }
    if (config.tls) {
      LOG_INFO("derp-relay: TLS 1.3 records sealed and opened by %s",
               derpkit::net::DefaultRecordCipherLibraryName().c_str());
    }
    if (server.http_port() != 0) LOG_INFO("derp-relay: plain HTTP on port %u", server.http_port());
    if (server.debug_port() != 0) LOG_INFO("derp-relay: /debug/ on port %u", server.debug_port());
    if (config.stun) LOG_INFO("derp-relay: STUN on UDP port %u", server.stun_port());
    if (!std::isinf(config.accept_connection_limit) &&
        config.accept_connection_burst == std::numeric_limits<std::int64_t>::max()) {
      LOG_WARN(
          "derp-relay: --accept-connection-limit %g has no effect without "
          "--accept-connection-burst (the default burst is unlimited, as in derper)",
          config.accept_connection_limit);
    }

    asio::io_context main_io;
    // SIGHUP re-reads the certificate files (manual and selfsigned modes), again and again.
    asio::signal_set hangups(main_io, SIGHUP);
    std::function<void()> await_hangup = [&] {
      hangups.async_wait([&](const std::error_code& ec, int) {
        if (ec) return;
        LOG_INFO("derp-relay: SIGHUP, reloading the TLS certificate");
        server.ReloadCertificates();
        await_hangup();
      });
    };
    await_hangup();
    asio::signal_set signals(main_io, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code&, int signo) {
      LOG_INFO("derp-relay: signal %d, shutting down", signo);
      hangups.cancel();
      server.Stop();
    });
    main_io.run();
    LOG_INFO("derp-relay: stopped");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derp-relay: %s\n", e.what());
    return 1;
  }
  return 0;
}
