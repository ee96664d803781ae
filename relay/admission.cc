// Client admission: cache, coalescing, the in-flight bound and the worker pool (see admission.h).
// Shards call Admit(); workers run Verify() and Finish(); mu_ guards everything shared.
#include "relay/admission.h"

#include <cstring>
#include <utility>

#include "lib/net/log.h"

namespace derpkit::relay {
namespace {

using AdmissionClock = std::chrono::steady_clock;

// A queued verification whose client has waited this long is answered "overloaded" without
// asking anyone: the client's 10 s handshake deadline has passed or nearly so.
constexpr std::chrono::seconds kMaxQueueWait{8};

Verdict RefusedVerdict(Refusal why, std::string detail) {
  Verdict v;
  v.refusal = why;
  v.detail = std::move(detail);
  return v;
}

Verdict ShutdownVerdict() {
  Verdict v = RefusedVerdict(Refusal::kOverloaded, "the relay is stopping");
  v.shutdown = true;
  return v;
}

// Wraps an Asio completion handler (a coroutine waiting in Admit or SelfCheck) so that a worker
// thread can complete it: the value is posted to the handler's own executor, the shard whose
// coroutine waits. The handler is shared only so that std::function can hold it.
template <typename T, typename Handler>
std::function<void(T)> PostTo(Handler handler) {
  auto shared = std::make_shared<Handler>(std::move(handler));
  return [shared](T value) {
    auto executor = asio::get_associated_executor(*shared);
    asio::post(executor,
               [shared, value = std::move(value)]() mutable { (*shared)(std::move(value)); });
  };
}

}  // namespace

std::size_t Admission::CacheKeyHash::operator()(const CacheKey& k) const noexcept {
  std::size_t h = derp::PublicKeyHash{}(k.key);
  // The key part is already a keyed hash; folding the address in simply is enough.
  for (std::byte b : k.ip) h = h * 131 + static_cast<std::size_t>(b);
  return h;
}

Admission::Admission(const AdmissionConfig& config) : config_(config) {
  if (!config_.allow_keys_file.empty()) {
    allow_keys_ =
        std::make_unique<AllowKeysFile>(config_.allow_keys_file, config_.allow_keys_poll_interval);
  }
  if (config_.verify_clients || !config_.verify_client_url.empty()) {
    pool_ = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(config_.worker_threads));
  }
  if (!config_.enabled()) return;
  std::string how;
  if (allow_keys_) how = "the keys in " + config_.allow_keys_file + " get in";
  if (config_.verify_clients) {
    how +=
        (how.empty() ? "" : "; ") + std::string("ask tailscaled at ") + config_.tailscaled_socket;
  }
  if (!config_.verify_client_url.empty()) {
    const char* joint = how.empty() ? "ask " : config_.verify_clients ? ", then " : "; ask ";
    how += joint + config_.verify_client_url +
           (config_.verify_client_url_fail_open ? " (fail open)" : " (fail closed)");
  }
  if (!pool_) how += "; nobody else";
  LOG_INFO("client verification: %s", how.c_str());
}

Admission::~Admission() { Stop(); }

void Admission::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (joined_) return;
    joined_ = true;
  }
  // Every posted job runs (those still queued return ShutdownVerdict() at once), so every waiting
  // coroutine gets its answer; join() returns when the pool has no work left.
  if (pool_) pool_->join();
}

asio::awaitable<Verdict> Admission::Admit(derp::PublicKey key, netaddr::IpAddress source,
                                          std::string remote) {
  if (allow_keys_ && allow_keys_->Contains(key)) {
    Verdict v;
    v.admit = true;
    v.via = AdmitVia::kAllowKeysFile;
    v.detail = "listed in --allow-keys-file";
    Record(v, key, remote);
    co_return v;
  }
  if (!pool_) {
    Verdict v = RefusedVerdict(Refusal::kNotInAllowKeysFile, "not listed in --allow-keys-file");
    Record(v, key, remote);
    co_return v;
  }
  const netaddr::IpAddress ip = source.Unmap();
  const CacheKey ck{key, ip.As16()};
  const std::string source_text = ip.IsUnspecified() ? "" : ip.ToString();
  std::optional<Verdict> cached;
  {
    std::lock_guard lock(mu_);
    cached = CachedLocked(ck, AdmissionClock::now());
  }
  if (cached) {
    Record(*cached, key, remote);
    co_return *cached;
  }
  // A named initiation, not a temporary in the co_await's full expression: GCC 12 destroys such
  // temporaries twice.
  auto start = [this, ck, source_text](auto handler) {
    Start(ck, source_text, PostTo<Verdict>(std::move(handler)));
  };
  Verdict v = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Verdict)>(
      start, asio::use_awaitable);
  Record(v, key, remote);
  co_return v;
}

void Admission::Start(const CacheKey& ck, const std::string& source_text, Completion done) {
  std::lock_guard lock(mu_);
  // `done` only posts, so answering under the lock is fine.
  if (stopping_) return done(ShutdownVerdict());
  // Another connection's verification may have finished since Admit() looked.
  if (auto cached = CachedLocked(ck, AdmissionClock::now())) return done(*cached);
  if (auto it = pending_.find(ck); it != pending_.end()) {
    it->second.waiters.push_back(std::move(done));
    return;
  }
  if (stats_.in_flight >= config_.max_in_flight) {
    return done(RefusedVerdict(Refusal::kOverloaded,
                               std::to_string(stats_.in_flight) +
                                   " verifications already in flight (--verify-max-in-flight)"));
  }
  pending_[ck].waiters.push_back(std::move(done));
  ++stats_.in_flight;
  asio::post(*pool_, [this, ck, source_text, queued = AdmissionClock::now()] {
    const Verdict v = Verify(ck.key, source_text, queued);
    Finish(ck, v);
  });
}

Verdict Admission::Verify(const derp::PublicKey& key, const std::string& source_text,
                          AdmissionClock::time_point queued) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return ShutdownVerdict();
  }
  const auto waited = AdmissionClock::now() - queued;
  if (waited > kMaxQueueWait) {
    return RefusedVerdict(
        Refusal::kOverloaded,
        "waited " +
            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
            " ms for a verifier (too many verifications queued)");
  }
  Verdict v;
  if (config_.verify_clients) {
    {
      std::lock_guard lock(mu_);
      ++stats_.tailscaled_requests;
    }
    v = AskTailscaled(config_.tailscaled_socket, key, config_.tailscaled_timeout);
    if (!v.admit) return v;
  }
  if (!config_.verify_client_url.empty()) {
    {
      std::lock_guard lock(mu_);
      ++stats_.url_requests;
    }
    v = AskAdmissionUrl(config_.verify_client_url, key, source_text,
                        config_.verify_client_url_fail_open, config_.url_timeout);
  }
  return v;
}

void Admission::Finish(const CacheKey& ck, const Verdict& verdict) {
  std::vector<Completion> waiters;
  {
    std::lock_guard lock(mu_);
    const bool cacheable =
        !verdict.shutdown && (verdict.admit || verdict.refusal != Refusal::kOverloaded);
    if (cacheable) CacheLocked(ck, verdict, AdmissionClock::now());
    auto it = pending_.find(ck);
    if (it != pending_.end()) {
      waiters = std::move(it->second.waiters);
      pending_.erase(it);
    }
    --stats_.in_flight;
  }
  for (Completion& w : waiters) w(verdict);
}

std::optional<Verdict> Admission::CachedLocked(const CacheKey& ck, AdmissionClock::time_point now) {
  auto it = cache_.find(ck);
  if (it == cache_.end()) return std::nullopt;
  if (now >= it->second.expires) {
    cache_order_.erase(it->second.order);
    cache_.erase(it);
    return std::nullopt;
  }
  Verdict v = it->second.verdict;
  v.cached = true;
  if (v.admit) v.via = AdmitVia::kCache;
  return v;
}

void Admission::CacheLocked(const CacheKey& ck, const Verdict& verdict,
                            AdmissionClock::time_point now) {
  // A verifier's yes is remembered longer than anything else: a refusal, or a fail-open
  // admission that only says the controller was down.
  const bool confirmed = verdict.admit && verdict.via == AdmitVia::kVerifier;
  const auto ttl = confirmed ? config_.cache_allow_ttl : config_.cache_deny_ttl;
  if (ttl.count() == 0 || config_.cache_max_entries == 0) return;
  if (auto it = cache_.find(ck); it != cache_.end()) {
    cache_order_.erase(it->second.order);
    cache_.erase(it);
  }
  // Oldest first: drop what has expired at the front, then whatever the bound requires.
  while (!cache_order_.empty()) {
    auto front = cache_.find(cache_order_.front());
    if (cache_.size() < config_.cache_max_entries && now < front->second.expires) break;
    cache_.erase(front);
    cache_order_.pop_front();
  }
  cache_order_.push_back(ck);
  cache_.emplace(ck, CacheEntry{verdict, now + ttl, std::prev(cache_order_.end())});
}

void Admission::Record(const Verdict& v, const derp::PublicKey& key, const std::string& remote) {
  if (v.shutdown) return;
  const bool log = !v.admit || v.via == AdmitVia::kFailOpen;
  std::uint64_t suppressed = 0;
  bool print = false;
  {
    std::lock_guard lock(mu_);
    if (v.cached) ++stats_.cache_hits;
    if (v.admit) {
      ++stats_.admitted[static_cast<std::size_t>(v.via)];
    } else {
      ++stats_.refused[static_cast<std::size_t>(v.refusal)];
    }
    if (log) {
      const auto now = AdmissionClock::now();
      if (now - log_window_ >= std::chrono::seconds(1)) {
        log_window_ = now;
        logs_in_window_ = 0;
        suppressed = std::exchange(logs_suppressed_, 0);
      }
      print = logs_in_window_ < kRefusalLogsPerSecond;
      if (print) {
        ++logs_in_window_;
      } else {
        ++logs_suppressed_;
      }
    }
  }
  if (suppressed > 0) {
    LOG_INFO("admission: %llu more refusals or fail-open admissions were not logged",
             static_cast<unsigned long long>(suppressed));
  }
  if (!print) return;
  const char* cached = v.cached ? ", cached" : "";
  if (v.admit) {
    LOG_WARN("%s: admitting client %s: %s (fail open%s)", remote.c_str(), key.ToText().c_str(),
             v.detail.c_str(), cached);
  } else {
    LOG_INFO("%s: refused client %s: %s (%s%s)", remote.c_str(), key.ToText().c_str(),
             v.detail.c_str(),
             std::string(kRefusalLabel[static_cast<std::size_t>(v.refusal)]).c_str(), cached);
  }
}

asio::awaitable<std::string> Admission::SelfCheck(derp::PublicKey relay_key) {
  std::string problems;
  if (allow_keys_) {
    const std::string problem = allow_keys_->LastProblem();
    if (!problem.empty()) {
      problems = "--allow-keys-file " + allow_keys_->path() + ": " + problem +
                 " (still admitting the keys loaded before)";
    }
  }
  if (!pool_) co_return problems;
  auto start = [this, relay_key](auto handler) {
    auto deliver = PostTo<std::string>(std::move(handler));
    std::lock_guard lock(mu_);
    if (stopping_) return deliver("the relay is stopping");
    asio::post(*pool_, [this, relay_key, deliver] { deliver(SelfCheckBlocking(relay_key)); });
  };
  std::string verifiers =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(std::string)>(
          start, asio::use_awaitable);
  if (!verifiers.empty()) problems += (problems.empty() ? "" : ", ") + verifiers;
  co_return problems;
}

std::string Admission::SelfCheckBlocking(const derp::PublicKey& relay_key) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return "the relay is stopping";
  }
  // derper checks with the loopback address as the source.
  const std::string source = "::1";
  if (config_.verify_clients) {
    auto self = TailscaledSelfKey(config_.tailscaled_socket, config_.tailscaled_timeout);
    if (!self) return "client verification: asking tailscaled for its node key: " + self.error();
    const Verdict v = AskTailscaled(config_.tailscaled_socket, *self, config_.tailscaled_timeout);
    if (!v.admit) {
      return "client verification: tailscaled's own node " + self->ToText() +
             " does not pass whois: " + v.detail;
    }
    if (config_.verify_client_url.empty()) return "";
    const Verdict u = AskAdmissionUrl(config_.verify_client_url, *self, source,
                                      /*fail_open=*/false, config_.url_timeout);
    if (!u.admit) {
      return "client verification: the admission controller refuses tailscaled's own node " +
             self->ToText() + ": " + u.detail;
    }
    return "";
  }
  // No tailnet node of our own to ask about: any well-formed answer shows the controller works.
  const Verdict u = AskAdmissionUrl(config_.verify_client_url, relay_key, source,
                                    /*fail_open=*/false, config_.url_timeout);
  if (u.admit || u.refusal == Refusal::kUrlDenied) return "";
  return "client verification: " + u.detail;
}

AdmissionStats Admission::Snapshot() const {
  AdmissionStats s;
  {
    std::lock_guard lock(mu_);
    s = stats_;
    s.cache_entries = static_cast<std::int64_t>(cache_.size());
  }
  if (allow_keys_) s.allow_keys = allow_keys_->Snapshot();
  return s;
}

}  // namespace derpkit::relay
