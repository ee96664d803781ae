// derp-load --mode ws-burst (see ws_burst.h). RunWsBurst runs on the main thread; the sender and
// receiver coroutines on their client's event loop; they share only atomics with main.
#include "bench/ws_burst.h"

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench/event_loops.h"
#include "bench/load_flow.h"
#include "bench/percentiles.h"
#include "bench/proc_stats.h"
#include "bench/report.h"
#include "lib/derp/frame.h"
#include "lib/net/as_tuple.h"

namespace derpkit::bench {
namespace {

// Main's polling step while a try runs, and the pause between tries (so that one try's packets
// are not still in the relay's queues when the next begins).
constexpr auto kPollStep = 1ms;
constexpr auto kPauseBetweenTries = 100ms;
// A sender still writing this long after its try's wait ended is stuck: the run stops.
constexpr auto kStuckSender = 5s;

// The stamp's sequence number carries the try in its upper half.
std::uint64_t Tag(int try_index, int packet) {
  return (static_cast<std::uint64_t>(try_index) << 32) | static_cast<std::uint32_t>(packet);
}

// What main and the two loops share. Index [try * 2 + side]: side 0 is what A sent (B receives),
// side 1 what B sent (A receives).
struct Shared {
  explicit Shared(int tries)
      : arrived(static_cast<std::size_t>(tries) * 2),
        last_arrival_ns(static_cast<std::size_t>(tries) * 2),
        sent(static_cast<std::size_t>(tries) * 2),
        sender_done(static_cast<std::size_t>(tries) * 2),
        deadline_ns(static_cast<std::size_t>(tries)) {}
  std::vector<std::atomic<int>> arrived;
  std::vector<std::atomic<std::int64_t>> last_arrival_ns;
  std::vector<std::atomic<int>> sent;
  std::vector<std::atomic<bool>> sender_done;
  std::vector<std::atomic<std::int64_t>> deadline_ns;  // of each try, set before it starts
  std::atomic<std::uint64_t> late{0};                  // arrived after their try's wait
  std::atomic<bool> broken{false};                     // a connection failed
  std::atomic<bool> closing{false};                    // main is closing the clients
};

struct Side {
  Loop loop;
  std::unique_ptr<derpclient::Client> client;
  std::string error;  // written by this side's loop; read by main after the loops are joined
};

// Receives on `side` for the whole run, counting the packets the other side sent.
asio::awaitable<void> Receive(net::Stream& stream, int sender_side, int tries,
                              std::size_t size_bytes, Shared& sh, std::string& error) {
  derp::FrameReader reader(kMaxFramePayload);
  for (;;) {
    auto room = reader.PrepareWrite(kReadBytes);
    auto r = co_await stream.ReadSome(room);
    if (r.ec) {
      // After `closing` the error is our own Close().
      if (!sh.closing) {
        if (error.empty()) error = "receive: " + r.ec.message();
        sh.broken = true;
      }
      break;
    }
    reader.CommitWrite(r.bytes);
    const std::int64_t now_ns = ToNs(Clock::now());
    for (auto f = reader.Next(); f; f = reader.Next()) {
      if (f->type != derp::FrameType::kRecvPacket ||
          f->payload.size() != derp::kKeySize + size_bytes) {
        continue;
      }
      const std::uint64_t tag = LoadSeq(f->payload.data() + derp::kKeySize);
      const int try_index = static_cast<int>(tag >> 32);
      if (try_index < 0 || try_index >= tries) continue;
      const std::size_t i = static_cast<std::size_t>(try_index) * 2 + sender_side;
      if (now_ns > sh.deadline_ns[static_cast<std::size_t>(try_index)].load()) {
        ++sh.late;
        continue;
      }
      ++sh.arrived[i];
      if (sh.last_arrival_ns[i].load() < now_ns) sh.last_arrival_ns[i] = now_ns;
    }
  }
}

// One side's burst of try `try_index`: waits for `at`, then writes every packet as soon as the
// previous write completed, each DERP frame its own WebSocket message.
asio::awaitable<void> Burst(net::Stream& stream, derp::PublicKey dst, int try_index, int side,
                            int packets, std::size_t size_bytes, Clock::time_point at, Shared& sh,
                            std::string& error) {
  const std::size_t i = static_cast<std::size_t>(try_index) * 2 + static_cast<std::size_t>(side);
  Bytes frame = BuildFrames(dst, size_bytes, 1);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_at(at);
  co_await timer.async_wait(net::kAsTuple);
  for (int p = 0; p < packets; ++p) {
    StoreStamp(frame.data() + kSendPayloadOffset, ToNs(Clock::now()), Tag(try_index, p));
    const asio::const_buffer buf(frame.data(), frame.size());
    auto r = co_await stream.WriteAll(std::span(&buf, 1));
    if (r.ec) {
      if (error.empty()) error = "send: " + r.ec.message();
      sh.broken = true;
      break;
    }
    ++sh.sent[i];
  }
  sh.sender_done[i] = true;
}

std::string WsUrlToHttp(const std::string& url) {
  if (url.rfind("ws://", 0) == 0) return "http://" + url.substr(5);
  if (url.rfind("wss://", 0) == 0) return "https://" + url.substr(6);
  return url;
}

}  // namespace

int RunWsBurst(const LoadConfig& cfg) {
  derpclient::ClientOptions base;
  base.url = WsUrlToHttp(cfg.url);
  base.dial_host = cfg.dial_host;
  base.tls.ca_file = cfg.ca_file;
  base.tls.insecure = cfg.insecure;
  base.websocket = true;
  base.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.connect_timeout);

  std::array<std::unique_ptr<Side>, 2> sides;
  for (auto& s : sides) {
    s = std::make_unique<Side>();
    derpclient::ClientOptions o = base;
    o.key = derp::PrivateKey::Generate();
    s->client = std::make_unique<derpclient::Client>(s->loop.io, std::move(o));
    s->loop.clients.push_back(s->client.get());
  }

  // Connect both (each on its own loop) and wait for both ServerInfos.
  {
    std::array<std::string, 2> errors;
    for (std::size_t k = 0; k < 2; ++k) {
      asio::co_spawn(sides[k]->loop.io,
                     ConnectOne(*sides[k]->client, cfg.connect_timeout, errors[k]), asio::detached);
    }
    std::array<std::thread, 2> threads;
    for (std::size_t k = 0; k < 2; ++k)
      threads[k] = std::thread([&, k] { sides[k]->loop.io.run(); });
    for (auto& t : threads) t.join();
    for (std::size_t k = 0; k < 2; ++k) {
      if (!errors[k].empty()) {
        std::fprintf(stderr, "%s: WebSocket client %c failed to connect to %s: %s\n",
                     kLoadTool.data(), k == 0 ? 'A' : 'B', cfg.url.c_str(), errors[k].c_str());
        return 1;
      }
    }
  }
  const bool tls = sides[0]->client->stream()->is_tls();

  Shared sh(cfg.tries);
  for (auto& d : sh.deadline_ns) d = std::numeric_limits<std::int64_t>::min();
  // Both loops run for the whole run: their receivers from now on, a sender per try.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::array<std::thread, 2> threads;
  for (std::size_t k = 0; k < 2; ++k) {
    Side& s = *sides[k];
    s.loop.io.restart();
    guards.push_back(asio::make_work_guard(s.loop.io));
    asio::co_spawn(s.loop.io,
                   Receive(*s.client->stream(), static_cast<int>(1 - k), cfg.tries, cfg.size_bytes,
                           sh, s.error),
                   asio::detached);
    threads[k] = std::thread([&s] { s.loop.io.run(); });
  }

  std::optional<CpuTimes> relay_before, relay_after;
  std::string relay_error;
  if (cfg.relay_pid) {
    auto c = ReadCpuTimes(cfg.relay_pid);
    if (c)
      relay_before = *c;
    else
      relay_error = c.error();
  }

  struct TryResult {
    int sent = 0, arrived = 0;
    std::optional<double> complete_ms;  // burst start to the last packet, when none was lost
  };
  std::vector<TryResult> results;
  const auto started = Clock::now();
  for (int t = 0; t < cfg.tries && !sh.broken; ++t) {
    const auto at = Clock::now() + 20ms;
    const auto deadline = at + cfg.burst_wait;
    sh.deadline_ns[static_cast<std::size_t>(t)] = ToNs(deadline);
    for (std::size_t k = 0; k < 2; ++k) {
      Side& s = *sides[k];
      asio::co_spawn(s.loop.io,
                     Burst(*s.client->stream(), sides[1 - k]->client->public_key(), t,
                           static_cast<int>(k), cfg.burst_packets, cfg.size_bytes, at, sh, s.error),
                     asio::detached);
    }
    const std::size_t a = static_cast<std::size_t>(t) * 2, b = a + 1;
    const int want = cfg.burst_packets;
    // Until everything arrived or the wait is over, and both senders are done (a sender still
    // writing must not overlap the next try's: one write at a time per stream).
    for (;;) {
      const bool all_here = sh.arrived[a] == want && sh.arrived[b] == want;
      const bool senders_done = sh.sender_done[a] && sh.sender_done[b];
      const auto now = Clock::now();
      if ((all_here || now > deadline || sh.broken) && senders_done) break;
      if (now > deadline + kStuckSender) {
        sh.broken = true;
        if (sides[0]->error.empty()) sides[0]->error = "a sender was stuck past its try's wait";
        break;
      }
      std::this_thread::sleep_for(kPollStep);
    }
    TryResult r;
    r.sent = sh.sent[a] + sh.sent[b];
    r.arrived = sh.arrived[a] + sh.arrived[b];
    if (r.arrived == 2 * want) {
      const std::int64_t last =
          std::max(sh.last_arrival_ns[a].load(), sh.last_arrival_ns[b].load());
      r.complete_ms = static_cast<double>(last - ToNs(at)) / 1e6;
    }
    results.push_back(r);
    std::this_thread::sleep_for(kPauseBetweenTries);
  }
  const double run_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::optional<std::uint64_t> relay_rss;
  if (cfg.relay_pid) {
    auto c = ReadCpuTimes(cfg.relay_pid);
    if (c)
      relay_after = *c;
    else if (relay_error.empty())
      relay_error = c.error();
    if (auto rss = ReadRssBytes(cfg.relay_pid)) relay_rss = *rss;
  }

  // Close on each client's own thread, then let the loops run out.
  sh.closing = true;
  for (auto& s : sides) {
    Side* sp = s.get();
    asio::post(sp->loop.io, [sp] { sp->client->Close(); });
  }
  guards.clear();
  for (auto& th : threads) th.join();

  std::vector<std::string> errors;
  for (std::size_t k = 0; k < 2; ++k) {
    if (!sides[k]->error.empty()) {
      errors.push_back(std::string("client ") + (k == 0 ? "A" : "B") + ": " + sides[k]->error);
    }
  }
  const int per_try = 2 * cfg.burst_packets;
  std::vector<int> lost_per_try;
  std::vector<double> complete_ms;
  int worst = 0;
  std::uint64_t total_lost = 0, total_sent = 0;
  for (const auto& r : results) {
    const int lost = per_try - r.arrived;
    lost_per_try.push_back(lost);
    worst = std::max(worst, lost);
    total_lost += static_cast<std::uint64_t>(lost);
    total_sent += static_cast<std::uint64_t>(per_try);
    if (r.complete_ms) complete_ms.push_back(*r.complete_ms);
  }
  std::sort(complete_ms.begin(), complete_ms.end());
  const double loss_percent =
      total_sent ? 100.0 * static_cast<double>(total_lost) / static_cast<double>(total_sent) : 0;
  std::optional<double> relay_cpu;
  if (relay_before && relay_after) relay_cpu = relay_after->total() - relay_before->total();
  const bool all_tries = static_cast<int>(results.size()) == cfg.tries;

  nlohmann::json j;
  j["tool"] = kLoadTool;
  j["url"] = cfg.url;
  j["tls"] = tls;
  j["websocket"] = true;
  j["mode"] = "ws-burst";
  j["tries"] = results.size();
  j["tries_requested"] = cfg.tries;
  j["packets_per_burst"] = cfg.burst_packets;  // per client, each way
  j["size_bytes"] = cfg.size_bytes;
  j["burst_wait_seconds"] = std::chrono::duration<double>(cfg.burst_wait).count();
  j["sent_per_try"] = per_try;
  j["lost_per_try"] = lost_per_try;
  j["worst_try_lost"] = results.empty() ? nlohmann::json() : nlohmann::json(worst);
  j["total_lost"] = total_lost;
  j["total_sent"] = total_sent;
  j["loss_percent"] = loss_percent;
  j["late_packets"] = sh.late.load();
  j["tries_complete"] = complete_ms.size();
  if (!complete_ms.empty()) {
    j["burst_complete_ms"] = {{"p50", NearestRankPercentile(complete_ms, 50)},
                              {"max", complete_ms.back()}};
  }
  j["run_seconds"] = run_seconds;
  if (cfg.relay_pid) {
    j["relay_pid"] = cfg.relay_pid;
    j["relay_cpu_seconds"] = relay_cpu ? nlohmann::json(*relay_cpu) : nlohmann::json();
    j["relay_rss_bytes"] = relay_rss ? nlohmann::json(*relay_rss) : nlohmann::json();
  }
  j["errors"] = errors;

  if (cfg.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "derp-load ws-burst against %s (WebSocket over %s): 2 clients, %d x %zu B each way at "
        "once, %d tries\n",
        cfg.url.c_str(), tls ? "TLS" : "plain TCP", cfg.burst_packets, cfg.size_bytes, cfg.tries);
    Table per({"try", "lost", "of", "all in (ms)"});
    for (std::size_t t = 0; t < results.size(); ++t) {
      per.AddRow({std::to_string(t + 1), std::to_string(lost_per_try[t]), std::to_string(per_try),
                  results[t].complete_ms ? Fixed(*results[t].complete_ms, 1) : std::string("-")});
    }
    per.Print(stdout);
    Table t;
    t.AddRow({"tries", std::to_string(results.size()) + " of " + std::to_string(cfg.tries)});
    t.AddRow({"lost", std::to_string(total_lost) + " of " + std::to_string(total_sent) + " (" +
                          Fixed(loss_percent, 3) + " %)"});
    t.AddRow({"worst try lost", std::to_string(worst) + " of " + std::to_string(per_try)});
    t.AddRow({"late (after the wait)", std::to_string(sh.late.load())});
    if (!complete_ms.empty()) {
      t.AddRow({"burst all in, p50 / max", Fixed(NearestRankPercentile(complete_ms, 50), 1) +
                                               " / " + Fixed(complete_ms.back(), 1) + " ms"});
    }
    if (cfg.relay_pid) {
      t.AddRow({"relay CPU", relay_cpu ? Fixed(*relay_cpu, 2) + " s" : "n/a: " + relay_error});
    }
    t.Print(stdout);
    std::printf("summary: %llu of %llu packets lost, worst try %d of %d\n",
                static_cast<unsigned long long>(total_lost),
                static_cast<unsigned long long>(total_sent), worst, per_try);
  }
  if (!errors.empty() || !all_tries) {
    std::fprintf(stderr, "%s: %s\n", kLoadTool.data(),
                 errors.empty() ? "the run stopped before every try"
                                : ("connection error: " + errors[0]).c_str());
    return 1;
  }
  return 0;
}

}  // namespace derpkit::bench
