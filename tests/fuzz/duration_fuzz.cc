// Any text parses as a Go duration or fails with an error; nothing crashes or overflows.
#include <cstdint>
#include <string_view>

#include "lib/util/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = derpkit::ParseGoDuration(text);
  if (!d && derpkit::Describe(d.error()).empty()) __builtin_trap();
  return 0;
}
