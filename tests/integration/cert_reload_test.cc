// --certmode manual reload, in-process against a real relay on 127.0.0.1: a changed pair reaches
// new handshakes (with the meta certificate still appended) while open DERP connections keep
// relaying; every kind of bad pair is refused with the old certificate still served and the
// refusal counted by reason; selfsigned pairs reload too.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "lib/net/atomic_file.h"
#include "relay/cert_manager.h"
#include "relay/metrics.h"
#include "tests/integration/cert_test_util.h"
#include "tests/support/child_process.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHost = "localhost";

class CertReload : public ::testing::Test {
 protected:
  void WritePair(const TestPemPair& pair) {
    ASSERT_FALSE(net::WriteFileAtomically(key_file(), pair.key_pem, 0600));
    ASSERT_FALSE(net::WriteFileAtomically(cert_file(), pair.cert_pem, 0644));
  }
  std::string cert_file() const { return (certs_.path() / "localhost.crt").string(); }
  std::string key_file() const { return (certs_.path() / "localhost.key").string(); }
  // The relay trusts a pair written before it starts; polls every `poll`.
  std::unique_ptr<TestRelay> StartRelay(std::chrono::milliseconds poll) {
    TestRelayOptions o;
    o.tls = true;
    o.workers = 2;
    o.tweak = [&, poll](relay::RelayConfig& c) {
      c.cert_mode = "manual";
      c.cert_dir = certs_.path().string();
      c.hostname = kHost;
      c.cert_poll_interval = poll;
    };
    return std::make_unique<TestRelay>(o);
  }
  // A CA file holding exactly `pair`'s certificate.
  std::string TrustFile(const TestPemPair& pair, const std::string& name) {
    const std::string path = (trust_.path() / name).string();
    EXPECT_FALSE(net::WriteFileAtomically(path, pair.cert_pem, 0644));
    return path;
  }
  derpclient::ClientOptions ClientFor(TestRelay& relay, const std::string& ca_file) {
    derpclient::ClientOptions o;
    o.url = "https://localhost:" + std::to_string(relay.port()) + "/derp";
    o.dial_host = "127.0.0.1";
    o.tls.ca_file = ca_file;
    o.connect_timeout = std::chrono::milliseconds(5000);
    return o;
  }
  static std::uint64_t Refused(TestRelay& relay, relay::CertProblem p) {
    return relay.server().certs()->stats().refused[static_cast<std::size_t>(p)].load();
  }
  static std::uint64_t Installs(TestRelay& relay) {
    return relay.server().certs()->stats().installs.load();
  }

  ScratchDir certs_;
  ScratchDir trust_;
};

TEST_F(CertReload, ChangedFilesReachNewHandshakesWhileOpenConnectionsKeepRelaying) {
  const TestPemPair first = MakeTestCert(kHost);
  WritePair(first);
  auto relay = StartRelay(std::chrono::milliseconds(50));
  const std::string first_ca = TrustFile(first, "first.pem");
  EXPECT_EQ(relay->server().cert_sha256(), PemLeafSha256(first.cert_pem));

  asio::io_context io;
  auto alice_opts = ClientFor(*relay, first_ca);
  auto bob_opts = ClientFor(*relay, first_ca);
  const derp::PublicKey bob_key = bob_opts.key.Public();
  auto alice = ConnectClient(io, alice_opts);
  auto bob = ConnectClient(io, bob_opts);

  const TestPemPair second = MakeTestCert(kHost);
  WritePair(second);
  ASSERT_TRUE(WaitUntil([&] { return Installs(*relay) >= 1; }, 10000ms));
  EXPECT_EQ(relay->server().cert_sha256(), PemLeafSha256(second.cert_pem));

  // New handshakes get the new certificate, the meta certificate still after it.
  const TlsProbe fresh = ProbeTls(relay->port(), kHost, TrustFile(second, "second.pem"));
  ASSERT_EQ(fresh.error, "");
  EXPECT_EQ(fresh.leaf_sha256, PemLeafSha256(second.cert_pem));
  EXPECT_TRUE(fresh.meta_cert);
  EXPECT_NE(ProbeTls(relay->port(), kHost, first_ca).error, "");
  auto carol = ConnectClient(io, ClientFor(*relay, (trust_.path() / "second.pem").string()));

  // The connections made before the swap still relay, both ways.
  const std::vector<std::byte> payload(100, std::byte{0x42});
  ASSERT_FALSE(Await(io, alice->SendPacket(bob_key, payload)));
  const auto got = RecvUntil<derpclient::RecvPacketMessage>(io, *bob);
  EXPECT_EQ(got.src, alice_opts.key.Public());
  EXPECT_EQ(got.packet.size(), payload.size());
  ASSERT_FALSE(Await(io, carol->SendPacket(bob_key, payload)));
  EXPECT_EQ(RecvUntil<derpclient::RecvPacketMessage>(io, *bob).packet.size(), payload.size());

  const std::string metrics = relay::RenderPrometheus(relay->server());
  EXPECT_NE(metrics.find("derp_tls_cert_reloads_total 1"), std::string::npos) << metrics;
}

TEST_F(CertReload, BadPairsAreRefusedByReasonAndTheOldOneKeepsServing) {
  const TestPemPair good = MakeTestCert(kHost);
  WritePair(good);
  // Polling effectively off: each step is a reload request (SIGHUP's path), so no step can see
  // another's files half written.
  auto relay = StartRelay(std::chrono::hours(1));
  const std::string good_sha = PemLeafSha256(good.cert_pem);
  const std::string good_ca = TrustFile(good, "good.pem");
  auto still_good = [&] {
    const TlsProbe p = ProbeTls(relay->port(), kHost, good_ca);
    return p.error.empty() && p.leaf_sha256 == good_sha && p.meta_cert;
  };
  auto reload_expecting = [&](relay::CertProblem problem) {
    const std::uint64_t before = Refused(*relay, problem);
    relay->server().ReloadCertificates();
    return WaitUntil([&] { return Refused(*relay, problem) == before + 1; }, 10000ms);
  };

  // Not PEM at all.
  ASSERT_FALSE(net::WriteFileAtomically(cert_file(), "this is not a certificate\n", 0644));
  EXPECT_TRUE(reload_expecting(relay::CertProblem::kUnparsable));
  EXPECT_TRUE(still_good());

  // Somebody else's certificate beside our key.
  ASSERT_FALSE(net::WriteFileAtomically(cert_file(), MakeTestCert(kHost).cert_pem, 0644));
  EXPECT_TRUE(reload_expecting(relay::CertProblem::kKeyMismatch));
  EXPECT_TRUE(still_good());

  // Expired yesterday.
  WritePair(MakeTestCert(kHost, -3 * 86400, -86400));
  EXPECT_TRUE(reload_expecting(relay::CertProblem::kExpired));
  EXPECT_TRUE(still_good());

  // For another name, while the one in service is for ours.
  WritePair(MakeTestCert("other.example"));
  EXPECT_TRUE(reload_expecting(relay::CertProblem::kWrongName));
  EXPECT_TRUE(still_good());

  // The key file gone.
  fs::remove(key_file());
  EXPECT_TRUE(reload_expecting(relay::CertProblem::kUnreadable));
  EXPECT_TRUE(still_good());

  EXPECT_EQ(Installs(*relay), 0u);
  EXPECT_EQ(relay->server().cert_sha256(), good_sha);
  const std::string metrics = relay::RenderPrometheus(relay->server());
  for (const char* reason : {"unreadable", "unparsable", "key_mismatch", "expired", "wrong_name"}) {
    EXPECT_NE(metrics.find("derp_tls_cert_reload_failures_total{reason=\"" + std::string(reason) +
                           "\"} 1"),
              std::string::npos)
        << reason << "\n"
        << metrics;
  }

  // A good pair after all that is taken.
  const TestPemPair next = MakeTestCert(kHost);
  WritePair(next);
  relay->server().ReloadCertificates();
  ASSERT_TRUE(WaitUntil([&] { return Installs(*relay) == 1; }, 10000ms));
  const TlsProbe p = ProbeTls(relay->port(), kHost, TrustFile(next, "next.pem"));
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.leaf_sha256, PemLeafSha256(next.cert_pem));
}

TEST(CertReloadSelfSigned, AReplacedSelfSignedPairIsServedWithItsNewPin) {
  TestRelayOptions o;
  o.tls = true;
  o.tweak = [](relay::RelayConfig& c) { c.cert_poll_interval = std::chrono::milliseconds(50); };
  TestRelay relay(o);
  const fs::path dir = relay.dir() / "certs";
  const std::string before = relay.server().cert_sha256();
  ASSERT_EQ(before.size(), 64u);
  const TestPemPair next = MakeTestCert(kHost);
  ASSERT_FALSE(net::WriteFileAtomically((dir / "localhost.key").string(), next.key_pem, 0600));
  ASSERT_FALSE(net::WriteFileAtomically((dir / "localhost.crt").string(), next.cert_pem, 0644));
  ASSERT_TRUE(WaitUntil(
      [&] { return relay.server().cert_sha256() == PemLeafSha256(next.cert_pem); }, 10000ms));
  const TlsProbe p = ProbeTls(relay.port(), kHost, "");
  EXPECT_EQ(p.leaf_sha256, PemLeafSha256(next.cert_pem));
  EXPECT_TRUE(p.meta_cert);
}

}  // namespace
}  // namespace derpkit::testing
