// derp-relay: flags -> RelayConfig -> Server; runs until SIGINT or SIGTERM.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/net/key_file.h"
#include "lib/net/log.h"
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
                 "TLS certificates: empty for none (plain HTTP unless the port is 443), manual "
                 "(<certdir>/<hostname>.crt and .key) or selfsigned (generated when missing).");
  app.add_option("--certdir", config.cert_dir, "Directory of the TLS certificate and key.");
  app.add_option("--hostname", config.hostname,
                 "TLS host name: the certificate's name, and the SNI clients send.");
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
                 "Deadline for each write to a client (Go duration); 0 results in no timeout "
                 "being set on writes.");
  app.add_option("--workers", config.workers,
                 "Event loops (threads), each owning its share of the connections; 0 means one "
                 "per core.");
  app.add_option("--send-queue-depth", config.send_queue_depth,
                 "Packets queued per client (disco and other packets each) before the oldest is "
                 "dropped.");
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
  config.tcp_user_timeout =
      ParseDurationFlag<std::chrono::milliseconds>("tcp-user-timeout", user_timeout);
  config.tcp_write_timeout =
      ParseDurationFlag<std::chrono::milliseconds>("tcp-write-timeout", write_timeout);
  config.mesh_with = SplitComma(mesh_with);
  config.debug_trusted_cidrs = SplitComma(trusted_cidrs);
  config.proxy_protocol = SplitComma(proxy_listeners);
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
    if (server.http_port() != 0) LOG_INFO("derp-relay: plain HTTP on port %u", server.http_port());
    if (server.debug_port() != 0) LOG_INFO("derp-relay: /debug/ on port %u", server.debug_port());
    if (config.stun) LOG_INFO("derp-relay: STUN on UDP port %u", server.stun_port());

    asio::io_context main_io;
    asio::signal_set signals(main_io, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code&, int signo) {
      LOG_INFO("derp-relay: signal %d, shutting down", signo);
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
