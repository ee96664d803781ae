// NormalizeGoFlags: the command lines derper's and Tailscale's tools' users type, as CLI11 needs
// them.
#include "lib/util/go_flags.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace derpkit {
namespace {

std::vector<std::string> Normalize(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return NormalizeGoFlags(static_cast<int>(args.size()), args.data());
}

TEST(NormalizeGoFlags, LongNamesWithOneDashGetTwo) {
  EXPECT_EQ(Normalize({"-hostname", "derp.example.com", "-stun-port=3478", "--certmode", "manual"}),
            (std::vector<std::string>{"--hostname", "derp.example.com", "--stun-port=3478",
                                      "--certmode", "manual"}));
}

TEST(NormalizeGoFlags, OneLetterFlagsStayAndLoseTheirEqualsSign) {
  EXPECT_EQ(
      Normalize({"-a", ":443", "-c=/var/lib/derper/derper.key", "-4", "-v"}),
      (std::vector<std::string>{"-a", ":443", "-c", "/var/lib/derper/derper.key", "-4", "-v"}));
}

TEST(NormalizeGoFlags, NumbersAndEverythingAfterDoubleDashStay) {
  EXPECT_EQ(Normalize({"--http-port", "-1", "--", "-hostname", "x"}),
            (std::vector<std::string>{"--http-port", "-1", "--", "-hostname", "x"}));
  EXPECT_TRUE(Normalize({}).empty());
}

}  // namespace
}  // namespace derpkit
