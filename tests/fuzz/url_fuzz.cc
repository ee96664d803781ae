// Any text parses as a URL or fails cleanly; a parsed URL rebuilt from its parts parses the same.
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/http/url.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto url = derpkit::http::ParseUrl(text);
  if (!url) return 0;
  const std::string again_text = url->scheme + "://" + url->HostHeader() + url->target;
  auto again = derpkit::http::ParseUrl(again_text);
  if (!again || again->host != url->host || again->port != url->port ||
      again->target != url->target) {
    __builtin_trap();
  }
  return 0;
}
