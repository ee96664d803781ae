// A token bucket with the semantics of golang.org/x/time/rate's Limiter.Allow, which derper's
// --accept-connection-limit/--accept-connection-burst use: `rate_per_second` tokens are added
// per second up to `burst`; the bucket starts full; each Allow() takes one token or says no.
// A rate of +Inf allows everything (whatever the burst); a rate of 0 allows only the first
// `burst` calls; a burst of 0 with a finite rate allows nothing.
//
// Pure: the caller passes the time (tests inject it). Not thread-safe: one owner calls it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>

namespace derpkit {

class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  TokenBucket(double rate_per_second, std::int64_t burst)
      : rate_per_second_(rate_per_second),
        burst_(static_cast<double>(std::max<std::int64_t>(burst, 0))),
        tokens_(burst_) {}

  bool unlimited() const { return std::isinf(rate_per_second_) && rate_per_second_ > 0; }

  // Takes one token at `now` if there is one. Time that goes backwards adds nothing.
  bool Allow(TimePoint now) {
    if (unlimited()) return true;
    if (last_ && now > *last_) {
      const double elapsed_seconds = std::chrono::duration<double>(now - *last_).count();
      tokens_ = std::min(burst_, tokens_ + elapsed_seconds * rate_per_second_);
    }
    if (!last_ || now > *last_) last_ = now;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Tokens left after the last Allow() (not refilled to any later time).
  double tokens() const { return tokens_; }

 private:
  double rate_per_second_;
  double burst_;
  double tokens_;
  std::optional<TimePoint> last_;
};

}  // namespace derpkit
