// RoutingClock (relay/routing_clock.h): one time per pass, nested passes, the clock outside.
#include "relay/routing_clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace derpkit::relay {
namespace {

using namespace std::chrono_literals;

TEST(RoutingClock, APassStampsOneTimeAndOutsideReadsTheClock) {
  RoutingClock clock;
  const auto before = RoutingClock::Clock::now();
  RoutingClock::Clock::time_point in_pass;
  {
    const RoutingClock::Pass pass(clock);
    in_pass = clock.Now();
    EXPECT_GE(in_pass, before);
    std::this_thread::sleep_for(2ms);
    EXPECT_EQ(clock.Now(), in_pass) << "every packet of a pass gets the pass's time";
    {
      const RoutingClock::Pass inner(clock);
      EXPECT_GE(clock.Now() - in_pass, 2ms) << "a nested pass has its own time";
    }
    EXPECT_EQ(clock.Now(), in_pass) << "and gives the outer one's back";
  }
  std::this_thread::sleep_for(1ms);
  EXPECT_GE(clock.Now() - in_pass, 3ms) << "outside a pass: the clock";
}

}  // namespace
}  // namespace derpkit::relay
