// Client admission (derp-protocol.md §10): whether a client that has sent its ClientInfo may use
// the relay. ClientConn::Handshake asks after opening ClientInfo and before ServerInfo; mesh
// peers never ask. The order of the checks:
//
//   1. --allow-keys-file lists the key             -> admit (nobody is asked)
//   2. only --allow-keys-file is configured        -> refuse (not_in_allow_keys_file)
//   3. a cached decision for (key, source IP)      -> that decision (30 s for an admission, 5 s
//                                                     for a refusal, by default)
//   4. a verification of the same (key, source) is already running -> wait for its answer
//   5. --verify-max-in-flight verifications running -> refuse (overloaded)
//   6. a worker asks tailscaled (--verify-clients), then the admission controller
//      (--verify-client-url), in derper's order; the first refusal ends it.
//
// Why refuse beyond the in-flight bound instead of queueing: a verification can take up to its
// 5 s timeout, and a client waits at most the 10 s handshake deadline; work queued behind a slow
// verifier would be answered after its client has gone, while the queue holds their sockets. A
// refused client reconnects with backoff, and by then the cache (and step 4) absorb the storm.
//
// The shard's event loop never blocks here: steps 1-5 are lookups under a short lock, and step 6
// runs on a small thread pool whose answer is posted back to the waiting connection's shard.
// Every decision is counted (AdmissionStats); every refusal is logged with the key, the source
// and the reason, at most kRefusalLogsPerSecond lines a second (the rest are counted in the
// next line that gets through).
//
// Thread affinity: construct and Stop() on the Server's controlling thread; Admit() and
// SelfCheck() from a shard's thread (their coroutine resumes there); Snapshot() from any thread.
#pragma once

#include <array>
#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/util/netaddr.h"
#include "relay/admission_config.h"
#include "relay/admission_keys.h"
#include "relay/admission_verifiers.h"

namespace derpkit::relay {

// Admission counters, summed for a scrape.
struct AdmissionStats {
  std::array<std::uint64_t, kAdmitViaCount> admitted{};
  std::array<std::uint64_t, kRefusalCount> refused{};
  std::uint64_t cache_hits = 0;           // decisions answered from the cache
  std::uint64_t tailscaled_requests = 0;  // whois requests sent to tailscaled
  std::uint64_t url_requests = 0;         // requests sent to the admission controller
  std::int64_t in_flight = 0;             // verifications asked and not yet answered
  std::int64_t cache_entries = 0;
  AllowKeysFile::Stats allow_keys;
};

class Admission {
 public:
  static constexpr int kRefusalLogsPerSecond = 10;

  // Throws std::runtime_error when --allow-keys-file cannot be loaded.
  explicit Admission(const AdmissionConfig& config);
  ~Admission();
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  bool enabled() const { return config_.enabled(); }

  // Decides about `key` connecting from `source` (`remote` is "ip:port" for the log). Counts the
  // decision and logs a refusal. Parameters are values: they live in the coroutine frame.
  asio::awaitable<Verdict> Admit(derp::PublicKey key, netaddr::IpAddress source,
                                 std::string remote);

  // Whether verification works, for /debug/check: "" when it does (or nothing is configured),
  // else what is wrong. With --verify-clients, as derper: tailscaled's own node key must pass the
  // whole chain (whois, then the admission controller). With only --verify-client-url, the
  // controller must answer 200 {"Allow": bool} for this relay's key (`relay_key`). A malformed
  // new --allow-keys-file version is reported too. Uncached; runs on the worker pool.
  asio::awaitable<std::string> SelfCheck(derp::PublicKey relay_key);

  // Refuses what is still queued and waits for the workers (bounded by the verifier timeouts).
  // Every waiting connection is answered (Verdict::shutdown). Idempotent.
  void Stop();

  AdmissionStats Snapshot() const;

 private:
  struct CacheKey {
    derp::PublicKey key;
    std::array<std::byte, 16> ip{};
    friend bool operator==(const CacheKey&, const CacheKey&) = default;
  };
  struct CacheKeyHash {
    std::size_t operator()(const CacheKey& k) const noexcept;
  };
  struct CacheEntry {
    Verdict verdict;
    std::chrono::steady_clock::time_point expires;
    std::list<CacheKey>::iterator order;
  };
  // Delivers a verdict to one waiting coroutine: posts it to that coroutine's executor (its
  // shard), never runs it inline. Invoked exactly once.
  using Completion = std::function<void(Verdict)>;
  struct Pending {
    std::vector<Completion> waiters;
  };

  // Steps 3-6 after a cache miss on the shard; completes `done` exactly once.
  void Start(const CacheKey& ck, const std::string& source_text, Completion done);
  // Runs on a worker: the verifier requests for one (key, source).
  Verdict Verify(const derp::PublicKey& key, const std::string& source_text,
                 std::chrono::steady_clock::time_point queued);
  // Caches `verdict` and answers everyone waiting for `ck`.
  void Finish(const CacheKey& ck, const Verdict& verdict);
  std::optional<Verdict> CachedLocked(const CacheKey& ck,
                                      std::chrono::steady_clock::time_point now);
  void CacheLocked(const CacheKey& ck, const Verdict& verdict,
                   std::chrono::steady_clock::time_point now);
  std::string SelfCheckBlocking(const derp::PublicKey& relay_key);
  // Counts a decision; logs refusals and fail-open admissions (rate-limited).
  void Record(const Verdict& verdict, const derp::PublicKey& key, const std::string& remote);

  const AdmissionConfig config_;
  std::unique_ptr<AllowKeysFile> allow_keys_;
  // Only when a verifier is configured: --allow-keys-file alone needs no threads.
  std::unique_ptr<asio::thread_pool> pool_;

  mutable std::mutex mu_;
  bool stopping_ = false;                                         // guarded by mu_
  bool joined_ = false;                                           // guarded by mu_
  std::unordered_map<CacheKey, CacheEntry, CacheKeyHash> cache_;  // guarded by mu_
  std::list<CacheKey> cache_order_;                               // oldest first; guarded by mu_
  std::unordered_map<CacheKey, Pending, CacheKeyHash> pending_;   // guarded by mu_
  AdmissionStats stats_;                                          // guarded by mu_
  // Refusal log rate limit, guarded by mu_.
  std::chrono::steady_clock::time_point log_window_{};
  int logs_in_window_ = 0;
  std::uint64_t logs_suppressed_ = 0;
};

}  // namespace derpkit::relay
