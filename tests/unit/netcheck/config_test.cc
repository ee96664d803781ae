// netcheck's Config::Validate (netcheck/config.h): each bad value names its flag.
#include "netcheck/config.h"

#include <gtest/gtest.h>

namespace derpkit::netcheck {
namespace {

TEST(Config, DefaultsAreValid) {
  Config c;
  EXPECT_EQ(c.Validate(), std::nullopt);
  EXPECT_EQ(c.output_format(), OutputFormat::kText);
}

TEST(Config, EachProblemNamesItsFlag) {
  const std::pair<void (*)(Config&), const char*> cases[] = {
      {[](Config& c) { c.format = "xml"; }, "--format xml"},
      {[](Config& c) { c.every = std::chrono::seconds(-1); }, "--every"},
      {[](Config& c) { c.bind_address = "localhost"; }, "--bind-address localhost"},
      {[](Config& c) { c.bind_port = 65536; }, "--bind-port 65536"},
      {[](Config& c) { c.captive_port = 0; }, "--captive-port 0"},
      {[](Config& c) { c.connect_timeout = {}; }, "--connect-timeout"},
      {[](Config& c) { c.derp_map_sources = {""}; }, "--derp-map"},
  };
  for (const auto& [mutate, want] : cases) {
    Config c;
    mutate(c);
    const auto problem = c.Validate();
    ASSERT_TRUE(problem.has_value()) << want;
    EXPECT_EQ(problem->rfind(want, 0), 0u) << *problem;
  }
}

TEST(Config, Formats) {
  Config c;
  c.format = "json";
  EXPECT_EQ(c.output_format(), OutputFormat::kJson);
  c.format = "json-line";
  EXPECT_EQ(c.output_format(), OutputFormat::kJsonLine);
  c.format = "text";
  EXPECT_EQ(c.output_format(), OutputFormat::kText);
}

}  // namespace
}  // namespace derpkit::netcheck
