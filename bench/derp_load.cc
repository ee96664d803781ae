// derp-load: drives client pairs through a DERP relay and reports what got through.
//
// Throughput mode: N pairs (A -> B, one direction per pair) send packets of a fixed size at an
// aggregate offered rate or as fast as the sockets accept. After a warm-up, a measurement window
// of --duration starts; we count
//   sent      = payload bits of packets written during the window / window length
//   delivered = payload bits of packets read during the window / window length
//   loss      = 1 - (packets stamped inside the window that arrived by the end of a short drain
//                    period) / (packets written during the window)
// and, with --relay-pid, the relay's CPU seconds over the window and "Mbit relayed per relay
// CPU-second": the figure that stays fair when this tool shares the machine's cores with the
// relay. Two senders (bench/paced_flows.h, bench/bursty_sender.h): the paced one (default) wakes
// every millisecond on an event loop and writes what is due in one write (or one write per frame
// with --tls-record-per-frame); the bursty one is a thread per pair on a blocking socket, one
// write() per frame, coarse ~1 ms sleeps, as a simple C load generator does.
//
// Latency mode (bench/latency_flows.h): one dedicated pair exchanges 64-byte packets: A stamps and
// sends one every --interval, B echoes each back, A records the round trip. Optionally beside a
// background load of --pairs pairs at --background-mbps.
//
// WebSocket burst mode (bench/ws_burst.h): two WebSocket clients burst at each other, --tries
// times; lost packets per try.
//
// How it stays out of the way: clients connect with derpclient::Client, then the data path
// reads and writes the Client's net::Stream directly. Frames are built once per pair (header,
// destination key, payload) and only the 16-byte stamp in each payload is rewritten before a
// batch leaves; receivers cut frames out of a FrameReader without copying. Pairs are spread over
// --threads event loops. Taking over the stream is safe because it happens after Recv() has
// returned ServerInfo and before anything is sent to that client: the relay sends nothing else
// unprompted for 60 s, so the Client's own frame reader holds no further bytes.
//
// Threads: main parses flags, runs the connect phase and the run on event-loop threads (and, for
// the bursty sender, one thread per pair), joins them all, then reports.
#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/bursty_sender.h"
#include "bench/event_loops.h"
#include "bench/latency_flows.h"
#include "bench/load_config.h"
#include "bench/load_flow.h"
#include "bench/paced_flows.h"
#include "bench/proc_stats.h"
#include "bench/report.h"
#include "bench/round_trips.h"
#include "bench/ws_burst.h"
#include "lib/derpclient/client.h"
#include "lib/net/stream.h"

namespace derpkit::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kTool = kLoadTool;

struct Pair {
  std::unique_ptr<derpclient::Client> a, b;
  Loop* loop = nullptr;
  FlowStats stats;
  std::optional<BlockingWriter> bursty;  // --sender bursty: A's stream, taken over
};

struct LatencyResult {
  std::vector<std::int64_t> rtt_ns;
  FlowStats stats;  // sent_packets = pings sent in the window, arrived_packets = echoes back
};

struct RelayUsage {
  std::optional<double> cpu_seconds;
  std::optional<std::uint64_t> rss_bytes;
  std::string error;
};

struct Totals {
  FlowStats flows;
  std::vector<std::string> errors;
};

Totals Sum(const std::vector<std::unique_ptr<Pair>>& pairs) {
  Totals t;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const FlowStats& s = pairs[i]->stats;
    t.flows.sent_packets += s.sent_packets;
    t.flows.sent_bytes += s.sent_bytes;
    t.flows.arrived_packets += s.arrived_packets;
    t.flows.received_bytes += s.received_bytes;
    t.flows.received_packets += s.received_packets;
    t.flows.other_frames += s.other_frames;
    t.flows.frames_written += s.frames_written;
    t.flows.write_calls += s.write_calls;
    if (!s.error.empty()) t.errors.push_back("pair " + std::to_string(i) + ": " + s.error);
    if (!s.send_error.empty()) {
      t.errors.push_back("pair " + std::to_string(i) + " (bursty sender): " + s.send_error);
    }
  }
  return t;
}

double LossPercent(std::uint64_t sent, std::uint64_t arrived) {
  if (sent == 0) return 0;
  // Duplicates cannot happen through a relay, but never print a negative loss.
  return 100.0 * static_cast<double>(sent - std::min(sent, arrived)) / static_cast<double>(sent);
}

double Mbps(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e6 : 0;
}

int Main(int argc, char** argv) {
  // A bursty sender writes with write(2) (TLS: OpenSSL's socket BIO, also write(2)), which raises
  // SIGPIPE on a connection the relay closed; we want the EPIPE, reported as a connection error.
  std::signal(SIGPIPE, SIG_IGN);
  LoadConfig cfg;
  std::string mode = "throughput", sender = "paced", duration = "5s", warmup = "1s",
              drain = "500ms", interval = "1ms", connect_timeout = "10s", burst_wait = "2s";
  bool unpaced = false;
  CLI::App app{
      "derp-load: drives client pairs through a DERP relay (ours or Tailscale's derper, plain or "
      "TLS) and reports offered, sent and delivered Mbit/s, loss, and the relay's CPU use; or, "
      "with --mode latency, round-trip percentiles of 64-byte packets; or, with --mode "
      "ws-burst, what two WebSocket clients lose when both burst at once.\n"
      "Rates count DERP packet payload bits (--size bytes per packet), not frame or TCP "
      "overhead."};
  app.footer(
      "Examples:\n"
      "  derp-load --url http://127.0.0.1:3340/derp --pairs 10 --size 1400 --rate-mbps 1000 \\\n"
      "            --duration 5s --relay-pid $(pidof derp-relay)\n"
      "  derp-load --url https://localhost:8443/derp --ca-file certs/localhost.crt \\\n"
      "            --dial-host 127.0.0.1 --unpaced --json\n"
      "  derp-load --url http://127.0.0.1:3340/derp --mode latency --background-mbps 1000\n"
      "  derp-load --url http://127.0.0.1:3340/derp --sender bursty --rate-mbps 2000\n"
      "  derp-load --url https://localhost:8443/derp --insecure --tls-record-per-frame \\\n"
      "            --rate-mbps 1000\n"
      "  derp-load --url wss://localhost:8443/derp --insecure --mode ws-burst --tries 20\n"
      "Exit status: 0 when the run completed, 1 when a connection failed, 2 for bad flags.");
  app.option_defaults()->always_capture_default();
  app.add_option("-u,--url", cfg.url,
                 "DERP URL: http://host:port/derp or https://host:port/derp (ws-burst also takes "
                 "ws:// and wss://; it always speaks WebSocket).")
      ->required();
  app.add_option("--dial-host", cfg.dial_host,
                 "Connect to this address instead of the URL's host (the URL's host stays the TLS "
                 "name and the Host header).");
  app.add_option("--ca-file", cfg.ca_file,
                 "PEM file of trusted certificates for TLS (a self-signed relay's .crt works).");
  app.add_flag("--insecure", cfg.insecure, "Do not verify the relay's TLS certificate.");
  app.add_option("--mode", mode, "throughput, latency or ws-burst.")
      ->check(CLI::IsMember({"throughput", "latency", "ws-burst"}));
  app.add_option("--sender", sender,
                 "Throughput mode: paced (an event loop per --threads; every 1 ms the frames due "
                 "leave in one write) or bursty (a thread per pair on a blocking socket: every "
                 "~1 ms nanosleep, each due frame its own write(), over TLS its own SSL_write).")
      ->check(CLI::IsMember({"paced", "bursty"}));
  app.add_flag("--tls-record-per-frame", cfg.tls_record_per_frame,
               "Paced sender: write every frame on its own, so that over TLS each frame is one "
               "TLS record (as Tailscale's Go client writes); over plain TCP one write per frame. "
               "The bursty sender always does.");
  app.add_option("-p,--pairs", cfg.pairs,
                 "Client pairs carrying load (each pair: client A sends to client B).");
  auto* size = app.add_option("-s,--size", cfg.size_bytes,
                              "Packet (payload) size in bytes, 16..65536 (ws-burst: 600 unless "
                              "given).");
  auto* rate = app.add_option("-r,--rate-mbps", cfg.rate_mbps,
                              "Aggregate offered rate in Mbit/s, split evenly over the pairs and "
                              "paced per pair; 0 = unpaced.");
  app.add_flag("--unpaced", unpaced, "Send as fast as the sockets accept (same as --rate-mbps 0).")
      ->excludes(rate);
  app.add_option("-d,--duration", duration, "Measurement window (Go duration).");
  app.add_option("--warmup", warmup, "Load before the window starts, not counted.");
  app.add_option("--drain", drain,
                 "After the window, how long packets sent inside it may still arrive before they "
                 "count as lost.");
  app.add_option("-t,--threads", cfg.threads,
                 "Event-loop threads for the load pairs (pairs are spread round-robin). On a "
                 "machine shared with the relay, compare Mbit per relay CPU-second.");
  app.add_option("--relay-pid", cfg.relay_pid,
                 "Process id of the relay (same machine): report its CPU seconds and RSS over the "
                 "window.");
  app.add_option("--connect-timeout", connect_timeout, "Bound on each client's connection set-up.");
  app.add_flag("--json", cfg.json, "Print one JSON object instead of the table.");
  app.add_option("--samples", cfg.samples, "Latency mode: round trips to measure.");
  app.add_option("--interval", interval, "Latency mode: time between pings (Go duration).");
  app.add_option("--background-mbps", cfg.background_mbps,
                 "Latency mode: run --pairs load pairs at this aggregate rate beside the "
                 "latency pair (0 = idle relay).");
  app.add_option("--tries", cfg.tries, "ws-burst: bursts to run, one after another.");
  app.add_option("--burst-packets", cfg.burst_packets,
                 "ws-burst: packets each client sends the other per burst.");
  app.add_option("--burst-wait", burst_wait,
                 "ws-burst: how long after a burst starts its packets may arrive before they "
                 "count as lost (Go duration).");
  if (!ParseFlags(app, argc, argv, kTool)) return 0;
  if (unpaced) cfg.rate_mbps = 0;
  cfg.mode = mode == "latency"    ? LoadMode::kLatency
             : mode == "ws-burst" ? LoadMode::kWsBurst
                                  : LoadMode::kThroughput;
  cfg.sender = sender == "bursty" ? SenderKind::kBursty : SenderKind::kPaced;
  if (cfg.mode == LoadMode::kWsBurst && size->count() == 0) cfg.size_bytes = 600;
  cfg.duration = ParseDurationFlag(kTool, "duration", duration);
  cfg.warmup = ParseDurationFlag(kTool, "warmup", warmup);
  cfg.drain = ParseDurationFlag(kTool, "drain", drain);
  cfg.interval = ParseDurationFlag(kTool, "interval", interval);
  cfg.connect_timeout = ParseDurationFlag(kTool, "connect-timeout", connect_timeout);
  cfg.burst_wait = ParseDurationFlag(kTool, "burst-wait", burst_wait);
  if (auto ok = cfg.Validate(); !ok) FailUsage(kTool, ok.error());
  if (cfg.relay_pid != 0) {
    if (auto ok = CheckProcess(cfg.relay_pid); !ok) FailUsage(kTool, "--relay-pid: " + ok.error());
  }
  if (cfg.mode == LoadMode::kWsBurst) return RunWsBurst(cfg);

  derpclient::ClientOptions base;
  base.url = cfg.url;
  base.dial_host = cfg.dial_host;
  base.tls.ca_file = cfg.ca_file;
  base.tls.insecure = cfg.insecure;
  base.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.connect_timeout);

  const int load_pairs = cfg.load_pairs();
  const int load_threads = std::min(cfg.threads, load_pairs);
  std::vector<std::unique_ptr<Loop>> loops;
  for (int i = 0; i < load_threads; ++i) loops.push_back(std::make_unique<Loop>());
  // The latency pair gets a loop of its own so that bulk senders don't delay its wake-ups.
  Loop* latency_loop = nullptr;
  if (cfg.mode == LoadMode::kLatency) {
    loops.push_back(std::make_unique<Loop>());
    latency_loop = loops.back().get();
  }
  const bool bursty = cfg.sender == SenderKind::kBursty;
  // `closed_at_stop`: the loop closes the client at the end of the run. A bursty sender's client
  // is closed by main instead, once its thread has been joined.
  auto make_client = [&](Loop& loop, bool closed_at_stop = true) {
    derpclient::ClientOptions o = base;
    o.key = derp::PrivateKey::Generate();  // the default member initialiser ran once, for `base`
    auto c = std::make_unique<derpclient::Client>(loop.io, std::move(o));
    if (closed_at_stop) loop.clients.push_back(c.get());
    return c;
  };
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < load_pairs; ++i) {
    auto p = std::make_unique<Pair>();
    p->loop = loops[static_cast<std::size_t>(i % load_threads)].get();
    p->a = make_client(*p->loop, !bursty);
    p->b = make_client(*p->loop);
    pairs.push_back(std::move(p));
  }
  std::unique_ptr<Pair> latency_pair;
  if (latency_loop) {
    latency_pair = std::make_unique<Pair>();
    latency_pair->loop = latency_loop;
    latency_pair->a = make_client(*latency_loop);
    latency_pair->b = make_client(*latency_loop);
  }

  // Phase 1: connect everyone and wait for every ServerInfo, so that every B is registered at
  // the relay before any A sends (otherwise early packets are dropped as unknown_dest).
  std::vector<std::pair<std::string, std::string>> connect_errors;  // (who, why)
  std::vector<std::unique_ptr<std::string>> errors;
  std::vector<std::string> names;
  auto connect = [&](derpclient::Client& c, Loop& loop, std::string name) {
    errors.push_back(std::make_unique<std::string>());
    names.push_back(std::move(name));
    asio::co_spawn(loop.io, ConnectOne(c, cfg.connect_timeout, *errors.back()), asio::detached);
  };
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    connect(*pairs[i]->a, *pairs[i]->loop, "pair " + std::to_string(i) + " sender");
    connect(*pairs[i]->b, *pairs[i]->loop, "pair " + std::to_string(i) + " receiver");
  }
  if (latency_pair) {
    connect(*latency_pair->a, *latency_loop, "latency pinger");
    connect(*latency_pair->b, *latency_loop, "latency echoer");
  }
  const auto connect_started = Clock::now();
  RunLoops(loops);
  const double connect_seconds =
      std::chrono::duration<double>(Clock::now() - connect_started).count();
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (!errors[i]->empty()) connect_errors.emplace_back(names[i], *errors[i]);
  }
  if (!connect_errors.empty()) {
    std::fprintf(stderr, "%s: %zu of %zu clients failed to connect to %s; first: %s: %s\n",
                 kTool.data(), connect_errors.size(), errors.size(), cfg.url.c_str(),
                 connect_errors[0].first.c_str(), connect_errors[0].second.c_str());
    return 1;
  }
  const bool tls = (pairs.empty() ? latency_pair->a : pairs[0]->a)->stream()->is_tls();
  if (bursty) {
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      auto writer = BlockingWriter::TakeOver(*pairs[i]->a->stream());
      if (!writer) {
        std::fprintf(stderr, "%s: pair %zu sender: %s\n", kTool.data(), i, writer.error().c_str());
        return 1;
      }
      pairs[i]->bursty.emplace(std::move(*writer));
    }
  }

  // Phase 2: the run.
  Window w;
  w.start = Clock::now() + 20ms;
  w.measure_start = w.start + cfg.warmup;
  const auto window_length =
      cfg.mode == LoadMode::kLatency ? cfg.interval * cfg.samples : cfg.duration;
  w.measure_end = w.measure_start + window_length;
  const auto drain_length = cfg.mode == LoadMode::kLatency
                                ? std::max<std::chrono::nanoseconds>(cfg.drain, 1s)
                                : cfg.drain;
  w.stop = w.measure_end + drain_length;
  w.measure_start_ns = ToNs(w.measure_start);
  w.measure_end_ns = ToNs(w.measure_end);

  const double pps_per_pair =
      cfg.load_mbps() > 0 && load_pairs > 0
          ? cfg.load_mbps() * 1e6 / (static_cast<double>(cfg.size_bytes) * 8) / load_pairs
          : 0;
  std::vector<std::thread> sender_threads;
  for (auto& p : pairs) {
    if (bursty) {
      Pair* pp = p.get();
      sender_threads.emplace_back([pp, &cfg, &w, pps_per_pair] {
        BurstySend(*pp->bursty, pp->b->public_key(), cfg.size_bytes, pps_per_pair, w, pp->stats);
      });
    } else {
      Spawn(*p->loop, SendLoop(*p->a->stream(), p->b->public_key(), cfg.size_bytes, pps_per_pair,
                               cfg.tls_record_per_frame, w, p->stats));
      // A bursty sender's socket must stay blocking, which an asio read would undo: nobody
      // reads it (the relay sends a sender nothing but a KeepAlive every 60 s).
      Spawn(*p->loop, DiscardLoop(*p->a->stream()));
    }
    Spawn(*p->loop, RecvLoop(*p->b->stream(), w, p->stats));
  }
  LatencyResult latency;
  if (latency_pair) {
    latency.rtt_ns.reserve(static_cast<std::size_t>(cfg.samples) + 16);
    Spawn(*latency_loop, PingLoop(*latency_pair->a->stream(), latency_pair->b->public_key(),
                                  cfg.interval, w, latency.stats));
    Spawn(*latency_loop, PongLoop(*latency_pair->a->stream(), w, latency.stats, latency.rtt_ns));
    Spawn(*latency_loop,
          EchoLoop(*latency_pair->b->stream(), latency_pair->a->public_key(), w, latency.stats));
  }
  // At `stop`, close every client (which ends its loops); if a loop still has work 3 s later,
  // something is stuck and the watchdog stops it.
  std::vector<std::unique_ptr<asio::steady_timer>> stoppers;
  ArmStop(loops, stoppers, w.stop);

  RelayUsage relay;
  std::optional<CpuTimes> relay_before, relay_after;
  CpuTimes self_before, self_after;
  std::thread runner([&] { RunLoops(loops); });
  std::this_thread::sleep_until(w.measure_start);
  self_before = SelfCpuTimes();
  if (cfg.relay_pid) {
    auto c = ReadCpuTimes(cfg.relay_pid);
    if (c)
      relay_before = *c;
    else
      relay.error = c.error();
  }
  std::this_thread::sleep_until(w.measure_end);
  self_after = SelfCpuTimes();
  if (cfg.relay_pid) {
    auto c = ReadCpuTimes(cfg.relay_pid);
    if (c)
      relay_after = *c;
    else if (relay.error.empty())
      relay.error = c.error();
    auto rss = ReadRssBytes(cfg.relay_pid);
    if (rss) relay.rss_bytes = *rss;
  }
  runner.join();
  for (auto& t : sender_threads) t.join();
  for (auto& p : pairs) {
    if (p->bursty) p->a->Close();
  }
  if (relay_before && relay_after) relay.cpu_seconds = relay_after->total() - relay_before->total();
  const double window_seconds = w.seconds();
  const double self_cpu = self_after.total() - self_before.total();

  const Totals totals = Sum(pairs);
  std::vector<std::string> run_errors = totals.errors;
  if (!latency.stats.error.empty()) run_errors.push_back("latency pair: " + latency.stats.error);

  nlohmann::json j;
  j["tool"] = kTool;
  j["url"] = cfg.url;
  j["tls"] = tls;
  j["mode"] = mode;
  j["window_seconds"] = window_seconds;
  j["connect_seconds"] = connect_seconds;
  j["threads"] = load_threads;
  j["loadgen_cpu_seconds"] = self_cpu;
  if (cfg.relay_pid) {
    j["relay_pid"] = cfg.relay_pid;
    j["relay_cpu_seconds"] =
        relay.cpu_seconds ? nlohmann::json(*relay.cpu_seconds) : nlohmann::json();
    j["relay_rss_bytes"] = relay.rss_bytes ? nlohmann::json(*relay.rss_bytes) : nlohmann::json();
  }
  const double delivered_mbps = Mbps(totals.flows.received_bytes, window_seconds);
  const double sent_mbps = Mbps(totals.flows.sent_bytes, window_seconds);
  const double loss = LossPercent(totals.flows.sent_packets, totals.flows.arrived_packets);
  std::optional<double> per_cpu;
  if (relay.cpu_seconds && *relay.cpu_seconds > 0) {
    per_cpu = static_cast<double>(totals.flows.received_bytes) * 8 / 1e6 / *relay.cpu_seconds;
  }
  if (load_pairs > 0) {
    nlohmann::json& l = cfg.mode == LoadMode::kThroughput ? j : j["background"];
    l["pairs"] = load_pairs;
    l["size_bytes"] = cfg.size_bytes;
    l["offered_mbps"] = cfg.load_mbps() > 0 ? nlohmann::json(cfg.load_mbps()) : nlohmann::json();
    l["paced"] = cfg.load_mbps() > 0;
    l["sender"] = bursty ? "bursty" : "paced";
    // Bursty senders always write frame by frame.
    l["tls_record_per_frame"] = cfg.tls_record_per_frame || bursty;
    if (bursty) {
      l["sender_threads"] = sender_threads.size();
      l["write_calls_per_frame"] =
          totals.flows.frames_written
              ? nlohmann::json(static_cast<double>(totals.flows.write_calls) /
                               static_cast<double>(totals.flows.frames_written))
              : nlohmann::json();
    }
    l["sent_mbps"] = sent_mbps;
    l["delivered_mbps"] = delivered_mbps;
    l["sent_packets"] = totals.flows.sent_packets;
    l["arrived_packets"] = totals.flows.arrived_packets;
    l["loss_percent"] = loss;
    l["delivered_packets_per_second"] =
        static_cast<double>(totals.flows.received_packets) / window_seconds;
    if (cfg.relay_pid) {
      l["mbit_per_relay_cpu_second"] = per_cpu ? nlohmann::json(*per_cpu) : nlohmann::json();
      l["packets_per_relay_cpu_second"] =
          per_cpu ? nlohmann::json(static_cast<double>(totals.flows.received_packets) /
                                   *relay.cpu_seconds)
                  : nlohmann::json();
    }
  }
  RoundTrips trips{latency.stats.sent_packets, latency.rtt_ns};
  std::sort(trips.sorted_ns.begin(), trips.sorted_ns.end());
  if (latency_pair) j["latency"] = RoundTripsJson(trips, kLatencyPacketSize, cfg.interval);
  j["other_frames"] = totals.flows.other_frames + latency.stats.other_frames;
  j["errors"] = run_errors;

  // Saturated: the generator's threads were busy nearly all the window, so it may be the limit.
  // Its threads can use at most one CPU each and all the CPUs together (bursty senders are many
  // threads that mostly sleep).
  const std::size_t gen_threads = loops.size() + sender_threads.size();
  const double gen_cpus = static_cast<double>(
      std::min<std::size_t>(gen_threads, std::max(1u, std::thread::hardware_concurrency())));
  const double busy = window_seconds > 0 ? self_cpu / (window_seconds * gen_cpus) : 0;
  const bool generator_bound = busy > 0.9;
  j["loadgen_busy_fraction"] = busy;

  if (cfg.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    const std::string scheme = tls ? "TLS" : "plain";
    if (cfg.mode == LoadMode::kThroughput) {
      std::string how = bursty ? "bursty senders (a blocking thread each, one write per frame), "
                                 "receivers on " +
                                     std::to_string(load_threads) + " thread(s)"
                               : "on " + std::to_string(load_threads) + " thread(s)";
      if (cfg.tls_record_per_frame && !bursty) how += ", one write (TLS record) per frame";
      std::printf("derp-load throughput against %s (%s): %d pair(s) %s\n", cfg.url.c_str(),
                  scheme.c_str(), load_pairs, how.c_str());
    } else if (load_pairs > 0) {
      std::printf(
          "derp-load latency against %s (%s): 1 echo pair beside %d load pair(s) on %d "
          "thread(s)\n",
          cfg.url.c_str(), scheme.c_str(), load_pairs, load_threads);
    } else {
      std::printf("derp-load latency against %s (%s): 1 echo pair, idle relay\n", cfg.url.c_str(),
                  scheme.c_str());
    }
    Table t;
    if (load_pairs > 0) {
      const std::string what = cfg.mode == LoadMode::kThroughput ? "" : "background ";
      t.AddRow({what + "packet size", std::to_string(cfg.size_bytes) + " B"});
      t.AddRow({what + "offered", cfg.load_mbps() > 0 ? Fixed(cfg.load_mbps(), 1) + " Mbit/s"
                                                      : std::string("unpaced")});
      t.AddRow({what + "sent", Fixed(sent_mbps, 1) + " Mbit/s"});
      t.AddRow({what + "delivered", Fixed(delivered_mbps, 1) + " Mbit/s"});
      t.AddRow({what + "delivered packets/s",
                Fixed(static_cast<double>(totals.flows.received_packets) / window_seconds, 0)});
      t.AddRow({what + "loss", Fixed(loss, 3) + " % (" +
                                   std::to_string(totals.flows.sent_packets -
                                                  std::min(totals.flows.sent_packets,
                                                           totals.flows.arrived_packets)) +
                                   " of " + std::to_string(totals.flows.sent_packets) + ")"});
    }
    if (latency_pair) {
      AddRoundTripRows(t, trips);
    }
    t.AddRow({"window", Fixed(window_seconds, 2) + " s"});
    if (cfg.relay_pid) {
      t.AddRow({"relay CPU", relay.cpu_seconds
                                 ? Fixed(*relay.cpu_seconds, 2) + " s (" +
                                       Fixed(*relay.cpu_seconds / window_seconds * 100, 0) +
                                       "% of one core)"
                                 : "n/a: " + relay.error});
      if (relay.rss_bytes)
        t.AddRow({"relay RSS", HumanBytes(static_cast<double>(*relay.rss_bytes))});
      if (load_pairs > 0) {
        t.AddRow({"Mbit per relay CPU-second", per_cpu ? Fixed(*per_cpu, 0) : std::string("n/a")});
      }
    } else {
      t.AddRow({"relay CPU", "not measured (give --relay-pid)"});
    }
    t.AddRow({"load generator CPU", Fixed(self_cpu, 2) + " s (" + Fixed(busy * 100, 0) + "% of " +
                                        Fixed(gen_cpus, 0) + " CPU(s), " +
                                        std::to_string(gen_threads) + " thread(s))"});
    t.Print(stdout);
    if (load_pairs > 0 && cfg.mode == LoadMode::kThroughput) {
      std::printf(
          "summary: %.1f Mbit/s delivered %s, %.3f%% loss", delivered_mbps,
          cfg.paced() ? ("of " + Fixed(cfg.rate_mbps, 0) + " Mbit/s offered").c_str() : "(unpaced)",
          loss);
      if (per_cpu) std::printf(", %.0f Mbit per relay CPU-second", *per_cpu);
      std::printf("\n");
    } else if (!trips.sorted_ns.empty()) {
      std::printf("summary: %s (%s)\n", RoundTripSummary(trips).c_str(),
                  load_pairs > 0 ? ("beside " + Fixed(cfg.background_mbps, 0) + " Mbit/s").c_str()
                                 : "idle relay");
    }
    if (generator_bound) {
      std::printf(
          "note: the load generator was busy %.0f%% of its threads' time: it may be the "
          "bottleneck; trust Mbit per relay CPU-second more than Mbit/s\n",
          busy * 100);
    }
  }
  if (!run_errors.empty()) {
    std::fprintf(stderr, "%s: %zu connection error(s) during the run; first: %s\n", kTool.data(),
                 run_errors.size(), run_errors[0].c_str());
    return 1;
  }
  if (latency_pair && trips.sorted_ns.empty()) {
    std::fprintf(stderr, "%s: no echo came back\n", kTool.data());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace derpkit::bench

int main(int argc, char** argv) { return derpkit::bench::Main(argc, argv); }
