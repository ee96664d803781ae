// Fuzzes the --allow-keys-file parser (lib/derp/node_key_list.h). Any input parses or fails with
// a line inside the input; a parsed list formats back (one nodekey: per line) to text that parses
// to the same keys in the same order, and every key occurs once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/derp/node_key_list.h"

namespace {

using namespace derpkit::derp;  // NOLINT(google-build-using-namespace): test driver

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto keys = ParseNodeKeyList(text);
  if (!keys) {
    const std::size_t lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    Check(keys.error().line <= lines + 1);
    Check(keys.error().line > 0 || keys.error().problem == NodeKeyListProblem::kTooLarge);
    Check(!Describe(keys.error()).empty());
    return 0;
  }
  std::string formatted;
  for (const PublicKey& k : *keys) formatted += k.ToText() + "\n";
  const auto again = ParseNodeKeyList(formatted);
  Check(again.has_value() && *again == *keys);
  for (std::size_t i = 0; i < keys->size(); ++i) {
    for (std::size_t j = i + 1; j < keys->size(); ++j) Check((*keys)[i] != (*keys)[j]);
  }
  return 0;
}
