// lib/portmap: NAT-PMP (RFC 6886), PCP (RFC 6887) and SSDP codecs, byte-exact in both directions,
// every error, and the default gateway from /proc/net/route text. "miniupnpd 2.3.1" vectors are
// what Debian's miniupnpd sent in this project's network-namespace test (tests/netns).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <optional>
#include <string>
#include <string_view>

#include "lib/portmap/pcp.h"
#include "lib/portmap/pmp.h"
#include "lib/portmap/route.h"
#include "lib/portmap/ssdp.h"
#include "lib/util/bytes.h"

namespace derpkit::portmap {
namespace {

// ---- NAT-PMP ----

TEST(PmpExternalAddress, RequestIsVersionZeroOpcodeZero) {
  Bytes out;
  AppendPmpExternalAddressRequest(out);
  EXPECT_EQ(out, BytesFromHex("00 00"));
}

TEST(PmpExternalAddress, ParsesSuccess) {
  // version 0, opcode 128, result 0, epoch 653 s, 198.51.100.1
  const Bytes wire = BytesFromHex("00 80 0000 0000028d c6336401");
  const auto r = ParsePmpExternalAddressResponse(wire);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result_code, kPmpResultSuccess);
  EXPECT_EQ(r->epoch_seconds, 653u);
  ASSERT_TRUE(r->external_ipv4.has_value());
  EXPECT_EQ(HexEncode(*r->external_ipv4), "c6336401");
}

TEST(PmpExternalAddress, EncodesSuccessExactly) {
  PmpExternalAddressResponse r;
  r.epoch_seconds = 653;
  r.external_ipv4 =
      std::array<std::byte, 4>{std::byte{198}, std::byte{51}, std::byte{100}, std::byte{1}};
  Bytes out;
  AppendPmpExternalAddressResponse(out, r);
  EXPECT_EQ(out, BytesFromHex("00 80 0000 0000028d c6336401"));
}

TEST(PmpExternalAddress, ParsesMiniupnpdNetworkFailureWithZeroAddress) {
  // miniupnpd 2.3.1 behind a reserved outside address: 12 bytes, result 3, address 0.0.0.0.
  const Bytes wire = BytesFromHex("008000030000028d00000000");
  const auto r = ParsePmpExternalAddressResponse(wire);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result_code, kPmpResultNetworkFailure);
  EXPECT_EQ(PmpResultName(r->result_code), "NETWORK_FAILURE");
  Bytes again;
  AppendPmpExternalAddressResponse(again, *r);
  EXPECT_EQ(again, wire);
}

TEST(PmpExternalAddress, ParsesEightByteErrorBothWays) {
  // The "unsupported version" answer a NAT-PMP-only gateway sends to a PCP request (§3.5).
  const Bytes wire = BytesFromHex("00 80 0001 00000010");
  const auto r = ParsePmpExternalAddressResponse(wire);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result_code, kPmpResultUnsupportedVersion);
  EXPECT_EQ(r->epoch_seconds, 16u);
  EXPECT_FALSE(r->external_ipv4.has_value());
  Bytes again;
  AppendPmpExternalAddressResponse(again, *r);
  EXPECT_EQ(again, wire);
}

TEST(PmpExternalAddress, RejectsEveryMalformedShape) {
  const struct {
    const char* hex;
    PmpError want;
  } cases[] = {
      {"00 80 0000 000002", PmpError::kTooShort},                          // 7 bytes
      {"02 80 0000 0000028d c6336401", PmpError::kBadVersion},             // PCP
      {"00 00 0000 0000028d c6336401", PmpError::kNotAResponse},           // a request echoed
      {"00 81 0000 0000028d 1234 5678 00001c20", PmpError::kWrongOpcode},  // UDP map reply
      {"00 80 0000 0000028d", PmpError::kWrongLength},              // success without address
      {"00 80 0003 0000028d c633", PmpError::kWrongLength},         // 10 bytes
      {"00 80 0000 0000028d c6336401 00", PmpError::kWrongLength},  // trailing byte
  };
  for (const auto& c : cases) {
    const auto r = ParsePmpExternalAddressResponse(BytesFromHex(c.hex));
    ASSERT_FALSE(r.has_value()) << c.hex;
    EXPECT_EQ(r.error(), c.want) << c.hex;
    EXPECT_FALSE(Describe(r.error()).empty());
  }
}

TEST(PmpExternalAddress, NamesEveryRfcResultCode) {
  EXPECT_EQ(PmpResultName(0), "SUCCESS");
  EXPECT_EQ(PmpResultName(1), "UNSUPPORTED_VERSION");
  EXPECT_EQ(PmpResultName(2), "NOT_AUTHORIZED");
  EXPECT_EQ(PmpResultName(4), "OUT_OF_RESOURCES");
  EXPECT_EQ(PmpResultName(5), "UNSUPPORTED_OPCODE");
  EXPECT_EQ(PmpResultName(6), "");
}

// ---- PCP ----

TEST(PcpAnnounce, RequestMatchesRfc6887Layout) {
  Bytes out;
  // 192.0.2.2 as IPv4-mapped IPv6.
  std::array<std::byte, 16> ip{};
  ip[10] = ip[11] = std::byte{0xff};
  ip[12] = std::byte{192};
  ip[13] = std::byte{0};
  ip[14] = std::byte{2};
  ip[15] = std::byte{2};
  AppendPcpAnnounceRequest(out, ip);
  EXPECT_EQ(out, BytesFromHex("02 00 0000 00000000"
                              "00000000 00000000 0000ffff c0000202"));
}

TEST(PcpResponse, ParsesMiniupnpdAnnounceSuccess) {
  const Bytes wire = BytesFromHex("02800000000000000000028d000000000000000000000000");
  const auto r = ParsePcpResponse(wire);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->opcode, kPcpOpAnnounce);
  EXPECT_EQ(r->result_code, kPcpResultSuccess);
  EXPECT_EQ(r->lifetime_seconds, 0u);
  EXPECT_EQ(r->epoch_seconds, 653u);
  EXPECT_TRUE(r->body.empty());
  Bytes again;
  AppendPcpResponse(again, *r);
  EXPECT_EQ(again, wire);
}

TEST(PcpResponse, KeepsTheBodyOfAMapAnswerAndEncodesItBack) {
  // A MAP answer (opcode 1): NOT_AUTHORIZED, lifetime 30 s, epoch 7, 36 bytes of MAP data.
  const std::string map_data =
      "0102030405060708090a0b0c 11000000 1f90 1f90 "
      "00000000000000000000ffffc6336401";
  const Bytes wire =
      BytesFromHex("02 81 00 02 0000001e 00000007 000000000000000000000000 " + map_data);
  const auto r = ParsePcpResponse(wire);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->opcode, kPcpOpMap);
  EXPECT_EQ(r->result_code, kPcpResultNotAuthorized);
  EXPECT_EQ(PcpResultName(r->result_code), "NOT_AUTHORIZED");
  EXPECT_EQ(r->lifetime_seconds, 30u);
  EXPECT_EQ(r->epoch_seconds, 7u);
  EXPECT_EQ(Bytes(r->body.begin(), r->body.end()), BytesFromHex(map_data));
  Bytes again;
  AppendPcpResponse(again, *r);
  EXPECT_EQ(again, wire);
}

TEST(PcpResponse, IgnoresReservedBitsAsTheRfcRequires) {
  const auto r =
      ParsePcpResponse(BytesFromHex("02 80 ff 0c 00000000 00000001 ffffffffffffffffffffffff"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result_code, kPcpResultAddressMismatch);
  EXPECT_EQ(PcpResultName(r->result_code), "ADDRESS_MISMATCH");
}

TEST(PcpResponse, RejectsEveryMalformedShape) {
  const std::string header = "02 80 00 00 00000000 00000001 000000000000000000000000";
  const struct {
    std::string hex;
    PcpError want;
  } cases[] = {
      {"02 80 00 00 00000000 00000001 0000000000000000000000", PcpError::kTooShort},  // 23
      {header + std::string(2 * 1080, '0'), PcpError::kTooLong},                      // 1104
      {header + "0000", PcpError::kNotMultipleOf4},                                   // 26
      {"00 80 00 00 00000000 00000001 000000000000000000000000", PcpError::kBadVersion},
      {"01 80 00 00 00000000 00000001 000000000000000000000000", PcpError::kBadVersion},
      {"02 00 00 00 00000000 00000001 000000000000000000000000", PcpError::kNotAResponse},
  };
  for (const auto& c : cases) {
    const auto r = ParsePcpResponse(BytesFromHex(c.hex));
    ASSERT_FALSE(r.has_value()) << c.hex;
    EXPECT_EQ(r.error(), c.want) << c.hex;
    EXPECT_FALSE(Describe(r.error()).empty());
  }
}

TEST(PcpResponse, AcceptsTheLargestMessage) {
  const std::string header = "02 80 00 00 00000000 00000001 000000000000000000000000";
  const auto r = ParsePcpResponse(BytesFromHex(header + std::string(2 * 1076, '0')));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body.size(), 1076u);
}

// ---- SSDP ----

TEST(SsdpSearch, AllIsTailscalesExactBytes) {
  std::string out;
  AppendSsdpSearch(out, kSearchTargetAll);
  EXPECT_EQ(out,
            "M-SEARCH * HTTP/1.1\r\n"
            "HOST: 239.255.255.250:1900\r\n"
            "ST: ssdp:all\r\n"
            "MAN: \"ssdp:discover\"\r\n"
            "MX: 2\r\n\r\n");
}

TEST(SsdpSearch, InternetGatewayDeviceIsTailscalesExactBytes) {
  std::string out;
  AppendSsdpSearch(out, kSearchTargetIgd);
  EXPECT_EQ(out,
            "M-SEARCH * HTTP/1.1\r\n"
            "HOST: 239.255.255.250:1900\r\n"
            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "MAN: \"ssdp:discover\"\r\n"
            "MX: 2\r\n\r\n");
}

constexpr std::string_view kMiniupnpdIgdAnswer =
    "HTTP/1.1 200 OK\r\n"
    "CACHE-CONTROL: max-age=120\r\n"
    "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "USN: uuid:3f1c3c3e-5a4b-4c1d-9e2f-000000000001::urn:schemas-upnp-org:device:"
    "InternetGatewayDevice:1\r\n"
    "EXT:\r\n"
    "SERVER: Debian/6.18.44-fc-v782 UPnP/1.1 MiniUPnPd/2.3.1\r\n"
    "LOCATION: http://192.0.2.1:40307/rootDesc.xml\r\n"
    "OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n"
    "01-NLS: 1796015478\r\n"
    "BOOTID.UPNP.ORG: 1796015478\r\n"
    "CONFIGID.UPNP.ORG: 1337\r\n"
    "\r\n";

TEST(SsdpResponse, ParsesMiniupnpdsGatewayAnswer) {
  const auto r = ParseSsdpResponse(AsBytes(kMiniupnpdIgdAnswer));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
  EXPECT_EQ(r->usn,
            "uuid:3f1c3c3e-5a4b-4c1d-9e2f-000000000001::urn:schemas-upnp-org:device:"
            "InternetGatewayDevice:1");
  EXPECT_EQ(r->location, "http://192.0.2.1:40307/rootDesc.xml");
  EXPECT_EQ(r->server, "Debian/6.18.44-fc-v782 UPnP/1.1 MiniUPnPd/2.3.1");
  EXPECT_TRUE(IsInternetGatewayDevice(*r));
}

TEST(SsdpResponse, FieldNamesAreCaseInsensitive) {
  const auto r = ParseSsdpResponse(
      AsBytes("HTTP/1.1 200 OK\r\nst: upnp:rootdevice\r\nUsn: uuid:1::upnp:rootdevice\r\n"
              "Location: http://192.0.2.1/d.xml\r\n\r\n"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->st, "upnp:rootdevice");
  EXPECT_EQ(r->usn, "uuid:1::upnp:rootdevice");
  EXPECT_EQ(r->location, "http://192.0.2.1/d.xml");
  EXPECT_EQ(r->server, "");
  EXPECT_FALSE(IsInternetGatewayDevice(*r));  // the root device answer of ssdp:all
}

TEST(SsdpResponse, WanConnectionServicesCountAsGateway) {
  SsdpResponse r;
  r.st = "urn:schemas-upnp-org:service:WANIPConnection:2";
  r.usn = "uuid:1::urn:schemas-upnp-org:service:WANIPConnection:2";
  EXPECT_TRUE(IsInternetGatewayDevice(r));
  r.st = "urn:schemas-upnp-org:service:WANPPPConnection:1";
  r.usn = "uuid:1";
  EXPECT_TRUE(IsInternetGatewayDevice(r));
  r.st = "urn:schemas-upnp-org:device:MediaServer:1";
  r.usn = "uuid:1::urn:schemas-upnp-org:device:MediaServer:1";
  EXPECT_FALSE(IsInternetGatewayDevice(r));
}

TEST(SsdpResponse, EncodesAndParsesBack) {
  SsdpResponse r;
  r.st = std::string(kSearchTargetIgd);
  r.usn = "uuid:1::" + r.st;
  r.location = "http://192.0.2.1:5000/rootDesc.xml";
  r.server = "Linux UPnP/1.1 MiniUPnPd/2.3.1";
  std::string wire;
  AppendSsdpResponse(wire, r);
  EXPECT_EQ(wire,
            "HTTP/1.1 200 OK\r\n"
            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "USN: uuid:1::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "LOCATION: http://192.0.2.1:5000/rootDesc.xml\r\n"
            "SERVER: Linux UPnP/1.1 MiniUPnPd/2.3.1\r\n\r\n");
  const auto back = ParseSsdpResponse(AsBytes(wire));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(SsdpResponse, RejectsEveryMalformedShape) {
  const struct {
    std::string text;
    SsdpError want;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\n", SsdpError::kIncomplete},
      {"HTTP/1.1 200 OK\r\n" + std::string(17000, 'a') + "\r\n\r\n", SsdpError::kTooLarge},
      {"NOTIFY * HTTP/1.1\r\nNT: a\r\nUSN: b\r\n\r\n", SsdpError::kBadStatusLine},
      {"HTTP/2.0 200 OK\r\nST: a\r\nUSN: b\r\n\r\n", SsdpError::kBadVersion},
      {"HTTP/1.1 200 OK\r\nST a\r\nUSN: b\r\n\r\n", SsdpError::kBadHeaderLine},
      {"HTTP/1.1 404 Not Found\r\nST: a\r\nUSN: b\r\n\r\n", SsdpError::kNotOk},
      {"HTTP/1.1 200 OK\r\nUSN: b\r\n\r\n", SsdpError::kMissingSt},
      {"HTTP/1.1 200 OK\r\nST: a\r\n\r\n", SsdpError::kMissingUsn},
      {"HTTP/1.1 200 OK\r\nST: a\r\nUSN: b\r\n\r\nbody", SsdpError::kTrailingBytes},
  };
  for (const auto& c : cases) {
    const auto r = ParseSsdpResponse(AsBytes(c.text));
    ASSERT_FALSE(r.has_value()) << c.text.substr(0, 60);
    EXPECT_EQ(r.error(), c.want) << c.text.substr(0, 60);
    EXPECT_FALSE(Describe(r.error()).empty());
  }
}

// ---- /proc/net/route ----

constexpr std::string_view kRouteHeader =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

// The vectors below are what a little-endian kernel prints (address words as host integers).
// Returns `table` as this machine's kernel would print it: unchanged on little-endian hosts, with
// the bytes of each 8-digit address word (Destination, Gateway, Mask) reversed on big-endian ones.
std::string AsThisKernelPrints(std::string table) {
  if (std::endian::native == std::endian::little) return table;
  std::string out;
  std::size_t start = 0;
  while (start < table.size()) {
    const std::size_t end = std::min(table.find('\n', start), table.size());
    std::string line = table.substr(start, end - start);
    std::size_t field = 0;
    for (std::size_t at = 0; at <= line.size(); ++field) {
      const std::size_t next = std::min(line.find('\t', at), line.size());
      if ((field == 1 || field == 2 || field == 7) && next - at == 8) {
        const std::string w = line.substr(at, 8);
        line.replace(at, 8, w.substr(6, 2) + w.substr(4, 2) + w.substr(2, 2) + w.substr(0, 2));
      }
      at = next + 1;
    }
    out += line;
    if (end < table.size()) out += '\n';
    start = end + 1;
  }
  return out;
}

std::optional<netaddr::IpAddress> Gateway(std::string_view table) {
  return DefaultGatewayFromProcNetRoute(AsThisKernelPrints(std::string(table)));
}

TEST(DefaultGateway, ReadsTheNamespaceTestsRoute) {
  const std::string table = std::string(kRouteHeader) +
                            "nsa\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                            "nsa\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  const auto gw = Gateway(table);
  ASSERT_TRUE(gw.has_value());
  EXPECT_EQ(gw->ToString(), "192.0.2.1");
}

TEST(DefaultGateway, LowestMetricWinsAndTiesGoToTheFirst) {
  const std::string table = std::string(kRouteHeader) +
                            "eth0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
                            "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                            "eth1\t00000000\t0201A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  const auto gw = Gateway(table);
  ASSERT_TRUE(gw.has_value());
  EXPECT_EQ(gw->ToString(), "192.168.1.1");
}

TEST(DefaultGateway, SkipsRoutesThatAreNotUsableDefaults) {
  const std::string table =
      std::string(kRouteHeader) +
      "eth0\t0000000A\t0100000A\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n"  // not a default route
      "eth0\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"  // not up
      "eth0\t00000000\t0100000A\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"  // no gateway flag
      "eth0\t00000000\t00000000\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  // gateway 0.0.0.0
      "eth0\t00000000\tZZ00000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  // malformed
      "eth0\t00000000\t0100000A\t0003\n";                             // cut short
  EXPECT_FALSE(Gateway(table).has_value());
}

TEST(DefaultGateway, NoRoutesMeansNoGateway) {
  EXPECT_FALSE(Gateway("").has_value());
  EXPECT_FALSE(Gateway(kRouteHeader).has_value());
  // A default route on the header line itself is not a route.
  EXPECT_FALSE(Gateway("eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n").has_value());
}

TEST(DefaultGateway, StopsReadingAfterTheLineLimit) {
  std::string table(kRouteHeader);
  for (int i = 1; i < kMaxRouteLines; ++i) {
    table += "eth0\t0000000A\t0100000A\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n";
  }
  table += "eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
  EXPECT_FALSE(Gateway(table).has_value());
}

}  // namespace
}  // namespace derpkit::portmap
