// stunc's argument parsing and validation (see config.h). Pure.
#include "stunc/config.h"

#include <charconv>

#include "lib/util/duration.h"
#include "lib/util/netaddr.h"

namespace derpkit::stunc {

Expected<void, std::string> StuncConfig::Validate() const {
  using Err = Unexpected<std::string>;
  if (count && (*count < 1 || *count > kMaxCount)) {
    return Err{"--count " + std::to_string(*count) + ": must be 1.." + std::to_string(kMaxCount)};
  }
  if (timeout.count() <= 0) return Err{"--timeout must be positive"};
  if (interval.count() <= 0) return Err{"--interval must be positive"};
  return {};
}

Expected<std::string, std::string> ParseHostArg(const std::string& arg) {
  using Err = Unexpected<std::string>;
  if (arg.empty()) return Err{"HOST is empty"};
  if (arg.front() != '[') return arg;
  if (arg.back() != ']') return Err{"HOST " + arg + ": missing ']'"};
  std::string inner = arg.substr(1, arg.size() - 2);
  const auto ip = netaddr::ParseIp(inner);
  if (!ip || !ip->is_v6()) return Err{"HOST " + arg + ": brackets hold only an IPv6 address"};
  return inner;
}

Expected<std::uint16_t, std::string> ParsePortArg(const std::string& arg) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), value);
  if (arg.empty() || ec != std::errc{} || end != arg.data() + arg.size() || value < 1 ||
      value > 65535) {
    return Unexpected{"PORT " + arg + ": want a number 1..65535"};
  }
  return static_cast<std::uint16_t>(value);
}

Expected<std::chrono::milliseconds, std::string> ParseDurationArg(const std::string& flag,
                                                                  const std::string& text) {
  auto d = ParseGoDuration(text);
  if (!d) return Unexpected{flag + " " + text + ": " + std::string(Describe(d.error()))};
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (ms.count() <= 0) return Unexpected{flag + " " + text + ": must be at least 1ms"};
  return ms;
}

}  // namespace derpkit::stunc
