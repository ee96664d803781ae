// stunc's configuration: what main.cc's flags mean, as plain values, and their validation.
//
// Thread affinity: none (plain data, pure functions).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "lib/util/expected.h"

namespace derpkit::stunc {

enum class FamilyChoice {
  kAny,   // the first IPv4 address of the name, else its first IPv6 one (as Go's "udp" resolver)
  kIpv4,  // -4
  kIpv6,  // -6
};

struct StuncConfig {
  std::string host;  // a name or an IP literal; an IPv6 literal without brackets
  std::uint16_t port = 3478;
  FamilyChoice family = FamilyChoice::kAny;
  bool rfc5389 = false;  // send the bare 20-byte Binding Request instead of Tailscale's 40 bytes
  // nullopt: one request and the reference's three lines. A value: ping mode (even 1).
  std::optional<int> count;
  std::chrono::milliseconds interval{1000};  // between requests in ping mode
  std::chrono::milliseconds timeout{3000};   // per request, like the reference's --timeout
  bool json = false;

  // Checks the values that flags alone cannot: count >= 1, positive durations.
  Expected<void, std::string> Validate() const;
};

inline constexpr int kMaxCount = 1'000'000;

// Parses the HOST argument: strips the brackets of "[v6]"; rejects empty hosts and brackets
// around anything but an IPv6 literal.
Expected<std::string, std::string> ParseHostArg(const std::string& arg);

// Parses the PORT argument: decimal 1..65535 (0 cannot be sent to).
Expected<std::uint16_t, std::string> ParsePortArg(const std::string& arg);

// Parses a Go duration flag ("3s", "250ms") into milliseconds; `flag` names it in the error.
Expected<std::chrono::milliseconds, std::string> ParseDurationArg(const std::string& flag,
                                                                  const std::string& text);

}  // namespace derpkit::stunc
