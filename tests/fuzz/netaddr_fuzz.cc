// Addresses, prefixes and host:port: anything parses or fails cleanly, and whatever parses
// formats back to text that parses to the same value.
#include <cstdint>
#include <string_view>

#include "lib/util/netaddr.h"

using namespace derpkit::netaddr;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ip = ParseIp(text)) {
    auto again = ParseIp(ip->ToString());
    if (!again || !(*again == *ip)) __builtin_trap();
    (void)IsTailscaleIp(*ip);
  }
  if (auto p = ParsePrefix(text)) {
    auto again = ParsePrefix(p->ToString());
    if (!again || again->bits != p->bits) __builtin_trap();
  }
  if (auto hp = ParseHostPort(text)) {
    auto again = ParseHostPort(JoinHostPort(hp->host, hp->port));
    if (!again || again->port != hp->port || again->host != hp->host) __builtin_trap();
  }
  return 0;
}
