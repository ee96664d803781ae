// CheckTls against our relay on loopback: a chain judged by a CA file and by a sha256-raw pin
// (facts filled, the meta certificate seen and not judged), a wrong pin (both pins in the
// message), a certificate within the expiry warning and an expired one (made here with OpenSSL,
// served in manual cert mode), a closed port, a plain-HTTP port and a silent one.
#include <gtest/gtest.h>

#include <asio.hpp>

#include "probe/checks.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"
#include "tests/unit/probe_checks/check_test_util.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using testing::Await;
using testing_util::NodeAt;
using testing_util::PinOf;

class TlsCheck : public ::testing::Test {
 protected:
  ProbeResult Check(const derpmap::Node& node, TlsCheckOptions options = {}) {
    return Await(io_, CheckTls(io_, node, options), 30s);
  }
  static testing::TestRelayOptions Tls() {
    testing::TestRelayOptions o;
    o.tls = true;
    return o;
  }
  asio::io_context io_;
};

TEST_F(TlsCheck, PassesWithTheRelaysCertificateAsCaFile) {
  testing::TestRelay relay(Tls());
  TlsCheckOptions options;
  options.ca_file = (relay.dir() / "certs/localhost.crt").string();
  const ProbeResult r = Check(NodeAt("1a", relay.port()), options);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(r.latency.count(), 0);
  ASSERT_TRUE(r.cert.has_value());
  EXPECT_EQ(r.cert->subject, "localhost");
  EXPECT_EQ(r.cert->issuer, "localhost");
  EXPECT_TRUE(r.cert->meta_cert_seen);
  EXPECT_FALSE(r.cert->pinned);
  EXPECT_EQ(r.cert->tls_version, "TLSv1.3");
  // A year's certificate: not_after far beyond the 30-day meta certificate, which is not judged.
  EXPECT_GT(r.cert->not_after, std::chrono::system_clock::now() + std::chrono::hours(24 * 300));
  EXPECT_LT(r.cert->not_before, std::chrono::system_clock::now());
  EXPECT_EQ(r.cert->earliest_not_after, r.cert->not_after);
}

TEST_F(TlsCheck, PassesWithTheRightPin) {
  testing::TestRelay relay(Tls());
  const ProbeResult r =
      Check(NodeAt("1a", relay.port(), PinOf(relay.dir() / "certs/localhost.crt")));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_TRUE(r.cert.has_value());
  EXPECT_TRUE(r.cert->pinned);
  EXPECT_TRUE(r.cert->meta_cert_seen);
  EXPECT_EQ(r.cert->subject, "localhost");
}

TEST_F(TlsCheck, WithoutCaFileOrPinTheSelfSignedChainFails) {
  testing::TestRelay relay(Tls());
  const ProbeResult r = Check(NodeAt("1a", relay.port()));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("1a (127.0.0.1:" + std::to_string(relay.port()) + "): TLS handshake: "),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("certificate verification failed: self-signed certificate"),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("pin it in the map with CertName \"" +
                         PinOf(relay.dir() / "certs/localhost.crt") + "\""),
            std::string::npos)
      << r.error;
  EXPECT_TRUE(r.cert.has_value()) << "the chain arrived, so its facts are reported";
}

TEST_F(TlsCheck, AWrongPinFailsShowingBothPins) {
  testing::TestRelay relay(Tls());
  const std::string wrong = "sha256-raw:" + std::string(64, 'a');
  const std::string right = PinOf(relay.dir() / "certs/localhost.crt");
  const ProbeResult r = Check(NodeAt("1a", relay.port(), wrong));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("pin mismatch: map says " + wrong + ", server sent " + right),
            std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.rfind("1a (127.0.0.1:", 0), 0u) << r.error;
  ASSERT_TRUE(r.cert.has_value());
  EXPECT_TRUE(r.cert->pinned);
}

TEST_F(TlsCheck, ACertificateExpiringWithinTheWarningFails) {
  testing_util::TempDir dir;
  // Valid since an hour ago, for three days: "expires in 2 days" (2 days 23 hours, rounded down).
  testing_util::WriteLocalhostCert(dir.path(), -1h, 72h);
  auto relay = testing_util::RelayWithCertIn(dir.path());
  const auto node = NodeAt("1a", relay->port(), PinOf(dir.path() / "localhost.crt"));

  const ProbeResult r = Check(node);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("certificate localhost expires in 2 days ("), std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("), within the 7-day warning"), std::string::npos) << r.error;
  ASSERT_TRUE(r.cert.has_value()) << "facts are kept while failing, to chart the expiry";
  EXPECT_LT(r.cert->not_after, std::chrono::system_clock::now() + 73h);
  EXPECT_GT(r.cert->not_after, std::chrono::system_clock::now() + 71h);
  EXPECT_EQ(r.cert->earliest_not_after, r.cert->not_after);

  // The same certificate with a one-day warning passes: the warning is what failed it.
  TlsCheckOptions short_warning;
  short_warning.expiry_warning = 24h;
  const ProbeResult relaxed = Check(node, short_warning);
  EXPECT_TRUE(relaxed.ok) << relaxed.error;
}

TEST_F(TlsCheck, AnExpiredCertificateFailsTheHandshakeAndSaysWhen) {
  testing_util::TempDir dir;
  testing_util::WriteLocalhostCert(dir.path(), -10 * 24h, -2 * 24h);
  auto relay = testing_util::RelayWithCertIn(dir.path());
  TlsCheckOptions options;
  options.ca_file = (dir.path() / "localhost.crt").string();
  const ProbeResult r = Check(NodeAt("1a", relay->port()), options);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("TLS handshake: "), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("expired"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("certificate localhost expired 2 days ago ("), std::string::npos)
      << r.error;
  ASSERT_TRUE(r.cert.has_value());
  EXPECT_LT(r.cert->not_after, std::chrono::system_clock::now());
}

TEST_F(TlsCheck, AClosedPortIsRefusedAndNamed) {
  const std::uint16_t port = testing_util::DeadTcpPort();
  const ProbeResult r = Check(NodeAt("1b", port));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error, "1b (127.0.0.1:" + std::to_string(port) + "): connect: Connection refused");
  EXPECT_FALSE(r.cert.has_value());
}

TEST_F(TlsCheck, APlainHttpPortFailsTheHandshakeInWords) {
  testing::TestRelay plain;  // our relay without TLS: HTTP on its port
  const ProbeResult r = Check(NodeAt("1a", plain.port()));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(
      r.error.rfind("1a (127.0.0.1:" + std::to_string(plain.port()) + "): TLS handshake: ", 0), 0u)
      << r.error;
  EXPECT_NE(r.error.find("does not speak TLS on this port"), std::string::npos) << r.error;
  EXPECT_FALSE(r.cert.has_value());
}

TEST_F(TlsCheck, ASilentServerTimesOutInTheHandshake) {
  // The kernel completes the TCP handshake for the backlog; nobody ever answers the ClientHello.
  asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
  TlsCheckOptions options;
  options.timeout = 300ms;
  const ProbeResult r = Check(NodeAt("1a", silent.local_endpoint().port()), options);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("timed out after 300ms in the TLS handshake"), std::string::npos)
      << r.error;
}

TEST_F(TlsCheck, ResolvesTheHostNameWhenTheNodeHasNoAddress) {
  testing::TestRelay relay(Tls());
  auto node = NodeAt("1a", relay.port(), PinOf(relay.dir() / "certs/localhost.crt"));
  node.ipv4 = "";  // DNS on HostName "localhost"
  node.ipv6 = "";
  const ProbeResult r = Check(node);
  // localhost may resolve to ::1 first, where nothing listens; the check moves on to 127.0.0.1.
  ASSERT_TRUE(r.ok) << r.error;
}

TEST_F(TlsCheck, ABadPinInTheMapIsASetUpError) {
  const ProbeResult r = Check(NodeAt("1a", 443, "sha256-raw:abc"));
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("1a (127.0.0.1:443): TLS set-up: "), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("64 hex digits"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace derpkit::probe
