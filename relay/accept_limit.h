// The main listener's accept rate limit (--accept-connection-limit / --accept-connection-burst,
// derp-protocol.md §8.8): like derper, a connection over the rate is accepted and closed at
// once (the client sees the relay is there and busy, and backs off; nothing piles up in the
// kernel's accept queue). Counted under derper's names, tls_listener_accepted_connections and
// tls_listener_rejected_connections; rejections are logged at most once per 10 s, with how many
// and the latest source, so a reconnect storm does not become a log storm.
//
// Unlike derper (TLS listener only) it also limits a plain main listener: behind a TLS-
// terminating proxy or in --dev, a reconnect storm costs the same DERP handshakes.
//
// Thread affinity: Admit() on the one thread that accepts (shard 0's loop); the counters may
// be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "lib/util/token_bucket.h"

namespace derpkit::relay {

class AcceptLimiter {
 public:
  AcceptLimiter(double connections_per_second, std::int64_t burst);

  // Says whether a connection accepted at `now` from `source` ("ip:port") may be served.
  bool Admit(std::chrono::steady_clock::time_point now, const std::string& source);

  std::uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  std::uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  TokenBucket bucket_;
  double connections_per_second_;
  std::int64_t burst_;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::chrono::steady_clock::time_point last_log_{};
  std::uint64_t unlogged_rejections_ = 0;
};

}  // namespace derpkit::relay
