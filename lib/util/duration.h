// Go's time.ParseDuration format, which derper's flags use: "10m0s", "15s", "1.5h", "300ms".
#pragma once

#include <chrono>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit {

enum class DurationError { kEmpty, kBadNumber, kMissingUnit, kUnknownUnit, kOverflow };
std::string_view Describe(DurationError e);

// Parses a possibly signed sequence of decimal numbers, each with an optional fraction and a unit
// suffix (ns, us, µs, ms, s, m, h). "0" alone is allowed without a unit, as in Go.
Expected<std::chrono::nanoseconds, DurationError> ParseGoDuration(std::string_view text);

}  // namespace derpkit
