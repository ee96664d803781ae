#include "lib/util/duration.h"

#include <gtest/gtest.h>

namespace derpkit {
namespace {

using std::chrono::nanoseconds;
using namespace std::chrono_literals;

TEST(ParseGoDuration, ParsesDerperDefaults) {
  EXPECT_EQ(*ParseGoDuration("10m0s"), nanoseconds(10min));
  EXPECT_EQ(*ParseGoDuration("15s"), nanoseconds(15s));
  EXPECT_EQ(*ParseGoDuration("2s"), nanoseconds(2s));
  EXPECT_EQ(*ParseGoDuration("0"), nanoseconds(0));
  EXPECT_EQ(*ParseGoDuration("1.5h"), nanoseconds(90min));
  EXPECT_EQ(*ParseGoDuration("300ms"), nanoseconds(300ms));
  EXPECT_EQ(*ParseGoDuration("1h2m3s4ms5us6ns"), nanoseconds(1h + 2min + 3s + 4ms + 5us + 6ns));
  EXPECT_EQ(*ParseGoDuration("-1s"), nanoseconds(-1s));
  EXPECT_EQ(*ParseGoDuration(".5s"), nanoseconds(500ms));
}

TEST(ParseGoDuration, RejectsMalformedWithPreciseErrors) {
  EXPECT_EQ(ParseGoDuration("").error(), DurationError::kEmpty);
  EXPECT_EQ(ParseGoDuration("-").error(), DurationError::kBadNumber);
  EXPECT_EQ(ParseGoDuration("s").error(), DurationError::kBadNumber);
  EXPECT_EQ(ParseGoDuration("10").error(), DurationError::kMissingUnit);
  EXPECT_EQ(ParseGoDuration("10x").error(), DurationError::kUnknownUnit);
  EXPECT_EQ(ParseGoDuration("10 s").error(), DurationError::kUnknownUnit);
  EXPECT_EQ(ParseGoDuration("99999999999h").error(), DurationError::kOverflow);
  EXPECT_EQ(Describe(DurationError::kMissingUnit), "missing unit (ns, us, ms, s, m or h)");
}

}  // namespace
}  // namespace derpkit
