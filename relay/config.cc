#include "relay/config.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <thread>

#include "lib/util/netaddr.h"
#include "relay/cert_config.h"

namespace derpkit::relay {

namespace {
// A fraction as the user typed it ("0.5", not std::to_string's "0.500000").
std::string Fraction(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}
}  // namespace

Expected<void, std::string> RelayConfig::Validate() {
  using Err = Unexpected<std::string>;
  if (dev) {
    addr = ":3340";
    cert_mode.clear();
  }
  auto hp = netaddr::ParseHostPort(addr);
  if (!hp) {
    return Err{"-a " + addr + ": " + std::string(netaddr::Describe(hp.error()))};
  }
  listen_host = hp->host;
  listen_port = hp->port;
  if (!listen_host.empty() && !netaddr::ParseIp(listen_host)) {
    return Err{"-a " + addr + ": the host part must be an IP address or empty"};
  }
  if (cert_mode != "" && cert_mode != "manual" && cert_mode != "selfsigned" &&
      cert_mode != "letsencrypt") {
    return Err{"--certmode " + cert_mode +
               ": unsupported; use letsencrypt (built-in ACME client), manual (certificates in "
               "--certdir) or selfsigned"};
  }
  tls = !cert_mode.empty();
  if (!tls && listen_port == 443 && !dev) {
    return Err{"-a " + addr +
               ": port 443 serves TLS, so it needs --certmode letsencrypt, manual or selfsigned"};
  }
  if (tls && cert_dir.empty()) return Err{"--certmode " + cert_mode + " needs --certdir"};
  if (tls && hostname.empty()) return Err{"--certmode " + cert_mode + " needs --hostname"};
  if (http_port < -1 || http_port > 65535) {
    return Err{"--http-port " + std::to_string(http_port) + ": must be -1 or 0..65535"};
  }
  if (auto acme = ValidateAcme(*this); !acme) return acme;
  if (stun_port < 0 || stun_port > 65535) {
    return Err{"--stun-port " + std::to_string(stun_port) + ": must be 0..65535"};
  }
  if (!dev && key_file.empty()) {
    return Err{"-c is required: the path of the server key file (created when missing)"};
  }
  if (home != "" && home != "blank" && home.rfind("http://", 0) != 0 &&
      home.rfind("https://", 0) != 0) {
    return Err{"--home " + home + ": must be empty, \"blank\", or an http:// or https:// URL"};
  }
  if (tcp_keepalive_time.count() < 0 || tcp_user_timeout.count() < 0 ||
      tcp_write_timeout.count() < 0) {
    return Err{"TCP timeouts must not be negative"};
  }
  if (workers < 0 || workers > 256) {
    return Err{"--workers " + std::to_string(workers) + ": must be 0 (all cores) to 256"};
  }
  if (workers == 0) {
    workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  // NaN fails both comparisons, so it is refused too.
  if (!(move_gather_below >= 0 && move_gather_below <= 1)) {
    return Err{"--move-gather-below " + Fraction(move_gather_below) +
               ": must be a fraction of a core, 0 to 1"};
  }
  if (!(move_spread_above >= move_gather_below && move_spread_above <= 1)) {
    return Err{"--move-spread-above " + Fraction(move_spread_above) +
               ": must be a fraction of a core from --move-gather-below (" +
               Fraction(move_gather_below) +
               ") to 1; below it, pairs would gather and spread by turns"};
  }
  if (!mesh_with.empty() && mesh_psk_file.empty()) {
    return Err{"--mesh-with needs --mesh-psk-file: relays mesh only with the region's mesh key"};
  }
  debug_trusted_prefixes.clear();
  for (const std::string& cidr : debug_trusted_cidrs) {
    auto prefix = netaddr::ParsePrefix(cidr);
    if (!prefix) {
      return Err{"--debug-trusted-cidrs " + cidr + ": " +
                 std::string(netaddr::Describe(prefix.error()))};
    }
    debug_trusted_prefixes.push_back(*prefix);
  }
  if (!debug_addr.empty()) {
    auto dhp = netaddr::ParseHostPort(debug_addr);
    if (!dhp || (!dhp->host.empty() && !netaddr::ParseIp(dhp->host))) {
      return Err{"--debug-addr " + debug_addr + ": want ip:port, [v6]:port or :port"};
    }
    debug_listen_host = dhp->host;
    debug_listen_port = dhp->port;
  }
  for (const std::string& l : proxy_protocol) {
    if (l == "main") {
      proxy_main = true;
    } else if (l == "http") {
      proxy_http = true;
    } else if (l == "debug") {
      proxy_debug = true;
    } else {
      return Err{"--proxy-protocol " + l + ": listeners are main, http and debug"};
    }
  }
  if (send_queue_bytes < 64 * 1024 || send_queue_bytes > (std::int64_t{1} << 30)) {
    return Err{"--send-queue-bytes must be 65536..1073741824"};
  }
  if (send_queue_depth < 1 || send_queue_depth > 65536) {
    return Err{"--send-queue-depth must be 1..65536"};
  }
  if (std::isnan(accept_connection_limit) || accept_connection_limit < 0) {
    return Err{
        "--accept-connection-limit must be a number of connections per second, 0 or more "
        "(+Inf: unlimited)"};
  }
  if (accept_connection_burst < 0) return Err{"--accept-connection-burst must not be negative"};
  constexpr auto kMaxFrameMs = std::chrono::milliseconds(std::numeric_limits<std::uint32_t>::max());
  if (restart_reconnect_in.count() < 0 || restart_reconnect_in > kMaxFrameMs ||
      restart_try_for.count() < 0 || restart_try_for > kMaxFrameMs) {
    return Err{"--restart-reconnect-in and --restart-try-for must be 0 to 49 days"};
  }
  for (const std::string& entry : unpublished_bootstrap_dns_names) {
    if (entry.empty() || entry.front() == '/' || entry.back() == '/') {
      return Err{"--unpublished-bootstrap-dns-names " + entry + ": want name or name/txtname"};
    }
  }
  if (auto ok = admission.Validate(); !ok) return Err{ok.error()};
  return {};
}

}  // namespace derpkit::relay
