// Any text parses as a tailcfg JSON DERP map or fails cleanly; a parsed map validates without
// crashing, and ToJson writes it so that it parses back to the same map.
#include <cstdint>
#include <string_view>

#include "lib/derpmap/derpmap.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace derpkit::derpmap;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = ParseJson(text, "fuzz.json");
  if (!doc) return 0;
  (void)Validate(*doc, "fuzz.json");
  DerpMap map;
  MergeInto(map, *doc);
  (void)Validate(map, "fuzz.json");
  auto again = ParseJson(ToJson(map), "again.json");
  if (!again) __builtin_trap();
  DerpMap map_again;
  MergeInto(map_again, *again);
  if (!(map_again == map)) __builtin_trap();
  return 0;
}
