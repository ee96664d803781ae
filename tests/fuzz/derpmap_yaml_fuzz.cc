// Any text parses as a Headscale YAML DERP map or fails cleanly; a parsed map validates without
// crashing, and ToJson writes it so that ParseJson reads back the same map.
#include <cstdint>
#include <string_view>

#include "lib/derpmap/derpmap.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace derpkit::derpmap;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = ParseYaml(text, "fuzz.yaml");
  if (!doc) return 0;
  (void)Validate(*doc, "fuzz.yaml");
  DerpMap map;
  MergeInto(map, *doc);
  auto again = ParseJson(ToJson(map), "again.json");
  if (!again) __builtin_trap();
  DerpMap map_again;
  MergeInto(map_again, *again);
  if (!(map_again == map)) __builtin_trap();
  return 0;
}
