// Any bytes decode as a chunked body or fail cleanly, with the same outcome whether they arrive
// in one piece or two; a decoded body re-encoded as one chunk decodes to itself.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "lib/derpmap/chunked.h"

namespace {

constexpr std::size_t kMaxBody = 1 << 16;

struct Outcome {
  bool ok = false;
  bool done = false;
  std::size_t used = 0;
  std::string body;
};

Outcome Decode(std::string_view a, std::string_view b) {
  derpkit::derpmap::ChunkedDecoder decoder(kMaxBody);
  Outcome out;
  auto first = decoder.Feed(a, out.body);
  if (!first) return out;
  out.used = *first;
  if (!decoder.done()) {
    auto second = decoder.Feed(b, out.body);
    if (!second) return out;
    out.used += *second;
  }
  out.ok = true;
  out.done = decoder.done();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks where the rest is split.
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t split = in.empty() ? 0 : data[0] % (in.size() + 1);
  const Outcome whole = Decode(in, {});
  const Outcome parts = Decode(in.substr(0, split), in.substr(split));
  if (whole.ok != parts.ok || whole.done != parts.done) __builtin_trap();
  if (whole.ok && (whole.body != parts.body || whole.used != parts.used)) __builtin_trap();
  if (whole.done) {
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", whole.body.size());
    std::string encoded = whole.body.empty() ? "" : size_line + whole.body + "\r\n";
    encoded += "0\r\n\r\n";
    const Outcome again = Decode(encoded, {});
    if (!again.done || again.body != whole.body || again.used != encoded.size()) __builtin_trap();
  }
  return 0;
}
