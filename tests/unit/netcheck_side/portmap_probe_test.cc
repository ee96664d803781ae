// ProbePortMapping against a fake gateway on 127.0.0.1: UDP sockets on port 0 standing in for
// the gateway's NAT-PMP/PCP port and its SSDP port, answering with bytes real gateways send. The
// probe never multicasts here (the gateway is loopback, and the tests also turn it off).
#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <string>
#include <vector>

#include "lib/net/stream.h"
#include "lib/util/bytes.h"
#include "netcheck/portmap.h"
#include "tests/support/run.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::udp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using testing::Await;

constexpr std::string_view kIgdAnswer =
    "HTTP/1.1 200 OK\r\n"
    "CACHE-CONTROL: max-age=120\r\n"
    "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "USN: uuid:1::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "EXT:\r\n"
    "SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n"
    "LOCATION: http://127.0.0.1:40307/rootDesc.xml\r\n\r\n";
constexpr std::string_view kWanServiceAnswer =
    "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:service:WANPPPConnection:1\r\n"
    "USN: uuid:2::urn:schemas-upnp-org:service:WANPPPConnection:1\r\n"
    "LOCATION: http://127.0.0.1:40307/rootDesc.xml\r\n\r\n";
constexpr std::string_view kRootDeviceAnswer =
    "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nUSN: uuid:1::upnp:rootdevice\r\n"
    "LOCATION: http://127.0.0.1:40307/rootDesc.xml\r\n\r\n";
// RFC 6886 success: epoch 653 s, public address 198.51.100.1.
const Bytes kPmpSuccess = BytesFromHex("00 80 0000 0000028d c6336401");
// miniupnpd 2.3.1 behind a reserved outside address.
const Bytes kPmpNetworkFailure = BytesFromHex("008000030000028d00000000");
const Bytes kPcpAnnounceSuccess = BytesFromHex("02800000000000000000028d000000000000000000000000");
const Bytes kPcpNotAuthorized = BytesFromHex("02800002000000000000028d000000000000000000000000");
// What a NAT-PMP-only gateway answers to a PCP (version 2) request.
const Bytes kPmpUnsupportedVersion = BytesFromHex("00 80 0001 0000028d");

// A gateway on loopback: answers whatever it is told to, and records what it was sent.
class FakeGateway {
 public:
  explicit FakeGateway(asio::io_context& io)
      : pxp_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        ssdp_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        stray_(io, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io, ServePxp(), asio::detached);
    asio::co_spawn(io, ServeSsdp(), asio::detached);
  }
  ~FakeGateway() {
    std::error_code ignored;
    pxp_.close(ignored);
    ssdp_.close(ignored);
  }

  std::uint16_t pxp_port() const { return pxp_.local_endpoint().port(); }
  std::uint16_t ssdp_port() const { return ssdp_.local_endpoint().port(); }

  // Answers; an empty one means silence.
  std::vector<Bytes> pmp_answers;         // to a version-0 request
  std::vector<Bytes> pcp_answers;         // to a version-2 request
  std::vector<std::string> ssdp_answers;  // to every M-SEARCH
  // Sent from a third port instead of the NAT-PMP/PCP one (which a client must ignore).
  std::vector<Bytes> stray_answers;

  std::vector<Bytes> pxp_received;
  std::vector<std::string> ssdp_received;

 private:
  asio::awaitable<void> ServePxp() {
    std::array<std::byte, 2048> buf{};
    for (;;) {
      udp::endpoint from;
      auto [ec, n] = co_await pxp_.async_receive_from(asio::buffer(buf), from, net::kAsTuple);
      if (ec) co_return;
      pxp_received.emplace_back(buf.begin(), buf.begin() + static_cast<long>(n));
      const auto& answers = buf[0] == std::byte{0} ? pmp_answers : pcp_answers;
      for (const Bytes& a : answers) {
        co_await pxp_.async_send_to(asio::buffer(a), from, net::kAsTuple);
      }
      for (const Bytes& a : stray_answers) {
        co_await stray_.async_send_to(asio::buffer(a), from, net::kAsTuple);
      }
    }
  }

  asio::awaitable<void> ServeSsdp() {
    std::array<char, 2048> buf{};
    for (;;) {
      udp::endpoint from;
      auto [ec, n] = co_await ssdp_.async_receive_from(asio::buffer(buf), from, net::kAsTuple);
      if (ec) co_return;
      ssdp_received.emplace_back(buf.data(), n);
      for (const std::string& a : ssdp_answers) {
        co_await ssdp_.async_send_to(asio::buffer(a), from, net::kAsTuple);
      }
    }
  }

  udp::socket pxp_;
  udp::socket ssdp_;
  udp::socket stray_;
};

// Runs `io` until `done()` or 5 s pass (the fake may still hold datagrams the probe no longer
// waited for).
template <typename Pred>
bool RunUntil(asio::io_context& io, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(10ms);
  return done();
}

class PortMapProbe : public ::testing::Test {
 protected:
  PortMapOptions Options(std::chrono::milliseconds timeout = 2000ms) {
    PortMapOptions o;
    o.gateway = "127.0.0.1";
    o.pxp_port = gateway_.pxp_port();
    o.ssdp_port = gateway_.ssdp_port();
    o.ssdp_multicast = false;
    o.timeout = timeout;
    return o;
  }
  PortMapResult Probe(const PortMapOptions& o) { return Await(io_, ProbePortMapping(o), 10s); }

  static std::string Notes(const PortMapResult& r) {
    std::string all;
    for (const auto& n : r.notes) all += n + "\n";
    return all;
  }

  asio::io_context io_;
  FakeGateway gateway_{io_};
};

TEST_F(PortMapProbe, GatewaySpeakingAllThreeIsReportedAsSuch) {
  gateway_.pmp_answers = {kPmpSuccess};
  gateway_.pcp_answers = {kPcpAnnounceSuccess};
  // ssdp:all order as miniupnpd sends it: root device, services, then the gateway device.
  gateway_.ssdp_answers = {std::string(kRootDeviceAnswer), std::string(kWanServiceAnswer),
                           std::string(kIgdAnswer)};
  const PortMapResult r = Probe(Options());
  EXPECT_EQ(r.gateway, "127.0.0.1");
  EXPECT_EQ(r.upnp, true) << Notes(r);
  EXPECT_EQ(r.pmp, true) << Notes(r);
  EXPECT_EQ(r.pcp, true) << Notes(r);
  const std::string notes = Notes(r);
  EXPECT_NE(notes.find("NAT-PMP: public address 198.51.100.1 (gateway epoch 653 s)"),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("PCP: ANNOUNCE answered SUCCESS"), std::string::npos) << notes;
  EXPECT_NE(notes.find("UPnP: 127.0.0.1:" + std::to_string(gateway_.ssdp_port()) +
                       " answered as urn:schemas-upnp-org:device:InternetGatewayDevice:1 "
                       "(Debian/12 UPnP/1.1 MiniUPnPd/2.3.1)"),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("http://127.0.0.1:40307/rootDesc.xml"), std::string::npos) << notes;
}

TEST_F(PortMapProbe, SendsExactlyTheReferenceRequests) {
  gateway_.pmp_answers = {kPmpSuccess};
  gateway_.pcp_answers = {kPcpAnnounceSuccess};
  gateway_.ssdp_answers = {std::string(kIgdAnswer)};
  Probe(Options());
  ASSERT_TRUE(RunUntil(io_, [&] {
    return gateway_.pxp_received.size() >= 2 && gateway_.ssdp_received.size() >= 2;
  }));
  ASSERT_EQ(gateway_.pxp_received.size(), 2u);
  EXPECT_EQ(gateway_.pxp_received[0], BytesFromHex("0000"));
  // ANNOUNCE naming our own address, 127.0.0.1, IPv4-mapped.
  EXPECT_EQ(gateway_.pxp_received[1],
            BytesFromHex("02000000 00000000 00000000 00000000 0000ffff 7f000001"));
  ASSERT_EQ(gateway_.ssdp_received.size(), 2u);
  EXPECT_EQ(gateway_.ssdp_received[0],
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: ssdp:all\r\n"
            "MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n");
  EXPECT_EQ(gateway_.ssdp_received[1],
            "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
            "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
            "MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n");
}

TEST_F(PortMapProbe, SilentGatewayMeansCheckedAndAbsent) {
  const PortMapResult r = Probe(Options(300ms));
  EXPECT_EQ(r.upnp, false);
  EXPECT_EQ(r.pmp, false);
  EXPECT_EQ(r.pcp, false);
  const std::string notes = Notes(r);
  EXPECT_NE(notes.find("NAT-PMP: no answer"), std::string::npos) << notes;
  EXPECT_NE(notes.find("PCP: no answer"), std::string::npos) << notes;
  EXPECT_NE(notes.find("UPnP: no Internet Gateway Device"), std::string::npos) << notes;
}

TEST_F(PortMapProbe, RefusalsAreNotSupportAndAreNamed) {
  gateway_.pmp_answers = {kPmpNetworkFailure};
  gateway_.pcp_answers = {kPcpNotAuthorized};
  gateway_.ssdp_answers = {std::string(kRootDeviceAnswer)};  // a UPnP device, but no gateway
  const PortMapResult r = Probe(Options(500ms));
  EXPECT_EQ(r.upnp, false);
  EXPECT_EQ(r.pmp, false);
  EXPECT_EQ(r.pcp, false);
  const std::string notes = Notes(r);
  EXPECT_NE(notes.find("NAT-PMP: the gateway answered NETWORK_FAILURE (3)"), std::string::npos)
      << notes;
  EXPECT_NE(notes.find("PCP: ANNOUNCE answered NOT_AUTHORIZED (2"), std::string::npos) << notes;
}

TEST_F(PortMapProbe, AWanConnectionServiceAnswerAloneIsUpnp) {
  gateway_.ssdp_answers = {std::string(kWanServiceAnswer)};
  const PortMapResult r = Probe(Options(500ms));
  EXPECT_EQ(r.upnp, true);
  EXPECT_NE(Notes(r).find("answered as urn:schemas-upnp-org:service:WANPPPConnection:1"),
            std::string::npos)
      << Notes(r);
}

TEST_F(PortMapProbe, NatPmpOnlyGatewayRefusingPcpsVersion) {
  gateway_.pmp_answers = {kPmpSuccess};
  gateway_.pcp_answers = {kPmpUnsupportedVersion};
  const PortMapResult r = Probe(Options(500ms));
  EXPECT_EQ(r.pmp, true) << Notes(r);
  EXPECT_EQ(r.pcp, false);
  EXPECT_NE(Notes(r).find("PCP: not spoken"), std::string::npos) << Notes(r);
}

TEST_F(PortMapProbe, AnswersFromAnotherPortAreNotTheGatewaysNatPmp) {
  gateway_.stray_answers = {kPmpSuccess, kPcpAnnounceSuccess};
  const PortMapResult r = Probe(Options(500ms));
  EXPECT_EQ(r.pmp, false);
  EXPECT_EQ(r.pcp, false);
  EXPECT_NE(Notes(r).find("ignored a datagram from 127.0.0.1"), std::string::npos) << Notes(r);
}

TEST_F(PortMapProbe, MalformedAnswersAreIgnoredWithAReason) {
  gateway_.pmp_answers = {BytesFromHex("00 80 0000 0000028d")};   // success without an address
  gateway_.pcp_answers = {BytesFromHex("02 80 00 00 00000000")};  // cut short
  gateway_.ssdp_answers = {"HTTP/1.1 200 OK\r\nST: x\r\n\r\n"};
  const PortMapResult r = Probe(Options(500ms));
  EXPECT_EQ(r.upnp, false);
  EXPECT_EQ(r.pmp, false);
  EXPECT_EQ(r.pcp, false);
  const std::string notes = Notes(r);
  EXPECT_NE(notes.find("wrong length"), std::string::npos) << notes;
  EXPECT_NE(notes.find("shorter than its 24-byte header"), std::string::npos) << notes;
  EXPECT_NE(notes.find("without a USN field"), std::string::npos) << notes;
}

TEST_F(PortMapProbe, AGatewayThatIsNotIpv4IsNotChecked) {
  PortMapOptions o = Options();
  o.gateway = "::1";
  const PortMapResult r = Probe(o);
  EXPECT_EQ(r.gateway, "");
  EXPECT_FALSE(r.upnp.has_value());
  EXPECT_FALSE(r.pmp.has_value());
  EXPECT_FALSE(r.pcp.has_value());
  EXPECT_TRUE(gateway_.pxp_received.empty());
}

TEST_F(PortMapProbe, CancellingTheProbeEndsIt) {
  // A silent gateway and a long timeout: only the caller's cancellation can end the probe.
  auto race = [&]() -> asio::awaitable<bool> {
    asio::steady_timer stop(io_, 50ms);
    auto r = co_await (ProbePortMapping(Options(60s)) || stop.async_wait(net::kAsTuple));
    co_return r.index() == 1;
  };
  EXPECT_TRUE(Await(io_, race(), 10s));
}

}  // namespace
}  // namespace derpkit::netcheck
