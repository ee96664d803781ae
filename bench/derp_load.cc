// derp-load: drives client pairs through a DERP relay and reports what got through.
//
// Throughput mode: N pairs (A -> B, one direction per pair) send packets of a fixed size at an
// aggregate offered rate (paced per pair with a token bucket woken every millisecond) or as fast
// as the sockets accept. After a warm-up, a measurement window of --duration starts; we count
//   sent      = payload bits of packets written during the window / window length
//   delivered = payload bits of packets read during the window / window length
//   loss      = 1 - (packets stamped inside the window that arrived by the end of a short drain
//                    period) / (packets written during the window)
// and, with --relay-pid, the relay's CPU seconds over the window and "Mbit relayed per relay
// CPU-second": the figure that stays fair when this tool shares the machine's cores with the
// relay.
//
// Latency mode: one dedicated pair exchanges 64-byte packets: A stamps and sends one every
// --interval, B echoes each back to A (a SendPacket to A with the same payload), A records the
// round trip. Optionally beside a background load of --pairs pairs at --background-mbps.
//
// How it stays out of the way: clients connect with derpclient::Client, then the data path
// reads and writes the Client's net::Stream directly. Frames are built once per pair (header,
// destination key, payload) and only the 16-byte stamp in each payload is rewritten before a
// batch leaves in one write; receivers cut frames out of a FrameReader without copying. Pairs are
// spread over --threads event loops. Taking over the stream is safe because it happens after
// Recv() has returned ServerInfo and before anything is sent to that client: the relay sends
// nothing else unprompted for 60 s, so the Client's own frame reader holds no further bytes.
#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/percentiles.h"
#include "bench/proc_stats.h"
#include "bench/report.h"
#include "lib/derp/frame.h"
#include "lib/derp/messages.h"
#include "lib/derp/protocol.h"
#include "lib/derpclient/client.h"
#include "lib/net/stream.h"

namespace derpkit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kTool = "derp-load";
// Every payload starts with this stamp: send time (ns on the steady clock) || sequence number.
constexpr std::size_t kStampSize = 16;
constexpr std::size_t kLatencyPacketSize = 64;
// One write carries up to this many bytes of frames (unpaced, or a paced backlog).
constexpr std::size_t kBatchBytes = 64 * 1024;
// Paced senders wake this often and send what is due.
constexpr auto kPacingTick = 1ms;
// A paced sender that fell behind (the relay pushed back) forgives debt beyond this much, so it
// does not answer back-pressure with an unbounded burst.
constexpr auto kMaxPacingDebt = 20ms;
// Receivers ask the kernel for this much per read.
constexpr std::size_t kReadBytes = 256 * 1024;
constexpr std::uint32_t kMaxFramePayload = 1 << 20;

enum class Mode { kThroughput, kLatency };

struct LoadConfig {
  std::string url;
  std::string dial_host;
  std::string ca_file;
  bool insecure = false;
  Mode mode = Mode::kThroughput;
  int pairs = 10;
  std::size_t size_bytes = 1400;
  double rate_mbps = 1000;  // aggregate payload Mbit/s; 0 = unpaced
  std::chrono::nanoseconds duration = 5s;
  std::chrono::nanoseconds warmup = 1s;
  std::chrono::nanoseconds drain = 500ms;
  std::chrono::nanoseconds connect_timeout = 10s;
  int threads = 2;
  pid_t relay_pid = 0;
  bool json = false;
  // Latency mode.
  int samples = 2000;
  std::chrono::nanoseconds interval = 1ms;
  double background_mbps = 0;  // 0 = idle

  bool paced() const { return rate_mbps > 0; }
  // Pairs carrying bulk load: all of them in throughput mode, the background in latency mode.
  int load_pairs() const {
    if (mode == Mode::kThroughput) return pairs;
    return background_mbps > 0 ? pairs : 0;
  }
  double load_mbps() const { return mode == Mode::kThroughput ? rate_mbps : background_mbps; }

  Expected<void, std::string> Validate() const {
    if (url.empty()) return Unexpected{std::string("--url is required")};
    if (pairs < 1 || pairs > 10000) return Unexpected{std::string("--pairs must be 1..10000")};
    if (size_bytes < kStampSize || size_bytes > derp::kMaxPacketSize) {
      return Unexpected{"--size must be " + std::to_string(kStampSize) + ".." +
                        std::to_string(derp::kMaxPacketSize) +
                        " bytes (each packet carries a 16-byte stamp)"};
    }
    if (rate_mbps < 0 || background_mbps < 0) {
      return Unexpected{std::string("rates must not be negative")};
    }
    if (threads < 1 || threads > 64) return Unexpected{std::string("--threads must be 1..64")};
    if (duration <= 0s) return Unexpected{std::string("--duration must be positive")};
    if (samples < 1 || samples > 10'000'000) {
      return Unexpected{std::string("--samples must be 1..10000000")};
    }
    if (interval <= 0s) return Unexpected{std::string("--interval must be positive")};
    return {};
  }
};

std::int64_t ToNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The phases of a run, as absolute times. Senders start at `start`; only [measure_start,
// measure_end) counts; receivers keep reading until `stop`.
struct Window {
  Clock::time_point start, measure_start, measure_end, stop;
  std::int64_t measure_start_ns = 0, measure_end_ns = 0;

  bool Measures(std::int64_t ns) const { return ns >= measure_start_ns && ns < measure_end_ns; }
  double seconds() const {
    return std::chrono::duration<double>(measure_end - measure_start).count();
  }
};

// The stamp is our own bytes, read back by this process only, so host byte order is fine.
void StoreStamp(std::byte* payload, std::int64_t send_ns, std::uint64_t seq) {
  std::memcpy(payload, &send_ns, 8);
  std::memcpy(payload + 8, &seq, 8);
}
std::int64_t LoadSendNs(const std::byte* payload) {
  std::int64_t v;
  std::memcpy(&v, payload, 8);
  return v;
}

// Counters of one pair (or the latency pair), written only by the pair's event loop and read by
// main after the loops have been joined.
struct FlowStats {
  std::uint64_t sent_packets = 0;      // written during the window
  std::uint64_t sent_bytes = 0;        // payload bytes written during the window
  std::uint64_t arrived_packets = 0;   // stamped inside the window and read before `stop`
  std::uint64_t received_bytes = 0;    // payload bytes read during the window
  std::uint64_t received_packets = 0;  // packets read during the window
  std::uint64_t other_frames = 0;      // KeepAlive, PeerGone, ...: anything but RecvPacket
  std::string error;                   // first I/O error inside [start, measure_end + drain)
};

// One event loop and its thread. `live` counts coroutines still running so that the watchdog
// that ends a stuck run can be cancelled when everything finished normally.
struct Loop {
  asio::io_context io{1};
  int live = 0;
  std::unique_ptr<asio::steady_timer> watchdog;
  std::vector<derpclient::Client*> clients;
};

struct Pair {
  std::unique_ptr<derpclient::Client> a, b;
  Loop* loop = nullptr;
  FlowStats stats;
};

// Builds `count` SendPacket frames to `dst`, each with a `size`-byte payload (a fixed pattern
// after the stamp), back to back in one buffer.
Bytes BuildFrames(const derp::PublicKey& dst, std::size_t size, std::size_t count) {
  Bytes payload(size);
  for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::byte>(i * 7 + 1);
  Bytes out;
  out.reserve(count * (derp::kFrameHeaderSize + derp::kKeySize + size));
  for (std::size_t i = 0; i < count; ++i) derp::AppendSendPacket(out, dst, payload);
  return out;
}

bool Late(const Window& w) { return Clock::now() >= w.stop; }

void NoteError(FlowStats& st, const Window& w, const std::string& what, const std::error_code& ec) {
  // Errors after `stop` are our own Close(); before it they are the relay's doing.
  if (st.error.empty() && !Late(w)) st.error = what + ": " + ec.message();
}

// Sends A -> B from w.start until w.measure_end, paced at `packets_per_second` (0 = unpaced).
asio::awaitable<void> SendLoop(net::Stream& stream, derp::PublicKey dst, std::size_t size,
                               double packets_per_second, const Window& w, FlowStats& st) {
  const std::size_t frame_size = derp::kFrameHeaderSize + derp::kKeySize + size;
  const std::size_t batch = std::max<std::size_t>(1, kBatchBytes / frame_size);
  Bytes frames = BuildFrames(dst, size, batch);
  constexpr std::size_t kPayloadOffset = derp::kFrameHeaderSize + derp::kKeySize;
  asio::steady_timer timer(stream.tcp().get_executor());
  const double max_debt =
      std::max(1.0, packets_per_second * std::chrono::duration<double>(kMaxPacingDebt).count());
  double forgiven = 0;  // packets the token bucket gave up on after back-pressure
  std::uint64_t seq = 0, tokens_used = 0;

  timer.expires_at(w.start);
  co_await timer.async_wait(net::kAsTuple);
  for (;;) {
    const auto now = Clock::now();
    if (now >= w.measure_end) break;
    std::size_t n = batch;
    if (packets_per_second > 0) {
      const double elapsed = std::chrono::duration<double>(now - w.start).count();
      double due = elapsed * packets_per_second - forgiven - static_cast<double>(tokens_used);
      if (due > max_debt) {
        forgiven += due - max_debt;
        due = max_debt;
      }
      if (due < 1) {
        timer.expires_at(now + kPacingTick);
        co_await timer.async_wait(net::kAsTuple);
        continue;
      }
      n = std::min(batch, static_cast<std::size_t>(due));
      tokens_used += n;
    }
    const std::int64_t now_ns = ToNs(now);
    for (std::size_t i = 0; i < n; ++i) {
      StoreStamp(frames.data() + i * frame_size + kPayloadOffset, now_ns, seq++);
    }
    const asio::const_buffer buf(frames.data(), n * frame_size);
    auto r = co_await stream.WriteAll(std::span(&buf, 1));
    if (r.ec) {
      NoteError(st, w, "send", r.ec);
      break;
    }
    if (w.Measures(now_ns)) {
      st.sent_packets += n;
      st.sent_bytes += n * size;
    }
  }
}

// Reads B's side until the stream closes, counting RecvPackets.
asio::awaitable<void> RecvLoop(net::Stream& stream, const Window& w, FlowStats& st) {
  derp::FrameReader reader(kMaxFramePayload);
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st, w, "receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    const bool in_window = w.Measures(ToNs(Clock::now()));
    auto f = reader.Next();
    for (; f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket ||
          f->payload.size() < derp::kKeySize + kStampSize) {
        ++st.other_frames;
        continue;
      }
      const std::byte* packet = f->payload.data() + derp::kKeySize;
      const std::size_t packet_size = f->payload.size() - derp::kKeySize;
      if (w.Measures(LoadSendNs(packet))) ++st.arrived_packets;
      if (in_window) {
        ++st.received_packets;
        st.received_bytes += packet_size;
      }
    }
    if (f.error() == derp::FrameReader::Status::kTooLarge) {
      if (st.error.empty()) st.error = "receive: frame over 1 MiB";
      break;
    }
  }
}

// Reads and discards whatever the relay sends a sender (KeepAlive, PeerGone).
asio::awaitable<void> DiscardLoop(net::Stream& stream) {
  std::vector<std::byte> buf(4096);
  for (;;) {
    auto r = co_await stream.ReadSome(buf);
    if (r.ec) break;
  }
}

// Latency pair, B side: echoes every RecvPacket back to `back_to` with the same payload.
asio::awaitable<void> EchoLoop(net::Stream& stream, derp::PublicKey back_to, const Window& w,
                               FlowStats& st) {
  derp::FrameReader reader(kMaxFramePayload);
  Bytes out;
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st, w, "echo receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    out.clear();
    for (auto f = reader.Next(); f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket || f->payload.size() < derp::kKeySize) continue;
      derp::AppendSendPacket(out, back_to, f->payload.subspan(derp::kKeySize));
    }
    if (out.empty()) continue;
    const asio::const_buffer buf(out.data(), out.size());
    auto wr = co_await stream.WriteAll(std::span(&buf, 1));
    if (wr.ec) {
      NoteError(st, w, "echo send", wr.ec);
      break;
    }
  }
}

// Latency pair, A side: one 64-byte packet every `interval` from w.start to w.measure_end, on a
// fixed schedule (a late wake-up does not push later packets back).
asio::awaitable<void> PingLoop(net::Stream& stream, derp::PublicKey dst,
                               std::chrono::nanoseconds interval, const Window& w, FlowStats& st) {
  Bytes frame = BuildFrames(dst, kLatencyPacketSize, 1);
  constexpr std::size_t kPayloadOffset = derp::kFrameHeaderSize + derp::kKeySize;
  asio::steady_timer timer(stream.tcp().get_executor());
  std::uint64_t seq = 0;
  for (auto next = w.start; next < w.measure_end; next += interval) {
    timer.expires_at(next);
    co_await timer.async_wait(net::kAsTuple);
    const std::int64_t now_ns = ToNs(Clock::now());
    if (now_ns >= w.measure_end_ns) break;
    StoreStamp(frame.data() + kPayloadOffset, now_ns, seq++);
    const asio::const_buffer buf(frame.data(), frame.size());
    auto r = co_await stream.WriteAll(std::span(&buf, 1));
    if (r.ec) {
      NoteError(st, w, "ping send", r.ec);
      break;
    }
    if (w.Measures(now_ns)) {
      ++st.sent_packets;
      st.sent_bytes += kLatencyPacketSize;
    }
  }
}

// Latency pair, A side: records the round trip of every echo whose ping left inside the window.
asio::awaitable<void> PongLoop(net::Stream& stream, const Window& w, FlowStats& st,
                               std::vector<std::int64_t>& rtt_ns) {
  derp::FrameReader reader(kMaxFramePayload);
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      NoteError(st, w, "pong receive", r.ec);
      break;
    }
    reader.CommitWrite(r.bytes);
    const std::int64_t now_ns = ToNs(Clock::now());
    for (auto f = reader.Next(); f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket ||
          f->payload.size() != derp::kKeySize + kLatencyPacketSize) {
        ++st.other_frames;
        continue;
      }
      const std::int64_t sent_ns = LoadSendNs(f->payload.data() + derp::kKeySize);
      if (!w.Measures(sent_ns)) continue;
      ++st.arrived_packets;
      rtt_ns.push_back(now_ns - sent_ns);
    }
  }
}

// Runs `aw` on `loop`, keeping loop.live up to date.
void Spawn(Loop& loop, asio::awaitable<void> aw) {
  ++loop.live;
  asio::co_spawn(loop.io, std::move(aw), [&loop](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "%s: internal error: %s\n", kTool.data(), ex.what());
      }
    }
    if (--loop.live == 0 && loop.watchdog) loop.watchdog->cancel();
  });
}

// Connects `c` and waits for its ServerInfo, all within `timeout`. On failure sets `error`.
asio::awaitable<void> ConnectOne(derpclient::Client& c, std::chrono::nanoseconds timeout,
                                 std::string& error) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  bool timed_out = false;
  timer.async_wait([&](const std::error_code& ec) {
    if (ec) return;
    timed_out = true;
    c.Close();
  });
  auto ok = co_await c.Connect();
  if (!ok) {
    error = ok.error();
    co_return;
  }
  for (;;) {
    auto m = co_await c.Recv();
    if (!m) {
      error = timed_out ? "no ServerInfo within the connect timeout"
                        : "waiting for ServerInfo: " + m.error();
      co_return;
    }
    if (std::holds_alternative<derpclient::ServerInfoMessage>(*m)) break;
  }
  // The cancelled handler still runs, but only looks at its error code.
  timer.cancel();
}

void RunLoops(std::vector<std::unique_ptr<Loop>>& loops) {
  std::vector<std::thread> threads;
  for (auto& l : loops) {
    l->io.restart();
    threads.emplace_back([&l] { l->io.run(); });
  }
  for (auto& t : threads) t.join();
}

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
    if (!s.error.empty()) t.errors.push_back("pair " + std::to_string(i) + ": " + s.error);
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
  LoadConfig cfg;
  std::string mode = "throughput", duration = "5s", warmup = "1s", drain = "500ms",
              interval = "1ms", connect_timeout = "10s";
  bool unpaced = false;
  CLI::App app{
      "derp-load: drives client pairs through a DERP relay (ours or Tailscale's derper, plain or "
      "TLS) and reports offered, sent and delivered Mbit/s, loss, and the relay's CPU use; or, "
      "with --mode latency, round-trip percentiles of 64-byte packets.\n"
      "Rates count DERP packet payload bits (--size bytes per packet), not frame or TCP "
      "overhead."};
  app.footer(
      "Examples:\n"
      "  derp-load --url http://127.0.0.1:3340/derp --pairs 10 --size 1400 --rate-mbps 1000 \\\n"
      "            --duration 5s --relay-pid $(pidof derp-relay)\n"
      "  derp-load --url https://localhost:8443/derp --ca-file certs/localhost.crt \\\n"
      "            --dial-host 127.0.0.1 --unpaced --json\n"
      "  derp-load --url http://127.0.0.1:3340/derp --mode latency --background-mbps 1000\n"
      "Exit status: 0 when the run completed, 1 when a connection failed, 2 for bad flags.");
  app.option_defaults()->always_capture_default();
  app.add_option("-u,--url", cfg.url, "DERP URL: http://host:port/derp or https://host:port/derp.")
      ->required();
  app.add_option("--dial-host", cfg.dial_host,
                 "Connect to this address instead of the URL's host (the URL's host stays the TLS "
                 "name and the Host header).");
  app.add_option("--ca-file", cfg.ca_file,
                 "PEM file of trusted certificates for TLS (a self-signed relay's .crt works).");
  app.add_flag("--insecure", cfg.insecure, "Do not verify the relay's TLS certificate.");
  app.add_option("--mode", mode, "throughput or latency.")
      ->check(CLI::IsMember({"throughput", "latency"}));
  app.add_option("-p,--pairs", cfg.pairs,
                 "Client pairs carrying load (each pair: client A sends to client B).");
  app.add_option("-s,--size", cfg.size_bytes, "Packet (payload) size in bytes, 16..65536.");
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    FailUsage(kTool, std::string(e.what()) + " (see --help)");
  }
  if (unpaced) cfg.rate_mbps = 0;
  cfg.mode = mode == "latency" ? Mode::kLatency : Mode::kThroughput;
  cfg.duration = ParseDurationFlag(kTool, "duration", duration);
  cfg.warmup = ParseDurationFlag(kTool, "warmup", warmup);
  cfg.drain = ParseDurationFlag(kTool, "drain", drain);
  cfg.interval = ParseDurationFlag(kTool, "interval", interval);
  cfg.connect_timeout = ParseDurationFlag(kTool, "connect-timeout", connect_timeout);
  if (auto ok = cfg.Validate(); !ok) FailUsage(kTool, ok.error());
  if (cfg.relay_pid != 0) {
    if (auto ok = CheckProcess(cfg.relay_pid); !ok) FailUsage(kTool, "--relay-pid: " + ok.error());
  }

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
  if (cfg.mode == Mode::kLatency) {
    loops.push_back(std::make_unique<Loop>());
    latency_loop = loops.back().get();
  }
  auto make_client = [&](Loop& loop) {
    derpclient::ClientOptions o = base;
    o.key = derp::PrivateKey::Generate();  // the default member initialiser ran once, for `base`
    auto c = std::make_unique<derpclient::Client>(loop.io, std::move(o));
    loop.clients.push_back(c.get());
    return c;
  };
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < load_pairs; ++i) {
    auto p = std::make_unique<Pair>();
    p->loop = loops[static_cast<std::size_t>(i % load_threads)].get();
    p->a = make_client(*p->loop);
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

  // Phase 2: the run.
  Window w;
  w.start = Clock::now() + 20ms;
  w.measure_start = w.start + cfg.warmup;
  const auto window_length = cfg.mode == Mode::kLatency ? cfg.interval * cfg.samples : cfg.duration;
  w.measure_end = w.measure_start + window_length;
  const auto drain_length =
      cfg.mode == Mode::kLatency ? std::max<std::chrono::nanoseconds>(cfg.drain, 1s) : cfg.drain;
  w.stop = w.measure_end + drain_length;
  w.measure_start_ns = ToNs(w.measure_start);
  w.measure_end_ns = ToNs(w.measure_end);

  const double pps_per_pair =
      cfg.load_mbps() > 0 && load_pairs > 0
          ? cfg.load_mbps() * 1e6 / (static_cast<double>(cfg.size_bytes) * 8) / load_pairs
          : 0;
  for (auto& p : pairs) {
    Spawn(*p->loop,
          SendLoop(*p->a->stream(), p->b->public_key(), cfg.size_bytes, pps_per_pair, w, p->stats));
    Spawn(*p->loop, RecvLoop(*p->b->stream(), w, p->stats));
    Spawn(*p->loop, DiscardLoop(*p->a->stream()));
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
  for (auto& l : loops) {
    auto t = std::make_unique<asio::steady_timer>(l->io, w.stop);
    Loop* lp = l.get();
    l->watchdog = std::make_unique<asio::steady_timer>(l->io, w.stop + 3s);
    t->async_wait([lp](const std::error_code&) {
      for (auto* c : lp->clients) c->Close();
      if (lp->live == 0) lp->watchdog->cancel();
    });
    l->watchdog->async_wait([lp](const std::error_code& ec) {
      if (!ec) {
        std::fprintf(stderr,
                     "%s: %d coroutine(s) of an event loop still running 3 s after the run; "
                     "stopping it\n",
                     kTool.data(), lp->live);
        lp->io.stop();
      }
    });
    stoppers.push_back(std::move(t));
  }

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
    nlohmann::json& l = cfg.mode == Mode::kThroughput ? j : j["background"];
    l["pairs"] = load_pairs;
    l["size_bytes"] = cfg.size_bytes;
    l["offered_mbps"] = cfg.load_mbps() > 0 ? nlohmann::json(cfg.load_mbps()) : nlohmann::json();
    l["paced"] = cfg.load_mbps() > 0;
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
  std::vector<std::int64_t> sorted = latency.rtt_ns;
  std::sort(sorted.begin(), sorted.end());
  auto us = [](std::int64_t ns) { return static_cast<double>(ns) / 1000.0; };
  if (latency_pair) {
    nlohmann::json& l = j["latency"];
    l["packet_size_bytes"] = kLatencyPacketSize;
    l["interval_us"] = static_cast<double>(cfg.interval.count()) / 1000.0;
    l["sent"] = latency.stats.sent_packets;
    l["answered"] = sorted.size();
    l["lost"] = latency.stats.sent_packets -
                std::min<std::uint64_t>(latency.stats.sent_packets, sorted.size());
    if (!sorted.empty()) {
      l["p50_us"] = us(NearestRankPercentile(sorted, 50));
      l["p90_us"] = us(NearestRankPercentile(sorted, 90));
      l["p99_us"] = us(NearestRankPercentile(sorted, 99));
      l["p999_us"] = us(NearestRankPercentile(sorted, 99.9));
      l["min_us"] = us(sorted.front());
      l["max_us"] = us(sorted.back());
    }
  }
  j["other_frames"] = totals.flows.other_frames + latency.stats.other_frames;
  j["errors"] = run_errors;

  // Saturated: the generator's threads were busy nearly all the window, so it may be the limit.
  const double busy =
      window_seconds > 0 ? self_cpu / (window_seconds * static_cast<double>(loops.size())) : 0;
  const bool generator_bound = busy > 0.9;
  j["loadgen_busy_fraction"] = busy;

  if (cfg.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    const std::string scheme = tls ? "TLS" : "plain";
    if (cfg.mode == Mode::kThroughput) {
      std::printf("derp-load throughput against %s (%s): %d pair(s) on %d thread(s)\n",
                  cfg.url.c_str(), scheme.c_str(), load_pairs, load_threads);
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
      const std::string what = cfg.mode == Mode::kThroughput ? "" : "background ";
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
      t.AddRow({"round trips", std::to_string(sorted.size()) + " of " +
                                   std::to_string(latency.stats.sent_packets) + " answered"});
      if (!sorted.empty()) {
        t.AddRow({"rtt p50", Fixed(us(NearestRankPercentile(sorted, 50)), 1) + " us"});
        t.AddRow({"rtt p90", Fixed(us(NearestRankPercentile(sorted, 90)), 1) + " us"});
        t.AddRow({"rtt p99", Fixed(us(NearestRankPercentile(sorted, 99)), 1) + " us"});
        t.AddRow({"rtt p99.9", Fixed(us(NearestRankPercentile(sorted, 99.9)), 1) + " us"});
        t.AddRow({"rtt min / max",
                  Fixed(us(sorted.front()), 1) + " / " + Fixed(us(sorted.back()), 1) + " us"});
      }
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
                                        std::to_string(loops.size()) + " thread(s))"});
    t.Print(stdout);
    if (load_pairs > 0 && cfg.mode == Mode::kThroughput) {
      std::printf(
          "summary: %.1f Mbit/s delivered %s, %.3f%% loss", delivered_mbps,
          cfg.paced() ? ("of " + Fixed(cfg.rate_mbps, 0) + " Mbit/s offered").c_str() : "(unpaced)",
          loss);
      if (per_cpu) std::printf(", %.0f Mbit per relay CPU-second", *per_cpu);
      std::printf("\n");
    } else if (!sorted.empty()) {
      std::printf("summary: rtt p50 %.1f us, p99 %.1f us, p99.9 %.1f us (%s)\n",
                  us(NearestRankPercentile(sorted, 50)), us(NearestRankPercentile(sorted, 99)),
                  us(NearestRankPercentile(sorted, 99.9)),
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
  if (latency_pair && sorted.empty()) {
    std::fprintf(stderr, "%s: no echo came back\n", kTool.data());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace derpkit::bench

int main(int argc, char** argv) { return derpkit::bench::Main(argc, argv); }
