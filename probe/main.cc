// derp-probe: derpprobe for any DERP map. Flags -> ProbeConfig -> a Prober on an io_context run
// by the main thread; in daemon mode an HttpServer (its own threads) serves the status page,
// metrics and the run-now endpoints until SIGINT/SIGTERM; with --once every probe runs once and
// the table (or JSON), the textfile and the push come out, then the exit status.
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/derpmap/source.h"
#include "lib/net/atomic_file.h"
#include "lib/net/key_file.h"
#include "lib/net/log.h"
#include "lib/util/duration.h"
#include "lib/util/go_flags.h"
#include "probe/config.h"
#include "probe/http_server.h"
#include "probe/metrics.h"
#include "probe/once_report.h"
#include "probe/prober.h"
#include "probe/push.h"

#ifndef DERPKIT_VERSION
#define DERPKIT_VERSION "dev"
#endif

namespace {

namespace probe = derpkit::probe;
namespace derp = derpkit::derp;
namespace derpmap = derpkit::derpmap;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

[[noreturn]] void Fail(int code, const std::string& message) {
  std::fprintf(stderr, "derp-probe: %s\n", message.c_str());
  std::exit(code);
}

std::string ReadFileOrFail(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(kExitUsage, flag + " " + path + ": cannot read it");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The receiver's fixed key, derived from the sender's so that one key file gives the prober the
// two stable identities a mesh probe needs (two clients with one key would deliver to each
// other's connection). Operators allow both public keys; main prints them.
derp::PrivateKey DeriveReceiverKey(const derp::PrivateKey& sender) {
  static constexpr char kLabel[] = "derp-probe receiver key v1";
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(kLabel), sizeof kLabel - 1);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(sender.bytes.data()),
                            sender.bytes.size());
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  out[0] &= 248;
  out[31] = static_cast<unsigned char>((out[31] & 127) | 64);
  return derp::PrivateKey::FromRaw(
      derpkit::ByteSpan(reinterpret_cast<const std::byte*>(out), sizeof out));
}

std::chrono::milliseconds DurationFlag(const std::string& flag, const std::string& text) {
  auto d = derpkit::ParseGoDuration(text);
  if (!d) Fail(kExitUsage, flag + " " + text + ": " + std::string(derpkit::Describe(d.error())));
  return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::vector<std::string> DefaultSources(const std::string& socket_path) {
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) == 0) return {"local"};
  return {derpmap::kTailscaleDefaultMapUrl};
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  probe::ProbeConfig config;
  std::string map_interval = "15s", tls_interval = "15s", stun_interval = "15s",
              mesh_interval = "15s", bw_interval = "0s", qd_timeout = "5s", qd_once = "5s",
              expiry_warning = "168h", fail_on, regions;
  std::vector<std::string> region_codes;
  bool version = false;

  CLI::App app{
      "derp-probe: checks every node of a DERP map (TLS and certificate expiry, STUN over IPv4 "
      "and IPv6, packet delivery through each relay and across each region's mesh, optional "
      "bandwidth and queuing delay), like Tailscale's derpprobe, for any map: Tailscale's, "
      "Headscale's YAML, a URL, or the local tailscaled's. As a daemon it serves a status page "
      "and Prometheus metrics; with --once it runs every probe once for cron.",
      "derp-probe"};
  app.footer(
      "Examples:\n"
      "  derp-probe --derp-map https://headscale.example.com/derp.json --listen :8030\n"
      "  derp-probe --derp-map /etc/headscale/derp.yaml --once\n"
      "  derp-probe --derp-map local --once --json --textfile /var/lib/node_exporter/derp.prom\n"
      "\n"
      "Exit status with --once: 0 every probe passed; 1 a probe of a --fail-on kind failed (or\n"
      "the textfile or push failed); 2 bad flags or an unusable DERP map.");
  app.add_option("--derp-map", config.derp_map_sources,
                 "DERP map source, repeatable and merged in order: \"local\" (tailscaled's "
                 "LocalAPI), an http(s):// or file:// URL, or a file (tailcfg JSON or Headscale "
                 "YAML). Default: local when tailscaled's socket exists, else Tailscale's map.")
      ->type_name("SRC");
  app.add_option("--socket", config.socket_path, "tailscaled's LocalAPI socket, for \"local\".")
      ->capture_default_str();
  app.add_option("--ca-file", config.ca_file,
                 "PEM file of extra trust anchors for map URLs and DERP nodes; empty uses the "
                 "system roots.");
  app.add_option("--listen", config.listen,
                 "HTTP address of the status page, /metrics and /debug/ (daemon mode).")
      ->capture_default_str();
  app.add_flag("--once", config.once,
               "Run every probe once, print a table (or --json), and exit 0 when all passed, 1 "
               "when one failed, 2 on bad flags or map errors.");
  app.add_flag("--json", config.json, "With --once: print JSON instead of the table.");
  app.add_option("--textfile", config.textfile,
                 "Write the metrics to this file for node_exporter's textfile collector "
                 "(replaced atomically): after the --once run, or after every map refresh.");
  app.add_option("--push-url", config.push_url,
                 "With --once: push the metrics to this Prometheus Pushgateway "
                 "(e.g. http://pushgateway:9091), grouped by job and instance (this host).");
  app.add_option("--push-job", config.push_job, "The Pushgateway job name.")->capture_default_str();
  app.add_option("--fail-on", fail_on,
                 "With --once: comma list of probe kinds whose failure fails the run (derpmap, "
                 "tls, udp, udp6, mesh, bw, qd); empty means all.");
  app.add_option("--interval,--map-interval", map_interval,
                 "How often to fetch the DERP map and add or remove probes to match it (Go "
                 "duration).")
      ->capture_default_str();
  app.add_option("--tls-interval", tls_interval,
                 "TLS probe interval (Go duration); 0 disables TLS probes.")
      ->capture_default_str();
  app.add_option("--stun-interval", stun_interval,
                 "STUN (udp, udp6) probe interval; 0 disables them.")
      ->capture_default_str();
  app.add_option("--mesh-interval", mesh_interval,
                 "Mesh probe interval (a packet between every ordered pair of a region's nodes, "
                 "each node with itself included); 0 disables them.")
      ->capture_default_str();
  app.add_option("--bw-interval", bw_interval,
                 "Bandwidth probe interval; 0 (the default) disables them.")
      ->capture_default_str();
  app.add_option("--bw-probe-size-bytes", config.bw_size_bytes, "Bytes each bandwidth probe moves.")
      ->capture_default_str();
  app.add_option("--qd-packets-per-second", config.qd_packets_per_second,
                 "Packets per second of the continuous queuing-delay probes; 0 (the default) "
                 "disables them.")
      ->capture_default_str();
  app.add_option("--qd-packet-timeout", qd_timeout,
                 "A queuing-delay packet later than this counts as dropped (Go duration).")
      ->capture_default_str();
  app.add_option("--qd-once-duration", qd_once,
                 "With --once: how long each queuing-delay probe sends (Go duration).")
      ->capture_default_str();
  app.add_option("--regions", regions,
                 "Comma list of region codes or ids to probe; empty means every region.");
  app.add_option("--region-code", region_codes,
                 "Probe this region (code or id), as derpprobe's flag; repeatable, adds to "
                 "--regions.");
  app.add_option("--tls-expiry-warning", expiry_warning,
                 "A TLS probe fails when a certificate expires within this long (Go duration).")
      ->capture_default_str();
  app.add_flag("--spread", config.spread,
               "Spread each probe's first run over its interval (deterministic per probe); "
               "--spread=false starts them all at once.")
      ->capture_default_str();
  app.add_option("--max-concurrent", config.max_concurrent,
                 "How many probe runs may be in progress at once.")
      ->capture_default_str();
  app.add_option("--key-file", config.key_file,
                 "Key file (derper's format) giving the prober fixed client keys, so relays that "
                 "verify clients can allow them; created (mode 0600) when missing. Both public "
                 "keys (sender and receiver) are printed at start.");
  app.add_option("--mesh-psk-file", config.mesh_psk_file,
                 "File holding the region's mesh key (64 hex digits): mesh, bw and qd clients "
                 "present it, so they pass relays that verify clients.");
  app.add_flag("--dev", config.dev,
               "Read the mesh key from the TAILSCALE_DERPER_MESH_KEY environment variable, as "
               "derpprobe --dev does.");
  app.add_flag("-v,--verbose", config.verbose, "Log every probe run, not only changes.");
  app.add_flag("--version", version, "Print the version and exit.");
  try {
    const std::vector<std::string> args = derpkit::NormalizeGoFlags(argc, argv);
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    Fail(kExitUsage, std::string(e.what()) + " (see --help)");
  }
  if (version) {
    std::printf("derp-probe %s\n", DERPKIT_VERSION);
    return 0;
  }
  config.map_interval = DurationFlag("--interval", map_interval);
  config.tls_interval = DurationFlag("--tls-interval", tls_interval);
  config.stun_interval = DurationFlag("--stun-interval", stun_interval);
  config.mesh_interval = DurationFlag("--mesh-interval", mesh_interval);
  config.bw_interval = DurationFlag("--bw-interval", bw_interval);
  config.qd_packet_timeout = DurationFlag("--qd-packet-timeout", qd_timeout);
  config.qd_once_duration = DurationFlag("--qd-once-duration", qd_once);
  config.tls_expiry_warning = std::chrono::duration_cast<std::chrono::seconds>(
      DurationFlag("--tls-expiry-warning", expiry_warning));
  config.regions = probe::SplitCommaList(regions);
  for (const std::string& r : region_codes) config.regions.push_back(r);
  if (!fail_on.empty()) {
    auto kinds = probe::ParseFailOn(fail_on);
    if (!kinds) Fail(kExitUsage, kinds.error());
    config.fail_on = *kinds;
  }
  if (auto problems = config.Validate(); !problems.empty()) {
    for (const std::string& p : problems) std::fprintf(stderr, "derp-probe: %s\n", p.c_str());
    return kExitUsage;
  }
  if (sodium_init() < 0) Fail(kExitFailed, "libsodium failed to initialise");
  // --once prints its table; the log then only adds what went wrong (or everything, --verbose).
  derpkit::log::SetMinLevel(config.verbose ? derpkit::log::Level::kDebug
                            : config.once  ? derpkit::log::Level::kWarn
                                           : derpkit::log::Level::kInfo);

  probe::ProberOptions options;
  options.sources = config.derp_map_sources.empty() ? DefaultSources(config.socket_path)
                                                    : config.derp_map_sources;
  options.load.socket_path = config.socket_path;
  options.load.ca_file = config.ca_file;
  options.plan.tls_interval = config.tls_interval;
  options.plan.stun_interval = config.stun_interval;
  options.plan.mesh_interval = config.mesh_interval;
  options.plan.bw_interval = config.bw_interval;
  options.plan.bw_size_bytes = config.bw_size_bytes;
  options.plan.qd_packets_per_second = config.qd_packets_per_second;
  options.plan.regions = config.regions;
  options.map_interval = config.map_interval;
  options.spread = config.spread;
  options.max_concurrent = config.max_concurrent;
  options.derp.ca_file = config.ca_file;
  options.tls_expiry_warning = config.tls_expiry_warning;
  options.qd_packet_timeout = config.qd_packet_timeout;
  options.qd_packets_per_second = config.qd_packets_per_second;
  options.qd_once_duration = config.qd_once_duration;
  options.version = DERPKIT_VERSION;
  options.log_every_run = config.verbose;

  std::string mesh_key_text;
  if (config.dev) {
    const char* env = std::getenv("TAILSCALE_DERPER_MESH_KEY");
    if (env == nullptr || *env == '\0')
      Fail(kExitUsage, "--dev: TAILSCALE_DERPER_MESH_KEY is not set");
    mesh_key_text = env;
  } else if (!config.mesh_psk_file.empty()) {
    mesh_key_text = ReadFileOrFail("--mesh-psk-file", config.mesh_psk_file);
  }
  if (!mesh_key_text.empty()) {
    auto key = derp::MeshKey::Parse(mesh_key_text);
    if (!key || key->IsZero()) {
      Fail(kExitUsage, (config.dev ? std::string("TAILSCALE_DERPER_MESH_KEY")
                                   : "--mesh-psk-file " + config.mesh_psk_file) +
                           ": not a mesh key (want 64 hex digits, not all zero)");
    }
    options.derp.mesh_key = *key;
  }
  if (!config.key_file.empty()) {
    try {
      auto loaded = derpkit::net::LoadOrCreateKeyFile(config.key_file);
      options.derp.sender_key = loaded.key;
      options.derp.receiver_key = DeriveReceiverKey(loaded.key);
      std::fprintf(stderr,
                   "derp-probe: %s key file %s; allow these client keys on relays that verify "
                   "clients:\n  %s (sender)\n  %s (receiver)\n",
                   loaded.created ? "created" : "using", config.key_file.c_str(),
                   loaded.key.Public().ToText().c_str(),
                   options.derp.receiver_key->Public().ToText().c_str());
    } catch (const std::exception& e) {
      Fail(kExitUsage, std::string("--key-file: ") + e.what());
    }
  }

  asio::io_context io;
  std::unique_ptr<probe::Prober> prober;
  if (!config.once && !config.textfile.empty()) {
    options.after_map_probe = [&prober, &config] {
      if (auto err = derpkit::net::WriteFileAtomically(config.textfile,
                                                       probe::RenderMetrics(prober->Snapshot()))) {
        LOG_WARN("derp-probe: --textfile: %s", err->c_str());
      }
    };
  }
  prober = std::make_unique<probe::Prober>(io, options);

  if (config.once) {
    bool map_ok = false;
    asio::co_spawn(io, prober->RunOnce(), [&](std::exception_ptr e, bool ok) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "derp-probe: %s\n", ex.what());
        }
      }
      map_ok = !e && ok;
    });
    io.run();
    const probe::ProberSnapshot snapshot = prober->Snapshot();
    int code = 0;
    if (!map_ok) {
      std::string why = "cannot fetch the DERP map";
      for (const auto& p : snapshot.probes) {
        if (p.spec.kind == probe::ProbeKind::kDerpMap && p.last) why = p.last->error;
      }
      std::fprintf(stderr, "derp-probe: %s\n", why.c_str());
      code = kExitUsage;
    }
    const std::string out =
        config.json ? probe::RenderOnceJson(snapshot)
                    : probe::RenderOnceTable(
                          snapshot, probe::OnceOptions{.colour = ::isatty(STDOUT_FILENO) != 0});
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    if (code == 0 && probe::RunFailed(snapshot, config.fail_on)) code = kExitFailed;
    if (!config.textfile.empty()) {
      if (auto err =
              derpkit::net::WriteFileAtomically(config.textfile, probe::RenderMetrics(snapshot))) {
        std::fprintf(stderr, "derp-probe: --textfile: %s\n", err->c_str());
        if (code == 0) code = kExitFailed;
      }
    }
    if (!config.push_url.empty()) {
      probe::PushOptions push;
      push.url = config.push_url;
      push.job = config.push_job;
      push.grouping_labels = {{"instance", HostName()}};
      if (auto err = probe::PushMetrics(push, snapshot)) {
        std::fprintf(stderr, "derp-probe: --push-url: %s\n", err->c_str());
        if (code == 0) code = kExitFailed;
      }
    }
    return code;
  }

  std::unique_ptr<probe::HttpServer> http;
  try {
    http = std::make_unique<probe::HttpServer>(*prober, config.listen);
  } catch (const std::exception& e) {
    Fail(kExitUsage, e.what());
  }
  LOG_INFO(
      "derp-probe %s: probing %s; status page on %s (port %u)", DERPKIT_VERSION,
      [&] {
        std::string s;
        for (const auto& src : options.sources) s += (s.empty() ? "" : ", ") + src;
        return s;
      }()
          .c_str(),
      config.listen.c_str(), http->port());
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int sig) {
    if (ec) return;
    LOG_INFO("derp-probe: signal %d, stopping", sig);
    prober->Stop();
    io.stop();
  });
  prober->Start();
  io.run();
  http->Stop();
  return 0;
}
