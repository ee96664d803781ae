#include "lib/util/netaddr.h"

#include <arpa/inet.h>  // inet_pton/inet_ntop: well-kept libc parsers, no sockets involved

#include <charconv>

namespace derpkit::netaddr {

IpAddress IpAddress::V4(std::array<std::byte, 4> b) {
  IpAddress ip;
  for (std::size_t i = 0; i < 4; ++i) ip.bytes_[i] = b[i];
  ip.is_v4_ = true;
  return ip;
}

IpAddress IpAddress::V4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  return V4({std::byte{a}, std::byte{b}, std::byte{c}, std::byte{d}});
}

IpAddress IpAddress::V6(std::array<std::byte, 16> b) {
  IpAddress ip;
  ip.bytes_ = b;
  ip.is_v4_ = false;
  return ip;
}

std::array<std::byte, 4> IpAddress::v4_bytes() const {
  return {bytes_[0], bytes_[1], bytes_[2], bytes_[3]};
}

std::array<std::byte, 16> IpAddress::As16() const {
  if (!is_v4_) return bytes_;
  std::array<std::byte, 16> out{};
  out[10] = std::byte{0xff};
  out[11] = std::byte{0xff};
  for (std::size_t i = 0; i < 4; ++i) out[12 + i] = bytes_[i];
  return out;
}

bool IpAddress::IsV4Mapped() const {
  if (is_v4_) return false;
  for (std::size_t i = 0; i < 10; ++i) {
    if (bytes_[i] != std::byte{0}) return false;
  }
  return bytes_[10] == std::byte{0xff} && bytes_[11] == std::byte{0xff};
}

IpAddress IpAddress::Unmap() const {
  if (!IsV4Mapped()) return *this;
  return V4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
}

bool IpAddress::IsLoopback() const {
  const IpAddress ip = Unmap();
  if (ip.is_v4_) return ip.bytes_[0] == std::byte{127};
  for (std::size_t i = 0; i < 15; ++i) {
    if (ip.bytes_[i] != std::byte{0}) return false;
  }
  return ip.bytes_[15] == std::byte{1};
}

bool IpAddress::IsUnspecified() const {
  const std::size_t n = is_v4_ ? 4 : 16;
  for (std::size_t i = 0; i < n; ++i) {
    if (bytes_[i] != std::byte{0}) return false;
  }
  return true;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4_) {
    ::inet_ntop(AF_INET, bytes_.data(), buf, sizeof buf);
  } else {
    ::inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
  }
  return buf;
}

std::string_view Describe(ParseError e) {
  switch (e) {
    case ParseError::kEmpty:
      return "empty address";
    case ParseError::kBadAddress:
      return "not an IPv4 or IPv6 address";
    case ParseError::kBadPrefixLength:
      return "prefix length out of range for the address family";
    case ParseError::kBadPort:
      return "port is not a number from 0 to 65535";
    case ParseError::kMissingPort:
      return "missing ':port'";
  }
  return "unknown address error";
}

Expected<IpAddress, ParseError> ParseIp(std::string_view text) {
  if (text.empty()) return Unexpected{ParseError::kEmpty};
  // inet_pton stops at a NUL: "1.2.3.4\0junk" must not parse as 1.2.3.4.
  if (text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) {
    return Unexpected{ParseError::kBadAddress};
  }
  char buf[INET6_ADDRSTRLEN] = {};
  text.copy(buf, text.size());
  if (text.find(':') == std::string_view::npos) {
    std::array<std::byte, 4> b{};
    if (::inet_pton(AF_INET, buf, b.data()) != 1) return Unexpected{ParseError::kBadAddress};
    return IpAddress::V4(b);
  }
  std::array<std::byte, 16> b{};
  if (::inet_pton(AF_INET6, buf, b.data()) != 1) return Unexpected{ParseError::kBadAddress};
  return IpAddress::V6(b);
}

bool Prefix::Contains(const IpAddress& ip) const {
  if (ip.is_v4() != addr.is_v4()) return false;
  int remaining = bits;
  for (std::size_t i = 0; remaining > 0; ++i, remaining -= 8) {
    const unsigned mask = remaining >= 8 ? 0xffu : (0xffu << (8 - remaining)) & 0xffu;
    if ((std::to_integer<unsigned>(ip.raw()[i]) & mask) !=
        (std::to_integer<unsigned>(addr.raw()[i]) & mask)) {
      return false;
    }
  }
  return true;
}

std::string Prefix::ToString() const { return addr.ToString() + "/" + std::to_string(bits); }

Expected<Prefix, ParseError> ParsePrefix(std::string_view text) {
  const auto slash = text.find('/');
  auto ip = ParseIp(text.substr(0, slash));
  if (!ip) return Unexpected{ip.error()};
  const int max_bits = ip->is_v4() ? 32 : 128;
  if (slash == std::string_view::npos) return Prefix{*ip, max_bits};
  const std::string_view len = text.substr(slash + 1);
  int bits = -1;
  const auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
  if (len.empty() || ec != std::errc{} || end != len.data() + len.size() || bits < 0 ||
      bits > max_bits) {
    return Unexpected{ParseError::kBadPrefixLength};
  }
  return Prefix{*ip, bits};
}

bool IsTailscaleIp(const IpAddress& raw_ip) {
  static const Prefix kCgnat{IpAddress::V4(100, 64, 0, 0), 10};
  static const Prefix kChromeOs{IpAddress::V4(100, 115, 92, 0), 23};
  static const Prefix kUla = *ParsePrefix("fd7a:115c:a1e0::/48");
  const IpAddress ip = raw_ip.Unmap();
  if (ip.is_v4()) return kCgnat.Contains(ip) && !kChromeOs.Contains(ip);
  return kUla.Contains(ip);
}

Expected<HostPort, ParseError> ParseHostPort(std::string_view text) {
  if (text.empty()) return Unexpected{ParseError::kEmpty};
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return Unexpected{ParseError::kBadAddress};
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return Unexpected{ParseError::kMissingPort};
    port = rest.substr(1);
    if (!ParseIp(host)) return Unexpected{ParseError::kBadAddress};
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return Unexpected{ParseError::kMissingPort};
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return Unexpected{ParseError::kBadAddress};
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return Unexpected{ParseError::kBadPort};
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(value)};
}

std::string JoinHostPort(std::string_view host, std::uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out.append("[").append(host).append("]");
  } else {
    out.append(host);
  }
  return out.append(":").append(std::to_string(port));
}

}  // namespace derpkit::netaddr
