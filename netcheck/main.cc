// netcheck: `tailscale netcheck` for self-hosted DERP maps, without tailscaled. Flags → Config →
// DERP map (blocking load) → an io_context on the main thread running the report loop: one report,
// or with --every a report every D until SIGINT/SIGTERM. Everything runs on the main thread.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "lib/derpmap/source.h"
#include "lib/net/atomic_file.h"
#include "lib/util/duration.h"
#include "lib/util/go_flags.h"
#include "netcheck/config.h"
#include "netcheck/report_json.h"
#include "netcheck/report_text.h"
#include "netcheck/runner.h"
#include "netcheck/textfile.h"

namespace {

using derpkit::netcheck::Config;
using derpkit::netcheck::Report;
namespace derpmap = derpkit::derpmap;
namespace nc = derpkit::netcheck;

constexpr int kExitUsage = 2;
constexpr int kExitFailed = 1;

[[noreturn]] void Fail(int code, const std::string& message) {
  std::fprintf(stderr, "netcheck: %s\n", message.c_str());
  std::exit(code);
}

// Go's log.Printf look ("2026/11/30 05:12:01 netcheck: ..."), as the reference's --verbose lines.
void VerboseLine(const std::string& line) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &tm);
  std::fprintf(stderr, "%s netcheck: %s\n", stamp, line.c_str());
}

long LocalUtcOffsetSeconds(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  return tm.tm_gmtoff;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Loads the map as the flags say and says on stderr where it came from. Exits on failure: 2 when
// a source given with --derp-map cannot be used, 1 when the default sources fail.
derpmap::DerpMap LoadDerpMap(const Config& config) {
  derpmap::LoadOptions options;
  options.socket_path = config.socket_path;
  options.ca_file = config.ca_file;
  auto describe = [](const derpmap::DerpMap& m) {
    return std::to_string(m.regions.size()) + (m.regions.size() == 1 ? " region" : " regions");
  };
  if (!config.derp_map_sources.empty()) {
    auto map = derpmap::LoadMap(config.derp_map_sources, options);
    if (!map) Fail(kExitUsage, "cannot use the DERP map: " + map.error().ToString());
    std::fprintf(stderr, "netcheck: DERP map from %s: %s\n", Join(config.derp_map_sources).c_str(),
                 describe(*map).c_str());
    return std::move(*map);
  }
  std::string why_not_local = "no tailscaled socket at " + config.socket_path;
  struct stat st {};
  if (::stat(config.socket_path.c_str(), &st) == 0) {
    auto map = derpmap::LoadMap({"local"}, options);
    if (map && !map->regions.empty()) {
      std::fprintf(stderr, "netcheck: DERP map from tailscaled (local, %s): %s\n",
                   config.socket_path.c_str(), describe(*map).c_str());
      return std::move(*map);
    }
    why_not_local = map ? "tailscaled's DERP map has no regions" : map.error().ToString();
  }
  auto map = derpmap::LoadMap({derpmap::kTailscaleDefaultMapUrl}, options);
  if (!map) {
    Fail(kExitFailed, "cannot get a DERP map (" + why_not_local + "; " + map.error().ToString() +
                          "); pass one with --derp-map (a file, an https:// URL, or local)");
  }
  std::fprintf(stderr, "netcheck: %s; DERP map from %s: %s\n", why_not_local.c_str(),
               derpmap::kTailscaleDefaultMapUrl, describe(*map).c_str());
  return std::move(*map);
}

// Exit status for one report: 1 when no region could be measured or a --connect check failed.
int ExitCodeFor(const Report& report) {
  if (report.region_latency.empty()) return kExitFailed;
  if (report.connect) {
    for (const auto& c : *report.connect) {
      if (!c.ok) return kExitFailed;
    }
  }
  return 0;
}

struct LoopState {
  explicit LoopState(asio::io_context& io) : sleep(io), signals(io) {}
  asio::steady_timer sleep;
  asio::signal_set signals;
  bool stop = false;
};

asio::awaitable<int> ReportLoop(asio::io_context& io, const Config& config,
                                const derpmap::DerpMap& map, LoopState& loop) {
  nc::RunnerConfig rc;
  rc.bind_address = config.bind_address;
  rc.bind_port = static_cast<std::uint16_t>(config.bind_port);
  rc.verbose = config.verbose;
  rc.portmap = config.portmap;
  rc.captive = config.captive;
  rc.captive_port = static_cast<std::uint16_t>(config.captive_port);
  rc.hairpin = config.hairpin;
  rc.ca_file = config.ca_file;
  if (config.verbose) rc.vlog = VerboseLine;
  nc::Runner runner(io, rc);
  int code = 0;
  for (;;) {
    Report report = co_await runner.GetReport(map);
    if (config.connect) {
      nc::ConnectConfig cc;
      cc.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.connect_timeout);
      cc.ca_file = config.ca_file;
      std::vector<nc::ConnectEntry> entries =
          co_await nc::CheckConnectForReport(io, map, report, cc);
      report.connect = std::move(entries);
    }
    if (config.verbose) {
      VerboseLine(
          "report took " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(report.duration).count()) +
          "ms");
    }
    std::string out;
    switch (config.output_format()) {
      case nc::OutputFormat::kText: {
        nc::TextOptions options;
        options.verbose = config.verbose;
        options.utc_offset_seconds = LocalUtcOffsetSeconds(report.now);
        out = nc::RenderText(report, map, options);
        break;
      }
      case nc::OutputFormat::kJson:
        out = nc::RenderJson(report, nc::JsonStyle::kIndented) + "\n";
        break;
      case nc::OutputFormat::kJsonLine:
        out = nc::RenderJson(report, nc::JsonStyle::kLine) + "\n";
        break;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    code = ExitCodeFor(report);
    if (!config.textfile.empty()) {
      if (auto err =
              derpkit::net::WriteFileAtomically(config.textfile, nc::RenderTextfile(report, map))) {
        std::fprintf(stderr, "netcheck: --textfile: %s\n", err->c_str());
        code = kExitFailed;
      }
    }
    if (config.every.count() == 0 || loop.stop) break;
    loop.sleep.expires_after(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(config.every));
    co_await loop.sleep.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (loop.stop) break;
  }
  // With --every, a signal is the normal way to stop: that is a clean exit.
  co_return config.every.count() > 0 ? 0 : code;
}

void WatchSignals(LoopState& loop) {
  loop.signals.async_wait([&loop](std::error_code ec, int) {
    if (ec) return;  // cancelled: the loop ended by itself
    if (loop.stop) {
      std::fprintf(stderr, "netcheck: second signal; exiting now\n");
      std::_Exit(130);
    }
    loop.stop = true;
    loop.sleep.cancel();
    WatchSignals(loop);  // a second signal does not wait for the report in progress
  });
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  std::string every = "0s";
  std::string connect_timeout = "5s";
  CLI::App app{
      "netcheck: how this host reaches a DERP map's relays (UDP/STUN, public addresses, NAT "
      "behaviour, port mapping, captive portals, latency and the nearest region), like "
      "`tailscale netcheck` but with any DERP map and no tailscaled.",
      "netcheck"};
  app.footer(
      "Examples:\n"
      "  netcheck --derp-map https://derp.example.com/derpmap.json\n"
      "  netcheck --derp-map derpmap.json --derp-map headscale-derp.yaml --format json --connect\n"
      "  netcheck --derp-map local --every 5m --textfile /var/lib/node_exporter/netcheck.prom\n"
      "\n"
      "Exit status: 0 a report was made; 1 no region could be measured, a --connect check or the\n"
      "--textfile write failed, or the default map sources failed; 2 bad flags or an unusable\n"
      "--derp-map. With --every, SIGINT or SIGTERM ends the loop with 0.");
  app.add_option("--derp-map", config.derp_map_sources,
                 "DERP map source, repeatable and merged in order: \"local\" (tailscaled's "
                 "LocalAPI), an http(s):// URL, or a file (tailcfg JSON or Headscale YAML). "
                 "Default: local when tailscaled's socket exists, else Tailscale's public map.")
      ->type_name("SRC")
      ->allow_extra_args(false);
  app.add_option("--socket", config.socket_path, "tailscaled's LocalAPI socket, for \"local\".")
      ->capture_default_str();
  app.add_option("--format", config.format,
                 "Output format: text (the default, like tailscale netcheck), json (indented) or "
                 "json-line (one line per report).");
  app.add_option("--every", every,
                 "If non-zero, make a report this often (Go duration, e.g. 30s, 5m) until "
                 "SIGINT/SIGTERM; later reports are incremental, with a full one every 5 minutes.")
      ->capture_default_str();
  app.add_flag("--verbose", config.verbose,
               "Log every probe to stderr, measure every region instead of stopping after the "
               "fastest three, and never skip the captive-portal check.");
  app.add_option("--bind-address", config.bind_address,
                 "Local IP address for the probe sockets; empty means any.");
  app.add_option("--bind-port", config.bind_port,
                 "Local UDP port for the STUN sockets (both families); 0 means an ephemeral port.")
      ->capture_default_str();
  app.add_option("--textfile", config.textfile,
                 "After each report, write it as Prometheus metrics (netcheck_*) to this file for "
                 "node_exporter's textfile collector; replaced atomically.");
  app.add_flag("--portmap", config.portmap,
               "Ask the default gateway for UPnP, NAT-PMP and PCP; default true (--portmap=false "
               "sends nothing to the gateway).")
      ->capture_default_str();
  app.add_flag("--captive", config.captive,
               "On full reports, check for a captive portal with GET /generate_204 on nodes with "
               "CanPort80; default true (--captive=false skips it).")
      ->capture_default_str();
  app.add_option("--captive-port", config.captive_port,
                 "HTTP port of the DERP nodes for the captive-portal check (80 in real use).")
      ->capture_default_str();
  app.add_flag("--hairpin", config.hairpin,
               "Check whether the NAT hairpins (a packet to our own public IPv4 endpoint comes "
               "back); default true (--hairpin=false skips it).")
      ->capture_default_str();
  app.add_flag("--connect", config.connect,
               "Also make a real DERP connection to each measured region and send a packet "
               "through it, flagging relays that only work over WebSocket and regions whose "
               "nodes present different server keys.");
  app.add_option("--connect-timeout", connect_timeout,
                 "Per region bound for --connect (Go duration).")
      ->capture_default_str();
  app.add_option("--ca-file", config.ca_file,
                 "PEM file of extra trust anchors for TLS to map URLs and DERP nodes; empty uses "
                 "the system roots.");
  try {
    // Like `tailscale netcheck` (Go flags), -format json works as well as --format json.
    const std::vector<std::string> args = derpkit::NormalizeGoFlags(argc, argv);
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    Fail(kExitUsage, std::string(e.what()) + " (see --help)");
  }
  auto parsed_every = derpkit::ParseGoDuration(every);
  if (!parsed_every) {
    Fail(kExitUsage,
         "--every " + every + ": " + std::string(derpkit::Describe(parsed_every.error())));
  }
  config.every = *parsed_every;
  auto parsed_timeout = derpkit::ParseGoDuration(connect_timeout);
  if (!parsed_timeout) {
    Fail(kExitUsage, "--connect-timeout " + connect_timeout + ": " +
                         std::string(derpkit::Describe(parsed_timeout.error())));
  }
  config.connect_timeout = *parsed_timeout;
  if (auto problem = config.Validate()) Fail(kExitUsage, *problem);

  if (config.output_format() != nc::OutputFormat::kText) {
    std::fprintf(stderr, "# Warning: this JSON format is not yet considered a stable interface\n");
  }
  // The signals are taken before anything slow (reading or fetching the DERP map): a SIGINT that
  // came while the map loaded once killed the process (exit 130) instead of ending the loop.
  asio::io_context io;
  LoopState loop(io);
  if (config.every.count() > 0) {
    loop.signals.add(SIGINT);
    loop.signals.add(SIGTERM);
    WatchSignals(loop);
  }
  const derpmap::DerpMap map = LoadDerpMap(config);
  if (map.regions.empty()) Fail(kExitFailed, "the DERP map has no regions");
  int code = kExitFailed;
  asio::co_spawn(io, ReportLoop(io, config, map, loop), [&](std::exception_ptr e, int rc) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "netcheck: %s\n", ex.what());
      }
      rc = kExitFailed;
    }
    code = rc;
    std::error_code ignored;
    loop.signals.cancel(ignored);
  });
  io.run();
  return code;
}
