// PROXY protocol v1 and v2: the spec's examples and limits, bytes recorded from HAProxy 2.6.12
// and nginx 1.22.1 (Debian 12) on loopback, every error, and kIncomplete at every prefix.
#include "lib/http/proxy_protocol.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"

namespace derpkit::http {
namespace {

using netaddr::IpAddress;
using netaddr::ParseIp;

const std::string kSignatureHex = "0d0a0d0a000d0a515549540a";

Expected<ProxyHeader, ProxyError> Parse(std::string_view text) {
  return ParseProxyHeader(AsBytes(text));
}

Expected<ProxyHeader, ProxyError> ParseHex(std::string_view hex) {
  const Bytes b = BytesFromHex(hex);
  return ParseProxyHeader(b);
}

IpAddress Ip(std::string_view text) { return *ParseIp(text); }

// Bytes recorded from real senders on 127.0.0.1 / ::1; each carried the payload "hello".
// HAProxy 2.6.12 `server ... send-proxy-v2`, client 127.0.0.1:47984 -> frontend 127.0.0.1:19012.
const std::string kHaproxyV2Tcp4 = kSignatureHex + "2111000c 7f000001 7f000001 bb70 4a44";
// The same, client [::1]:36030 -> frontend [::1]:19013.
const std::string kHaproxyV2Tcp6 = kSignatureHex +
                                   "21210024 00000000000000000000000000000001"
                                   "00000000000000000000000000000001 8cbe 4a45";
// `send-proxy-v2 proxy-v2-options crc32c,unique-id`, client 127.0.0.1:39692 -> :19014:
// a CRC32C TLV (type 3, 4 bytes) and a UNIQUE_ID TLV (type 5, 27 bytes).
const std::string kHaproxyV2Tcp4Tlvs =
    kSignatureHex +
    "21110031 7f000001 7f000001 9b0c 4a46"
    "03 0004 6bc81e74"
    "05 001b 37463030303030313a394230435f37463030303030313a34413436";
// `send-proxy-v2 check check-send-proxy`: the health check announces LOCAL, UNSPEC, no block.
const std::string kHaproxyV2Local = kSignatureHex + "20000000";
// nginx `proxy_protocol on` (stream), client 127.0.0.1:60746 -> 127.0.0.1:19004.
const std::string kNginxV1Tcp4 = "PROXY TCP4 127.0.0.1 127.0.0.1 60746 19004\r\n";
// nginx, client [::1]:48862 -> [::1]:19005.
const std::string kNginxV1Tcp6 = "PROXY TCP6 ::1 ::1 48862 19005\r\n";
// HAProxy `send-proxy`, client [::1]:35232 -> [::1]:19015.
const std::string kHaproxyV1Tcp6 = "PROXY TCP6 ::1 ::1 35232 19015\r\n";

// The spec's example and its maximum line lengths (section 2.1).
const std::string kSpecExample = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
const std::string kSpecMaxTcp4 = "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
const std::string kFullV6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
const std::string kSpecMaxTcp6 = "PROXY TCP6 " + kFullV6 + " " + kFullV6 + " 65535 65535\r\n";
const std::string kSpecUnknownShort = "PROXY UNKNOWN\r\n";
const std::string kSpecUnknownWorst =
    "PROXY UNKNOWN " + kFullV6 + " " + kFullV6 + " 65535 65535\r\n";

void ExpectError(const Expected<ProxyHeader, ProxyError>& r, ProxyError want,
                 const std::string& what) {
  ASSERT_FALSE(r.has_value()) << what;
  EXPECT_EQ(r.error(), want) << what << ": got " << Describe(r.error());
}

// ---- Version 1 -----------------------------------------------------------------------------

TEST(ProxyV1, ParsesSpecExampleAndLeavesTheHttpRequestToTheCaller) {
  const std::string wire = kSpecExample + "GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
  const auto h = Parse(wire);
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->version, 1);
  EXPECT_FALSE(h->local);
  EXPECT_TRUE(h->has_source);
  EXPECT_EQ(h->source_ip, IpAddress::V4(192, 168, 0, 1));
  EXPECT_EQ(h->dest_ip, IpAddress::V4(192, 168, 0, 11));
  EXPECT_EQ(h->source_port, 56324);
  EXPECT_EQ(h->dest_port, 443);
  EXPECT_EQ(h->header_size, 47u);
  EXPECT_EQ(wire.substr(h->header_size, 4), "GET ");
}

TEST(ProxyV1, ParsesNginxTcp4Line) {
  const auto h = Parse(kNginxV1Tcp4 + "hello");
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->source_ip, IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(h->source_port, 60746);
  EXPECT_EQ(h->dest_ip, IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(h->dest_port, 19004);
  EXPECT_EQ(h->header_size, kNginxV1Tcp4.size());
}

TEST(ProxyV1, ParsesNginxAndHaproxyTcp6Lines) {
  for (const auto& [line, sport, dport] :
       {std::tuple{kNginxV1Tcp6, 48862, 19005}, std::tuple{kHaproxyV1Tcp6, 35232, 19015}}) {
    const auto h = Parse(line + "hello");
    ASSERT_TRUE(h.has_value()) << line << ": " << Describe(h.error());
    EXPECT_TRUE(h->has_source);
    EXPECT_EQ(h->source_ip, Ip("::1"));
    EXPECT_EQ(h->dest_ip, Ip("::1"));
    EXPECT_TRUE(h->source_ip.is_v6());
    EXPECT_EQ(h->source_port, sport);
    EXPECT_EQ(h->dest_port, dport);
    EXPECT_EQ(h->header_size, line.size());
  }
}

TEST(ProxyV1, AcceptsTheSpecsLongestLineForEachProtocol) {
  ASSERT_EQ(kSpecMaxTcp4.size(), 56u);
  ASSERT_EQ(kSpecMaxTcp6.size(), 104u);
  ASSERT_EQ(kSpecUnknownShort.size(), 15u);
  ASSERT_EQ(kSpecUnknownWorst.size(), kMaxProxyV1Size);

  const auto tcp4 = Parse(kSpecMaxTcp4);
  ASSERT_TRUE(tcp4.has_value());
  EXPECT_EQ(tcp4->source_ip, IpAddress::V4(255, 255, 255, 255));
  EXPECT_EQ(tcp4->source_port, 65535);
  EXPECT_EQ(tcp4->header_size, 56u);

  const auto tcp6 = Parse(kSpecMaxTcp6);
  ASSERT_TRUE(tcp6.has_value());
  EXPECT_EQ(tcp6->dest_ip, Ip(kFullV6));
  EXPECT_EQ(tcp6->dest_port, 65535);
  EXPECT_EQ(tcp6->header_size, 104u);

  for (const std::string& line : {kSpecUnknownShort, kSpecUnknownWorst}) {
    const auto unknown = Parse(line + "\x16\x03\x01");
    ASSERT_TRUE(unknown.has_value()) << line;
    EXPECT_EQ(unknown->version, 1);
    EXPECT_FALSE(unknown->has_source);
    EXPECT_FALSE(unknown->local);
    EXPECT_EQ(unknown->header_size, line.size());
  }
}

TEST(ProxyV1, AcceptsPortZeroAndIpv4MappedAndUppercaseIpv6) {
  const auto zero = Parse("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n");
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->source_port, 0);
  EXPECT_EQ(zero->dest_ip, IpAddress::V4(10, 0, 0, 1));

  // HAProxy writes an IPv4 client on an IPv6 listener this way (inet_ntop of a mapped address).
  const auto mapped = Parse("PROXY TCP6 ::ffff:192.0.2.7 2001:DB8::1 4242 443\r\n");
  ASSERT_TRUE(mapped.has_value());
  EXPECT_TRUE(mapped->source_ip.IsV4Mapped());
  EXPECT_EQ(mapped->source_ip.Unmap(), IpAddress::V4(192, 0, 2, 7));
  EXPECT_EQ(mapped->dest_ip, Ip("2001:db8::1"));
}

TEST(ProxyV1, UnknownIgnoresAnythingBeforeTheCrlf) {
  const std::string line = "PROXY UNKNOWN whatever \x01\xff 1.2.3.4 -7\r\n";
  const auto h = Parse(line);
  ASSERT_TRUE(h.has_value());
  EXPECT_FALSE(h->has_source);
  EXPECT_EQ(h->header_size, line.size());
}

TEST(ProxyV1, RejectsLinesThatDoNotExactlyMatchTheGrammar) {
  const std::vector<std::string> bad = {
      "PROXY\r\n",
      "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4\r\n",
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",      // bare LF
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",  // CR CR LF
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",     // CR without LF
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",   // trailing space
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",      // missing port
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  // extra field
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r2\r\n",   // CR inside the line
      "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",   // leading zero (octal confusion)
      "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",       // IPv6 in TCP4
      "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",       // IPv4 in TCP6
      "PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n",  // zone
      "PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",  // leading zero port
      "PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 80 100000\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 0x50 443\r\n",
      "PROXY UNKNOWNX\r\n",
      "PROXY UNKNOWN\n",
      "PROXY UNKNOWN x\ny\r\n",  // bare LF before the CRLF
      "PROXY UNKNOWN x\ry\r\n",  // bare CR before the CRLF
  };
  for (const std::string& line : bad) ExpectError(Parse(line), ProxyError::kBadV1, line);
}

TEST(ProxyV1, RejectsNulInsideAnAddressThatInetPtonWouldStopAt) {
  using namespace std::string_literals;
  for (const std::string& line :
       {"PROXY TCP6 ::ffff:192.0.2.7\0\0 ::1 1 2\r\n"s, "PROXY TCP6 ::1 ::1\0 1 2\r\n"s,
        "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"s}) {
    ExpectError(Parse(line), ProxyError::kBadV1, HexEncode(AsBytes(line)));
  }
}

TEST(ProxyV1, RejectsAPartialLineAsSoonAsAByteBreaksTheGrammar) {
  const std::vector<std::string> bad = {
      "PROXYX",
      "PROXY TCX",
      "PROXY UNKNOWNS",
      "PROXY TCP4 01",
      "PROXY TCP4 1.2.3.4.",
      "PROXY TCP4 1..",
      "PROXY TCP4 300",
      "PROXY TCP4 1:",
      "PROXY TCP6 ::g",
      "PROXY TCP4 1.2.3.4 5.6.7.8 00",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 70000",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r",
  };
  for (const std::string& prefix : bad) ExpectError(Parse(prefix), ProxyError::kBadV1, prefix);
}

TEST(ProxyV1, RejectsALineWithoutCrlfInTheFirst107Bytes) {
  // 107 bytes of a plausible UNKNOWN line and still no CRLF.
  const std::string no_end = "PROXY UNKNOWN " + std::string(93, 'x');
  ASSERT_EQ(no_end.size(), 107u);
  ExpectError(Parse(no_end), ProxyError::kV1TooLong, "107 bytes, no CRLF");
  ExpectError(Parse(no_end.substr(0, 106)), ProxyError::kIncomplete, "106 bytes, no CRLF");
  // A 108-byte line: its LF is byte 108, one past the limit.
  ExpectError(Parse(no_end.substr(0, 106) + "\r\n"), ProxyError::kV1TooLong, "108-byte line");
  // Valid fields can still add up to too much: two 45-character IPv6 texts.
  const std::string v6 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  ASSERT_EQ(v6.size(), 45u);
  ExpectError(Parse("PROXY TCP6 " + v6 + " " + v6 + " 1 2\r\n"), ProxyError::kV1TooLong,
              "116-byte TCP6 line");
}

// ---- Not a PROXY header at all -------------------------------------------------------------

TEST(ProxyHeader, RefusesOtherProtocolsFromTheirFirstDistinctByte) {
  const std::vector<std::pair<std::string, std::size_t>> others = {
      {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 1},  // TLS ClientHello
      {"GET /derp HTTP/1.1\r\n", 1},
      {"POST / HTTP/1.1\r\n", 2},  // 'P' is shared with "PROXY"
      {"PRI * HTTP/2.0\r\n", 3},   // "PR" too
      {"SSH-2.0-OpenSSH\r\n", 1},
      {"\r\n\r\nGET", 5},  // starts like the v2 signature
      {std::string("\r\n\r\n\0\r\nQUIT\r", 12), 12},
      {std::string("\0\0\0\0", 4), 1},
  };
  for (const auto& [wire, first_bad] : others) {
    for (std::size_t n = 0; n < first_bad; ++n) {
      ExpectError(Parse(wire.substr(0, n)), ProxyError::kIncomplete,
                  "prefix " + std::to_string(n) + " of " + wire);
    }
    for (std::size_t n = first_bad; n <= wire.size(); ++n) {
      ExpectError(Parse(wire.substr(0, n)), ProxyError::kNotProxy,
                  "prefix " + std::to_string(n) + " of " + wire);
    }
  }
}

TEST(ProxyHeader, EmptyInputIsIncomplete) {
  ExpectError(ParseProxyHeader({}), ProxyError::kIncomplete, "empty");
}

// ---- Version 2 -----------------------------------------------------------------------------

TEST(ProxyV2, ParsesHaproxyTcp4Header) {
  const Bytes wire = BytesFromHex(kHaproxyV2Tcp4 + "68656c6c6f");
  const auto h = ParseProxyHeader(wire);
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->version, 2);
  EXPECT_FALSE(h->local);
  EXPECT_TRUE(h->has_source);
  EXPECT_EQ(h->source_ip, IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(h->source_port, 47984);
  EXPECT_EQ(h->dest_ip, IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(h->dest_port, 19012);
  EXPECT_EQ(h->header_size, 28u);
  EXPECT_EQ(AsText(ByteSpan(wire).subspan(h->header_size)), "hello");
}

TEST(ProxyV2, ParsesHaproxyTcp6Header) {
  const auto h = ParseHex(kHaproxyV2Tcp6 + "68656c6c6f");
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_TRUE(h->has_source);
  EXPECT_EQ(h->source_ip, Ip("::1"));
  EXPECT_TRUE(h->source_ip.is_v6());
  EXPECT_EQ(h->source_port, 36030);
  EXPECT_EQ(h->dest_ip, Ip("::1"));
  EXPECT_EQ(h->dest_port, 19013);
  EXPECT_EQ(h->header_size, 52u);
}

TEST(ProxyV2, SkipsHaproxyCrc32cAndUniqueIdTlvs) {
  const auto h = ParseHex(kHaproxyV2Tcp4Tlvs + "68656c6c6f");
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->source_ip, IpAddress::V4(127, 0, 0, 1));
  EXPECT_EQ(h->source_port, 39692);
  EXPECT_EQ(h->dest_port, 19014);
  EXPECT_EQ(h->header_size, 16u + 0x31u);
}

TEST(ProxyV2, ParsesHaproxyHealthCheckAsLocalWithoutSource) {
  const auto h = ParseHex(kHaproxyV2Local);
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->version, 2);
  EXPECT_TRUE(h->local);
  EXPECT_FALSE(h->has_source);
  EXPECT_EQ(h->header_size, 16u);
}

TEST(ProxyV2, LocalIgnoresTheFamilyAndSkipsTheWholeBlock) {
  // LOCAL that still describes a TCP4 connection, and LOCAL with a family no spec defines: the
  // spec says the family is ignored and the block discarded.
  for (const std::string& rest :
       {std::string("2011000c 0a000001 0a000002 0050 01bb"), std::string("20ff0003 aabbcc")}) {
    const auto h = ParseHex(kSignatureHex + rest);
    ASSERT_TRUE(h.has_value()) << rest << ": " << Describe(h.error());
    EXPECT_TRUE(h->local);
    EXPECT_FALSE(h->has_source);
    EXPECT_EQ(h->header_size, BytesFromHex(kSignatureHex + rest).size());
  }
}

TEST(ProxyV2, AcceptsOtherFamiliesWithoutASource) {
  const std::vector<std::string> others = {
      // PROXY + UNSPEC: the block may hold addresses of no stated layout, skipped unchecked.
      "21000000",
      "21000005 0102030405",
      // UDP over IPv4, with a NOOP TLV after the addresses.
      "2112000f 0a000001 0a000002 0035 0035 04 0000",
      // UDP over IPv6.
      "21220024" + std::string(64, '0') + "00350035",
      // UNIX stream: two 108-byte paths.
      "213100d8" + std::string(432, '0'),
  };
  for (const std::string& rest : others) {
    const auto h = ParseHex(kSignatureHex + rest);
    ASSERT_TRUE(h.has_value()) << rest << ": " << Describe(h.error());
    EXPECT_FALSE(h->local);
    EXPECT_FALSE(h->has_source);
    EXPECT_EQ(h->header_size, BytesFromHex(kSignatureHex + rest).size());
  }
}

TEST(ProxyV2, RejectsVersionsOtherThan2FromByte13) {
  for (const char* ver_cmd : {"11", "01", "31", "f1"}) {
    ExpectError(ParseHex(kSignatureHex + ver_cmd), ProxyError::kBadV2Version, ver_cmd);
  }
}

TEST(ProxyV2, RejectsCommandsOtherThanLocalAndProxy) {
  for (const char* ver_cmd : {"22", "2f"}) {
    ExpectError(ParseHex(kSignatureHex + ver_cmd), ProxyError::kBadV2Command, ver_cmd);
    ExpectError(ParseHex(kSignatureHex + ver_cmd + "11000c" + std::string(24, '0')),
                ProxyError::kBadV2Command, ver_cmd);
  }
}

TEST(ProxyV2, RejectsUnknownFamiliesAndShortAddressBlocksFromTheFixedHeader) {
  // Undefined family or protocol nibbles: refused at byte 14, before the length.
  for (const char* fam : {"13", "41", "f1", "10", "01", "33"}) {
    ExpectError(ParseHex(kSignatureHex + "21" + fam), ProxyError::kBadV2Addresses, fam);
  }
  // A length too short for the family: refused from the 16 fixed bytes.
  for (const char* fixed :
       {"2111000b", "21110000", "21210023", "2121000c", "2122000c", "213100d7"}) {
    ExpectError(ParseHex(kSignatureHex + fixed), ProxyError::kBadV2Addresses, fixed);
  }
}

TEST(ProxyV2, RejectsOversizedLengthBeforeReadingTheBlock) {
  // 16 + 4081 = 4097 bytes: refused from the fixed header alone.
  ExpectError(ParseHex(kSignatureHex + "21110ff1"), ProxyError::kBadV2Length, "4097 bytes");
  ExpectError(ParseHex(kSignatureHex + "2111ffff"), ProxyError::kBadV2Length, "65551 bytes");
  ExpectError(ParseHex(kSignatureHex + "2000ffff"), ProxyError::kBadV2Length, "LOCAL, 65551");
  // Exactly kMaxProxyV2Size: addresses plus one NOOP TLV of 4065 bytes.
  Bytes at_limit = BytesFromHex(kSignatureHex + "21110ff0 7f000001 7f000001 0001 0002 04 0fe1");
  at_limit.resize(kMaxProxyV2Size, std::byte{0xee});
  const auto h = ParseProxyHeader(at_limit);
  ASSERT_TRUE(h.has_value()) << Describe(h.error());
  EXPECT_EQ(h->header_size, kMaxProxyV2Size);
}

TEST(ProxyV2, RejectsTlvsThatDoNotExactlyFillTheBlock) {
  const std::string tcp4 = "7f000001 7f000001 0001 0002";
  const std::vector<std::string> bad = {
      "2111000d" + tcp4 + "04",                // 1 byte: not even a TLV header
      "2111000e" + tcp4 + "0400",              // 2 bytes
      "2111000f" + tcp4 + "040001",            // value runs past the end
      "21110013" + tcp4 + "040000 050002 aa",  // second TLV header, value cut short
      "21110010" + tcp4 + "040000 04",         // a good TLV, then a stray byte
      "21220028" + std::string(64, '0') + "0000 0000 040005 aa",  // after UDP6 addresses too
  };
  for (const std::string& rest : bad) {
    const Bytes whole = BytesFromHex(kSignatureHex + rest);
    ExpectError(ParseProxyHeader(whole), ProxyError::kBadV2Tlv, rest);
  }
}

TEST(ProxyV2, RejectsAnOverrunningTlvAsSoonAsItsHeaderArrives) {
  // Declares 100 bytes after the addresses, then a TLV claiming 200: no need to wait for them.
  const Bytes head = BytesFromHex(kSignatureHex + "21110070 7f000001 7f000001 0001 0002 0400c8");
  ExpectError(ParseProxyHeader(head), ProxyError::kBadV2Tlv, "overrun");
  ExpectError(ParseProxyHeader(ByteSpan(head).first(head.size() - 1)), ProxyError::kIncomplete,
              "TLV header not complete yet");
}

// ---- Both versions -------------------------------------------------------------------------

std::vector<Bytes> ValidHeaders() {
  std::vector<Bytes> out;
  for (const std::string& line :
       {kSpecExample, kSpecMaxTcp4, kSpecMaxTcp6, kSpecUnknownShort, kSpecUnknownWorst,
        kNginxV1Tcp4, kNginxV1Tcp6, kHaproxyV1Tcp6,
        std::string("PROXY TCP6 ::ffff:192.0.2.7 2001:DB8::1 4242 443\r\n")}) {
    const ByteSpan b = AsBytes(line);
    out.emplace_back(b.begin(), b.end());
  }
  for (const std::string& hex : {kHaproxyV2Tcp4, kHaproxyV2Tcp6, kHaproxyV2Tcp4Tlvs,
                                 kHaproxyV2Local, kSignatureHex + "21000005 0102030405",
                                 kSignatureHex + "2112000f 0a000001 0a000002 0035 0035 04 0000"}) {
    out.push_back(BytesFromHex(hex));
  }
  return out;
}

TEST(ProxyHeader, EveryStrictPrefixOfAValidHeaderIsIncomplete) {
  for (const Bytes& header : ValidHeaders()) {
    const auto whole = ParseProxyHeader(header);
    ASSERT_TRUE(whole.has_value()) << HexEncode(header) << ": " << Describe(whole.error());
    ASSERT_EQ(whole->header_size, header.size()) << HexEncode(header);
    for (std::size_t n = 0; n < header.size(); ++n) {
      ExpectError(ParseProxyHeader(ByteSpan(header).first(n)), ProxyError::kIncomplete,
                  "prefix " + std::to_string(n) + " of " + HexEncode(header));
    }
  }
}

TEST(ProxyHeader, BytesAfterTheHeaderDoNotChangeTheResult) {
  for (const Bytes& header : ValidHeaders()) {
    Bytes longer = header;
    AppendBytes(longer, AsBytes(std::string("\x16\x03\x01\x00\x05hello\r\n\r\nPROXY", 19)));
    const auto a = ParseProxyHeader(header);
    const auto b = ParseProxyHeader(longer);
    ASSERT_TRUE(a.has_value() && b.has_value()) << HexEncode(header);
    EXPECT_EQ(a->header_size, b->header_size);
    EXPECT_EQ(a->has_source, b->has_source);
    EXPECT_EQ(a->source_ip, b->source_ip);
    EXPECT_EQ(a->source_port, b->source_port);
  }
}

TEST(ProxyHeader, DescribesEveryErrorDistinctly) {
  std::set<std::string_view> seen;
  for (ProxyError e :
       {ProxyError::kIncomplete, ProxyError::kNotProxy, ProxyError::kBadV1, ProxyError::kV1TooLong,
        ProxyError::kBadV2Version, ProxyError::kBadV2Command, ProxyError::kBadV2Length,
        ProxyError::kBadV2Addresses, ProxyError::kBadV2Tlv}) {
    const std::string_view text = Describe(e);
    EXPECT_FALSE(text.empty());
    EXPECT_NE(text, "unknown PROXY protocol error");
    EXPECT_TRUE(seen.insert(text).second) << text;
  }
}

// ---- Builders ------------------------------------------------------------------------------

TEST(ProxyBuild, V1WritesTheBytesNginxSends) {
  EXPECT_EQ(BuildProxyV1(Ip("127.0.0.1"), 60746, Ip("127.0.0.1"), 19004), kNginxV1Tcp4);
  EXPECT_EQ(BuildProxyV1(Ip("::1"), 48862, Ip("::1"), 19005), kNginxV1Tcp6);
  EXPECT_EQ(BuildProxyV1(Ip("192.168.0.1"), 56324, Ip("192.168.0.11"), 443), kSpecExample);
}

TEST(ProxyBuild, V1MapsIpv4IntoTcp6WhenTheFamiliesDiffer) {
  const std::string line = BuildProxyV1(Ip("192.0.2.7"), 4242, Ip("2001:db8::1"), 443);
  EXPECT_EQ(line, "PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 4242 443\r\n");
  const auto h = Parse(line);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->source_ip.Unmap(), Ip("192.0.2.7"));
}

TEST(ProxyBuild, V2WritesTheBytesHaproxySends) {
  EXPECT_EQ(BuildProxyV2(Ip("127.0.0.1"), 47984, Ip("127.0.0.1"), 19012),
            BytesFromHex(kHaproxyV2Tcp4));
  EXPECT_EQ(BuildProxyV2(Ip("::1"), 36030, Ip("::1"), 19013), BytesFromHex(kHaproxyV2Tcp6));
  EXPECT_EQ(BuildProxyV2(Ip("::1"), 1, Ip("::1"), 2, /*local=*/true),
            BytesFromHex(kHaproxyV2Local));
}

TEST(ProxyBuild, BothVersionsRoundTripThroughTheParser) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"0.0.0.0", "255.255.255.255"},
      {"100.64.0.1", "10.1.2.3"},
      {"2001:db8::5", "fd7a:115c:a1e0::1"},
      {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"::ffff:1.2.3.4", "::1"},
  };
  for (const auto& [src_text, dst_text] : pairs) {
    for (const auto& [sport, dport] : {std::pair<std::uint16_t, std::uint16_t>{0, 65535},
                                       std::pair<std::uint16_t, std::uint16_t>{443, 8}}) {
      const IpAddress src = Ip(src_text);
      const IpAddress dst = Ip(dst_text);
      const std::string v1 = BuildProxyV1(src, sport, dst, dport);
      const Bytes v2 = BuildProxyV2(src, sport, dst, dport);
      for (const auto& parsed : {Parse(v1), ParseProxyHeader(v2)}) {
        ASSERT_TRUE(parsed.has_value()) << src_text << " " << Describe(parsed.error());
        EXPECT_TRUE(parsed->has_source);
        EXPECT_EQ(parsed->source_ip, src);
        EXPECT_EQ(parsed->dest_ip, dst);
        EXPECT_EQ(parsed->source_port, sport);
        EXPECT_EQ(parsed->dest_port, dport);
      }
      EXPECT_EQ(Parse(v1)->header_size, v1.size());
      EXPECT_EQ(ParseProxyHeader(v2)->header_size, v2.size());
    }
  }
}

}  // namespace
}  // namespace derpkit::http
