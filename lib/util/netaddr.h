// IP addresses, prefixes and host:port parsing. Pure: no sockets, no name resolution.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit::netaddr {

// An IPv4 or IPv6 address. IPv4 is kept as such; IPv4-mapped IPv6 (::ffff:a.b.c.d) is kept as
// IPv6 until Unmap() is called, so callers decide when the two forms are the same.
class IpAddress {
 public:
  IpAddress() = default;
  static IpAddress V4(std::array<std::byte, 4> b);
  static IpAddress V6(std::array<std::byte, 16> b);
  static IpAddress V4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d);

  bool is_v4() const { return is_v4_; }
  bool is_v6() const { return !is_v4_; }
  // For IPv4 the first 4 bytes hold the address and the rest are zero.
  const std::array<std::byte, 16>& raw() const { return bytes_; }
  std::array<std::byte, 4> v4_bytes() const;
  // The 16-byte form: IPv6 as is, IPv4 as ::ffff:a.b.c.d (DERP PeerPresent, STUN family 2).
  std::array<std::byte, 16> As16() const;

  bool IsV4Mapped() const;
  // Returns the IPv4 address for an IPv4-mapped IPv6 address, otherwise *this.
  IpAddress Unmap() const;
  bool IsLoopback() const;     // 127.0.0.0/8 or ::1 (after unmapping)
  bool IsUnspecified() const;  // 0.0.0.0 or ::

  // Dotted quad for IPv4; RFC 5952 text (lowercase, longest zero run compressed) for IPv6.
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  std::array<std::byte, 16> bytes_{};
  bool is_v4_ = true;
};

enum class ParseError { kEmpty, kBadAddress, kBadPrefixLength, kBadPort, kMissingPort };
std::string_view Describe(ParseError e);

// Parses "192.0.2.1" or "2001:db8::1" (no brackets, no zone).
Expected<IpAddress, ParseError> ParseIp(std::string_view text);

// An address prefix such as 100.64.0.0/10. Contains() compares families as given: callers
// unmap IPv4-mapped addresses first.
struct Prefix {
  IpAddress addr;
  int bits = 0;

  bool Contains(const IpAddress& ip) const;
  std::string ToString() const;
};

// Parses "100.64.0.0/10" or "fd7a:115c:a1e0::/48"; a bare address means a full-length prefix.
Expected<Prefix, ParseError> ParsePrefix(std::string_view text);

// Tailscale's address ranges: 100.64.0.0/10 minus 100.115.92.0/23 (ChromeOS VMs), and
// fd7a:115c:a1e0::/48. IPv4-mapped addresses are unmapped first.
bool IsTailscaleIp(const IpAddress& ip);

struct HostPort {
  std::string host;  // without brackets; empty for ":443"
  std::uint16_t port = 0;
};

// Parses "host:port", "[v6]:port", ":port". A port is 0..65535, decimal.
Expected<HostPort, ParseError> ParseHostPort(std::string_view text);

// Formats "host:port", bracketing hosts that contain ':'.
std::string JoinHostPort(std::string_view host, std::uint16_t port);

}  // namespace derpkit::netaddr
