// Default gateway from /proc/net/route text; format and choice in route.h.
#include "lib/portmap/route.h"

#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <vector>

namespace derpkit::portmap {
namespace {

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<std::uint32_t> ParseHex32(std::string_view s) {
  if (s.empty() || s.size() > 8) return std::nullopt;
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::uint32_t> ParseDecimal32(std::string_view s) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The kernel printed the address word as a host integer; its bytes in memory order are the
// address in network order.
netaddr::IpAddress AddressFromWord(std::uint32_t word) {
  std::array<std::byte, 4> b{};
  for (int i = 0; i < 4; ++i) {
    const int shift = std::endian::native == std::endian::little ? 8 * i : 8 * (3 - i);
    b[static_cast<std::size_t>(i)] = static_cast<std::byte>((word >> shift) & 0xff);
  }
  return netaddr::IpAddress::V4(b);
}

}  // namespace

std::optional<netaddr::IpAddress> DefaultGatewayFromProcNetRoute(std::string_view text) {
  constexpr std::uint32_t kRtfUp = 0x1;
  constexpr std::uint32_t kRtfGateway = 0x2;
  std::optional<netaddr::IpAddress> best;
  std::uint32_t best_metric = 0;
  int line_number = 0;
  std::size_t pos = 0;
  while (pos < text.size() && line_number < kMaxRouteLines) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (++line_number == 1) continue;  // the header
    const auto f = Fields(line);
    if (f.size() < 8) continue;
    const auto destination = ParseHex32(f[1]);
    const auto gateway = ParseHex32(f[2]);
    const auto flags = ParseHex32(f[3]);
    const auto metric = ParseDecimal32(f[6]);
    const auto mask = ParseHex32(f[7]);
    if (!destination || !gateway || !flags || !metric || !mask) continue;
    if (*destination != 0 || *mask != 0 || *gateway == 0) continue;
    if ((*flags & (kRtfUp | kRtfGateway)) != (kRtfUp | kRtfGateway)) continue;
    if (best && *metric >= best_metric) continue;
    best = AddressFromWord(*gateway);
    best_metric = *metric;
  }
  return best;
}

}  // namespace derpkit::portmap
