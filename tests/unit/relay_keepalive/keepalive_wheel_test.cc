// Tests of relay::KeepAliveWheel (relay/keepalive_wheel.h): an id comes round in the first tick
// at or after its due time and not before, once; a tick visits only its own ids; entries beyond
// the span come round early (the shard reschedules them); a long stall takes everything once.
#include "relay/keepalive_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace derpkit::relay {
namespace {

using namespace std::chrono_literals;
using Clock = KeepAliveWheel::Clock;

std::vector<std::uint64_t> Take(KeepAliveWheel& wheel, Clock::time_point now) {
  std::vector<std::uint64_t> out;
  wheel.TakeDue(now, out);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(KeepAliveWheelTest, AnIdComesRoundInTheFirstTickAtOrAfterItsDueTimeAndOnce) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(1s, 60s, t0);
  wheel.Schedule(7, t0 + 2500ms);  // tick 3
  wheel.Schedule(8, t0 + 3s);      // tick 3 exactly
  wheel.Schedule(9, t0 + 10s);
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_TRUE(Take(wheel, t0 + 1s).empty());
  EXPECT_TRUE(Take(wheel, t0 + 2999ms).empty());
  EXPECT_EQ(Take(wheel, t0 + 3s), (std::vector<std::uint64_t>{7, 8}));
  EXPECT_TRUE(Take(wheel, t0 + 3500ms).empty());
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_TRUE(Take(wheel, t0 + 9s).empty());
  EXPECT_EQ(Take(wheel, t0 + 10s), (std::vector<std::uint64_t>{9}));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(KeepAliveWheelTest, ATickVisitsOnlyItsOwnIds) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(1s, 60s, t0);
  for (std::uint64_t id = 0; id < 600; ++id)
    wheel.Schedule(id, t0 + std::chrono::seconds(id % 60 + 1));
  for (int s = 1; s <= 60; ++s) {
    const auto due = Take(wheel, t0 + std::chrono::seconds(s));
    ASSERT_EQ(due.size(), 10u) << "second " << s;
    for (std::uint64_t id : due) EXPECT_EQ(id % 60 + 1, static_cast<std::uint64_t>(s));
  }
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(KeepAliveWheelTest, ADueTimeThatHasPassedComesRoundInTheNextTick) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(1s, 60s, t0);
  EXPECT_TRUE(Take(wheel, t0 + 5s).empty());
  wheel.Schedule(1, t0 + 2s);
  EXPECT_TRUE(Take(wheel, t0 + 5500ms).empty());
  EXPECT_EQ(Take(wheel, t0 + 6s), (std::vector<std::uint64_t>{1}));
}

TEST(KeepAliveWheelTest, AnEntryBeyondTheSpanComesRoundEarlyAndThenOnTimeWhenRescheduled) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(1s, 10s, t0);  // 12 slots
  const auto due = t0 + 30s;
  wheel.Schedule(5, due);
  std::vector<std::uint64_t> out;
  int early_visits = 0;
  for (int s = 1; s <= 30; ++s) {
    const auto now = t0 + std::chrono::seconds(s);
    out.clear();
    wheel.TakeDue(now, out);
    for (std::uint64_t id : out) {
      ASSERT_EQ(id, 5u);
      if (now < due) {
        ++early_visits;
        wheel.Schedule(id, due);  // what the shard does for a KeepAlive not due yet
      } else {
        EXPECT_EQ(s, 30);
      }
    }
    if (s == 30) {
      EXPECT_EQ(out.size(), 1u);
    }
  }
  EXPECT_GE(early_visits, 1);
  EXPECT_LE(early_visits, 2);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(KeepAliveWheelTest, AfterALongStallEveryEntryIsTakenOnce) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(1s, 60s, t0);
  for (std::uint64_t id = 1; id <= 100; ++id)
    wheel.Schedule(id, t0 + std::chrono::seconds(id % 50 + 1));
  const auto all = Take(wheel, t0 + 1h);
  ASSERT_EQ(all.size(), 100u);
  for (std::uint64_t id = 1; id <= 100; ++id) EXPECT_EQ(all[id - 1], id);
  EXPECT_TRUE(Take(wheel, t0 + 2h).empty());
}

TEST(KeepAliveWheelTest, ATickShorterThanTheClockStepStillWorks) {
  const Clock::time_point t0{};
  KeepAliveWheel wheel(10ms, 100ms, t0);
  wheel.Schedule(3, t0 + 25ms);
  EXPECT_TRUE(Take(wheel, t0 + 20ms).empty());
  EXPECT_EQ(Take(wheel, t0 + 30ms), (std::vector<std::uint64_t>{3}));
}

}  // namespace
}  // namespace derpkit::relay
