// The HAProxy PROXY protocol, versions 1 (text) and 2 (binary): a strict parser for the header a
// load balancer puts at the very start of a TCP connection (before TLS) to tell the relay who the
// client really is, and builders for tests and tools. Pure: no I/O, no allocation in the parser.
//
// Spec: haproxy's doc/proxy-protocol.txt. Senders we meet: HAProxy (`send-proxy`,
// `send-proxy-v2`), nginx's stream module (`proxy_protocol on`, v1 only) and Traefik (v1 or v2).
//
// Version 1: one line of US-ASCII, at most 107 bytes including the CRLF.
//
//   "PROXY" SP "TCP4" SP <src ipv4> SP <dst ipv4> SP <src port> SP <dst port> CRLF
//   "PROXY" SP "TCP6" SP <src ipv6> SP <dst ipv6> SP <src port> SP <dst port> CRLF
//   "PROXY" SP "UNKNOWN" [SP <anything but CR and LF>] CRLF
//
//   Exactly one SP between fields. IPv4 is dotted decimal without leading zeros (spec: no octal
//   confusion); IPv6 is any inet_pton form, including "::ffff:1.2.3.4", which HAProxy sends
//   for an IPv4 client on an IPv6 listener. Ports are decimal 0..65535 without leading zeros
//   or signs. A bare CR or LF is an error, never a line end.
//
//   Example (nginx): "PROXY TCP4 127.0.0.1 127.0.0.1 60746 19004\r\n"
//
// Version 2: a 16-byte header, then `len` bytes of addresses and TLVs.
//
//   0               12      13      14      16
//   +---------------+-------+-------+-------+-----------------------------------+
//   | signature (12)|ver/cmd|fam/pro|len BE | addresses (by fam) | TLVs ...     |
//   +---------------+-------+-------+-------+-----------------------------------+
//   signature = 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A ("\r\n\r\n\0\r\nQUIT\n")
//   ver/cmd   = 0x20 LOCAL (health checks: use the real TCP peer), 0x21 PROXY
//   fam/pro   = 0x00 UNSPEC, 0x11 TCP4 (12 address bytes), 0x12 UDP4 (12),
//               0x21 TCP6 (36), 0x22 UDP6 (36), 0x31 UNIX stream (216), 0x32 UNIX dgram (216)
//   TCP4 addresses = src(4) dst(4) sport(2 BE) dport(2 BE); TCP6 = src(16) dst(16) sport dport
//   TLV       = type(1) length(2 BE) value(length)
//
//   Example (HAProxy health check, LOCAL): 0d0a0d0a000d0a515549540a 20 00 0000
//
// What this parser accepts of version 2, and why:
//   - PROXY with TCP4/TCP6: the addresses, then well-formed TLV records (skipped).
//   - PROXY with UDP or UNIX families: accepted without an address (has_source = false), since a
//     TCP relay has no use for them; the address block is skipped and the TLVs after it checked.
//   - PROXY with UNSPEC: accepted without an address. The spec lets UNSPEC carry address bytes
//     of no stated layout, so the whole block is skipped unchecked.
//   - LOCAL: the spec says the family "is ignored" and the block discarded, so the whole block is
//     skipped unchecked, whatever the family byte says.
//   - Any other family byte with PROXY is rejected, as the spec requires of receivers.
//   - A version-2 header is at most kMaxProxyV2Size bytes in all; real senders stay far below
//     (addresses, a unique ID of at most 128 bytes, SNI, SSL details).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"
#include "lib/util/netaddr.h"

namespace derpkit::http {

// Longest version-1 line the spec allows, CRLF included.
inline constexpr std::size_t kMaxProxyV1Size = 107;
// Fixed part of a version-2 header: signature, ver/cmd, fam/proto, length.
inline constexpr std::size_t kProxyV2FixedSize = 16;
// Largest version-2 header (fixed part + addresses + TLVs) we accept.
inline constexpr std::size_t kMaxProxyV2Size = 4096;

enum class ProxyError {
  kIncomplete,      // `in` is a strict prefix of a header that may still be valid: read more
  kNotProxy,        // the bytes cannot start a PROXY header (a TLS ClientHello, an HTTP request)
  kBadV1,           // malformed version-1 line
  kV1TooLong,       // no CRLF within the first 107 bytes of a version-1 line
  kBadV2Version,    // version-2 signature followed by a version other than 2
  kBadV2Command,    // version-2 command other than LOCAL (0) or PROXY (1)
  kBadV2Length,     // version-2 header longer than kMaxProxyV2Size
  kBadV2Addresses,  // unknown family/protocol byte, or `len` too short for the family's addresses
  kBadV2Tlv,        // TLV records do not exactly fill the bytes after the addresses
};

// Returns a one-line human description of `e`.
std::string_view Describe(ProxyError e);

struct ProxyHeader {
  int version = 0;               // 1 or 2
  bool local = false;            // v2 LOCAL (health checks): no client address; use the TCP peer
  bool has_source = false;       // false for v1 UNKNOWN, v2 LOCAL, v2 UNSPEC/UDP/UNIX families
  netaddr::IpAddress source_ip;  // meaningful only when has_source
  std::uint16_t source_port = 0;
  netaddr::IpAddress dest_ip;  // meaningful only when has_source
  std::uint16_t dest_port = 0;
  std::size_t header_size = 0;  // bytes consumed; whatever follows belongs to the caller
};

// Parses a PROXY header (either version) at the start of `in`. Never reads past header_size
// bytes on success, never allocates, and never trusts a peer-supplied length before checking it
// against kMaxProxyV2Size.
//
// kIncomplete only when `in` is a strict prefix of a header that may still turn out valid, so a
// caller can refuse a plain TLS ClientHello or HTTP request (kNotProxy) from its first byte, and
// a malformed header as soon as the offending byte arrives. (One approximation: an unfinished
// IPv6 address in a v1 line is only checked for its character set and length until its
// terminating space arrives.) A caller therefore needs at most kMaxProxyV2Size bytes buffered.
// Errors: every ProxyError.
Expected<ProxyHeader, ProxyError> ParseProxyHeader(ByteSpan in);

// Returns the version-1 line for a TCP connection. Two IPv4 addresses give "TCP4"; otherwise
// "TCP6", with an IPv4 address written in its IPv4-mapped form (::ffff:a.b.c.d), as HAProxy does.
std::string BuildProxyV1(const netaddr::IpAddress& src, std::uint16_t sport,
                         const netaddr::IpAddress& dst, std::uint16_t dport);

// Returns a version-2 header without TLVs. With `local`, the LOCAL command with family UNSPEC and
// no address block (exactly what HAProxy sends for health checks; the addresses are ignored).
// Otherwise PROXY with TCP4 for two IPv4 addresses, else TCP6 (IPv4 as ::ffff:a.b.c.d).
Bytes BuildProxyV2(const netaddr::IpAddress& src, std::uint16_t sport,
                   const netaddr::IpAddress& dst, std::uint16_t dport, bool local = false);

}  // namespace derpkit::http
