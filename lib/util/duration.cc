#include "lib/util/duration.h"

#include <cstdint>
#include <limits>

namespace derpkit {

std::string_view Describe(DurationError e) {
  switch (e) {
    case DurationError::kEmpty:
      return "empty duration";
    case DurationError::kBadNumber:
      return "expected a number like 10s, 1.5m or 300ms";
    case DurationError::kMissingUnit:
      return "missing unit (ns, us, ms, s, m or h)";
    case DurationError::kUnknownUnit:
      return "unknown unit (use ns, us, ms, s, m or h)";
    case DurationError::kOverflow:
      return "duration out of range";
  }
  return "bad duration";
}

Expected<std::chrono::nanoseconds, DurationError> ParseGoDuration(std::string_view s) {
  if (s.empty()) return Unexpected{DurationError::kEmpty};
  bool negative = false;
  if (s.front() == '-' || s.front() == '+') {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return Unexpected{DurationError::kBadNumber};
  // Accumulate in long double nanoseconds: exact for anything an operator would type.
  long double total = 0;
  while (!s.empty()) {
    long double value = 0;
    std::size_t digits = 0;
    while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
      value = value * 10 + (s.front() - '0');
      s.remove_prefix(1);
      ++digits;
    }
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      long double scale = 0.1L;
      while (!s.empty() && s.front() >= '0' && s.front() <= '9') {
        value += (s.front() - '0') * scale;
        scale /= 10;
        s.remove_prefix(1);
        ++digits;
      }
    }
    if (digits == 0) return Unexpected{DurationError::kBadNumber};
    std::size_t unit_len = 0;
    while (unit_len < s.size() && !(s[unit_len] >= '0' && s[unit_len] <= '9') &&
           s[unit_len] != '.') {
      ++unit_len;
    }
    const std::string_view unit = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    long double scale = 0;
    if (unit.empty()) return Unexpected{DurationError::kMissingUnit};
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      scale = 1e3L;
    } else if (unit == "ms") {
      scale = 1e6L;
    } else if (unit == "s") {
      scale = 1e9L;
    } else if (unit == "m") {
      scale = 60e9L;
    } else if (unit == "h") {
      scale = 3600e9L;
    } else {
      return Unexpected{DurationError::kUnknownUnit};
    }
    total += value * scale;
    if (total > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) {
      return Unexpected{DurationError::kOverflow};
    }
  }
  const auto ns = static_cast<std::int64_t>(total);
  return std::chrono::nanoseconds(negative ? -ns : ns);
}

}  // namespace derpkit
