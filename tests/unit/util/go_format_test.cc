// Go's duration and time spellings (lib/util/go_format.h), against values Go itself prints.
#include "lib/util/go_format.h"

#include <gtest/gtest.h>

namespace derpkit {
namespace {

using namespace std::chrono_literals;

TEST(GoDurationString, MatchesGo) {
  const std::pair<std::chrono::nanoseconds, const char*> cases[] = {
      {0ns, "0s"},
      {1ns, "1ns"},
      {999ns, "999ns"},
      {1500ns, "1.5µs"},
      {451000ns, "451µs"},
      {450943ns, "450.943µs"},
      {12300us, "12.3ms"},
      {100us, "100µs"},
      {1s, "1s"},
      {1500ms, "1.5s"},
      {61500ms, "1m1.5s"},
      {1h, "1h0m0s"},
      {3723s + 4ms, "1h2m3.004s"},
      {-5ms, "-5ms"},
      {std::chrono::nanoseconds(INT64_MIN), "-2562047h47m16.854775808s"},
  };
  for (const auto& [d, want] : cases) EXPECT_EQ(GoDurationString(d), want) << d.count();
}

TEST(GoRound, HalfAwayFromZero) {
  EXPECT_EQ(GoRound(450943ns, 100us), 500us);
  EXPECT_EQ(GoRound(449999ns, 100us), 400us);
  EXPECT_EQ(GoRound(450000ns, 100us), 500us);
  EXPECT_EQ(GoRound(-450000ns, 100us), -500us);
  EXPECT_EQ(GoRound(12345678ns, 100us), 12300us);
  EXPECT_EQ(GoRound(5ns, 0ns), 5ns);  // m ≤ 0: unchanged
}

TEST(GoRfc3339Nano, TrimsTheFractionAndWritesTheZone) {
  const auto t = std::chrono::system_clock::time_point{} + 1796016176s + 123456789ns;
  EXPECT_EQ(GoRfc3339Nano(t), "2026-11-30T05:22:56.123456789Z");
  EXPECT_EQ(GoRfc3339Nano(t, -4 * 3600), "2026-11-30T01:22:56.123456789-04:00");
  EXPECT_EQ(GoRfc3339Nano(t, 5 * 3600 + 1800), "2026-11-30T10:52:56.123456789+05:30");
  const auto whole = std::chrono::system_clock::time_point{} + 1796016176s + 120ms;
  EXPECT_EQ(GoRfc3339Nano(whole), "2026-11-30T05:22:56.12Z");
  EXPECT_EQ(GoRfc3339Nano(std::chrono::system_clock::time_point{} + 1796016176s),
            "2026-11-30T05:22:56Z");
}

TEST(GoRfc3339Nano, KeepsTheFractionPositiveAroundTheEpoch) {
  const std::chrono::system_clock::time_point epoch{};
  EXPECT_EQ(GoRfc3339Nano(epoch), "1970-01-01T00:00:00Z");
  EXPECT_EQ(GoRfc3339Nano(epoch + 1us), "1970-01-01T00:00:00.000001Z");
  // Go counts from the earlier whole second: -1.5s is 23:59:58 and a half.
  EXPECT_EQ(GoRfc3339Nano(epoch - 1500ms), "1969-12-31T23:59:58.5Z");
  EXPECT_EQ(GoRfc3339Nano(epoch - 1ns), "1969-12-31T23:59:59.999999999Z");
}

TEST(PadRunes, CountsRunesLikeGoFmt) {
  EXPECT_EQ(PadRunes("nyc", 3, false), "nyc");
  EXPECT_EQ(PadRunes("lo", 3, false), " lo");
  EXPECT_EQ(PadRunes("toolong", 3, false), "toolong");
  EXPECT_EQ(PadRunes("12.3ms", 7, true), "12.3ms ");
  EXPECT_EQ(PadRunes("451µs", 7, true), "451µs  ");  // µ is 2 bytes but one rune
  EXPECT_EQ(PadRunes("", 7, true), "       ");
}

}  // namespace
}  // namespace derpkit
