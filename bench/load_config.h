// derp-load's settings: what the command line asked for, checked once before anything connects.
// Built by derp_load.cc's flag parsing on the main thread and read-only afterwards (every event
// loop and sender thread reads it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit::bench {

using namespace std::chrono_literals;

inline constexpr std::string_view kLoadTool = "derp-load";

enum class LoadMode {
  kThroughput,  // pairs A -> B at an offered rate, counting delivery and loss
  kLatency,     // one echo pair's round trips, idle or beside background pairs
  kWsBurst,     // two WebSocket clients burst at each other, --tries times
};

enum class SenderKind {
  // One coroutine per pair on an event loop: wakes every millisecond and writes every frame that
  // is due in one gather write (or, with tls_record_per_frame, one write per frame).
  kPaced,
  // One thread per pair on a blocking socket: one write() (TLS: one SSL_write) per frame, woken
  // by ~1 ms nanosleeps, as a simple C load generator does.
  kBursty,
};

struct LoadConfig {
  std::string url;
  std::string dial_host;
  std::string ca_file;
  bool insecure = false;
  LoadMode mode = LoadMode::kThroughput;
  SenderKind sender = SenderKind::kPaced;
  // Every DERP frame leaves in its own write: over TLS its own TLS record, as Tailscale's Go
  // client writes (a bufio.Writer flushed after every SendPacket).
  bool tls_record_per_frame = false;
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
  // WebSocket burst mode.
  int tries = 20;
  int burst_packets = 200;
  std::chrono::nanoseconds burst_wait = 2s;

  bool paced() const { return rate_mbps > 0; }
  // Pairs carrying bulk load: all of them in throughput mode, the background in latency mode.
  int load_pairs() const {
    if (mode == LoadMode::kThroughput) return pairs;
    if (mode == LoadMode::kLatency) return background_mbps > 0 ? pairs : 0;
    return 0;
  }
  double load_mbps() const { return mode == LoadMode::kThroughput ? rate_mbps : background_mbps; }

  // Returns the first problem with the settings, worded for the command line.
  Expected<void, std::string> Validate() const;
};

}  // namespace derpkit::bench
