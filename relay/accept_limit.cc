// AcceptLimiter: see accept_limit.h. Runs on the accepting thread (shard 0).
#include "relay/accept_limit.h"

#include "lib/net/log.h"

namespace derpkit::relay {
namespace {
constexpr auto kLogEvery = std::chrono::seconds(10);
}  // namespace

AcceptLimiter::AcceptLimiter(double connections_per_second, std::int64_t burst)
    : bucket_(connections_per_second, burst),
      connections_per_second_(connections_per_second),
      burst_(burst) {}

bool AcceptLimiter::Admit(std::chrono::steady_clock::time_point now, const std::string& source) {
  if (bucket_.Allow(now)) {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  ++unlogged_rejections_;
  if (last_log_ == std::chrono::steady_clock::time_point{} || now - last_log_ >= kLogEvery) {
    LOG_WARN(
        "accept limit: closed %llu new connection(s) over --accept-connection-limit %g/s "
        "(burst %lld), latest from %s",
        static_cast<unsigned long long>(unlogged_rejections_), connections_per_second_,
        static_cast<long long>(burst_), source.c_str());
    unlogged_rejections_ = 0;
    last_log_ = now;
  }
  return false;
}

}  // namespace derpkit::relay
