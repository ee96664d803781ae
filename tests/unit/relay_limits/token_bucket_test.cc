// TokenBucket (lib/util/token_bucket.h) against golang.org/x/time/rate's Allow semantics, with
// an injected clock: no test here reads the real time.
#include "lib/util/token_bucket.h"

#include <gtest/gtest.h>

#include <limits>

namespace derpkit {
namespace {

using namespace std::chrono_literals;
const TokenBucket::TimePoint kStart = TokenBucket::TimePoint() + 1000h;

int AllowedOf(TokenBucket& bucket, int tries, TokenBucket::TimePoint at) {
  int allowed = 0;
  for (int i = 0; i < tries; ++i) allowed += bucket.Allow(at) ? 1 : 0;
  return allowed;
}

TEST(TokenBucket, StartsFullAndRefillsAtTheRate) {
  TokenBucket bucket(2.0, 3);  // 2 per second, burst 3
  EXPECT_EQ(AllowedOf(bucket, 5, kStart), 3) << "a new bucket holds the whole burst";
  EXPECT_FALSE(bucket.Allow(kStart + 400ms)) << "0.8 of a token is not one";
  EXPECT_TRUE(bucket.Allow(kStart + 600ms)) << "1.2 tokens: one, 0.2 left";
  EXPECT_FALSE(bucket.Allow(kStart + 600ms));
  EXPECT_EQ(AllowedOf(bucket, 10, kStart + 1600ms), 2) << "one second later: 2.2 tokens";
  EXPECT_EQ(AllowedOf(bucket, 10, kStart + 1h), 3) << "never more than the burst";
}

TEST(TokenBucket, InfiniteRateAllowsEverythingWhateverTheBurst) {
  TokenBucket bucket(std::numeric_limits<double>::infinity(), 0);
  EXPECT_TRUE(bucket.unlimited());
  EXPECT_EQ(AllowedOf(bucket, 1000, kStart), 1000);
}

TEST(TokenBucket, ZeroRateAllowsOnlyTheBurst) {
  TokenBucket bucket(0.0, 2);
  EXPECT_FALSE(bucket.unlimited());
  EXPECT_EQ(AllowedOf(bucket, 5, kStart), 2);
  EXPECT_EQ(AllowedOf(bucket, 5, kStart + 24h), 0) << "a zero rate never refills";
}

TEST(TokenBucket, ZeroBurstWithAFiniteRateAllowsNothing) {
  TokenBucket bucket(1000.0, 0);
  EXPECT_EQ(AllowedOf(bucket, 5, kStart), 0);
  EXPECT_EQ(AllowedOf(bucket, 5, kStart + 10s), 0);
}

TEST(TokenBucket, DerperDefaultBurstMakesAnyRateUnlimitedInPractice) {
  TokenBucket bucket(1.0, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(AllowedOf(bucket, 100000, kStart), 100000);
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket bucket(1.0, 1);
  EXPECT_TRUE(bucket.Allow(kStart + 10s));
  EXPECT_FALSE(bucket.Allow(kStart)) << "an earlier time must not refill";
  EXPECT_FALSE(bucket.Allow(kStart + 10s + 500ms));
  EXPECT_TRUE(bucket.Allow(kStart + 12s));
}

}  // namespace
}  // namespace derpkit
