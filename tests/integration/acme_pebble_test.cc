// --certmode letsencrypt end to end against Debian's pebble (a real RFC 8555 server) on loopback,
// with pebble-challtestsrv as pebble's DNS server resolving every name to 127.0.0.1 (the machine's
// resolver and /etc/hosts are never involved). The relay gets its certificate through HTTP-01 on
// its --http-port listener and, in a second run, through TLS-ALPN-01 on its main port; DERP
// clients trusting pebble's root connect and relay; renewal replaces the certificate while a DERP
// connection stays up; with pebble gone the relay backs off and keeps serving; a restart serves
// the stored certificate without asking the CA.
//
// pebble is run as a test CA should be: PEBBLE_VA_NOSLEEP=1 so validation is immediate; nonces
// are still rejected 5% of the time and valid authorizations reused half the time (pebble's
// defaults), which the client must cope with.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "lib/net/atomic_file.h"
#include "lib/net/certs.h"
#include "relay/cert_manager.h"
#include "relay/metrics.h"
#include "tests/integration/cert_test_util.h"
#include "tests/support/child_process.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHost = "relay.derpkit.test";

// pebble and its DNS server, on free loopback ports, for one test.
class Pebble {
 public:
  // `http_port` and `tls_port` are where pebble's validation connects (the relay's listeners).
  Pebble(const fs::path& dir, std::uint16_t http_port, std::uint16_t tls_port) : dir_(dir) {
    const std::string pebble = FindProgram("pebble");
    const std::string challtestsrv = FindProgram("pebble-challtestsrv");
    if (pebble.empty() || challtestsrv.empty()) {
      ADD_FAILURE() << "pebble is not installed: run scripts/install-deps.sh";
      return;
    }
    // pebble's own HTTPS certificate; the relay trusts it through --acme-ca-file.
    const net::SelfSignedCert listener = net::GenerateSelfSigned("localhost");
    listener_ca_ = (dir / "pebble-listener.crt").string();
    EXPECT_FALSE(net::WriteFileAtomically(listener_ca_, listener.cert_pem, 0644));
    EXPECT_FALSE(
        net::WriteFileAtomically((dir / "pebble-listener.key").string(), listener.key_pem, 0600));
    acme_port_ = PickFreePort();
    management_port_ = PickFreePort();
    const std::uint16_t dns_port = PickFreePort();  // TCP-free; UDP on the same number, likely
    const std::uint16_t dns_management_port = PickFreePort();
    std::ofstream(dir / "pebble.json") << R"({"pebble": {
        "listenAddress": "127.0.0.1:)" << acme_port_
                                       << R"(",
        "managementListenAddress": "127.0.0.1:)"
                                       << management_port_ << R"(",
        "certificate": ")" << (dir / "pebble-listener.crt").string()
                                       << R"(",
        "privateKey": ")" << (dir / "pebble-listener.key").string()
                                       << R"(",
        "httpPort": )" << http_port << R"(,
        "tlsPort": )" << tls_port << R"(,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false}})";
    const std::string dns = "127.0.0.1:" + std::to_string(dns_port);
    dns_address_ = dns;
    dns_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{challtestsrv, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                                 "-dns01", dns, "-http01", "", "-https01", "", "-tlsalpn01", "",
                                 "-management", "127.0.0.1:" + std::to_string(dns_management_port)},
        dir / "challtestsrv.log");
    Start();
  }

  // (Re)starts pebble itself: a new CA with new roots each time.
  void Start() {
    pebble_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/env", "PEBBLE_VA_NOSLEEP=1", FindProgram("pebble"),
                                 "-config", (dir_ / "pebble.json").string(), "-dnsserver",
                                 dns_address_},
        dir_ / "pebble.log");
    const bool up = WaitUntil([&] { return !Get(acme_port_, "/dir").empty(); }, 20000ms);
    EXPECT_TRUE(up) << "pebble did not come up:\n" << ReadWholeFile(dir_ / "pebble.log");
  }
  void Stop() { pebble_.reset(); }

  std::string directory_url() const {
    return "https://127.0.0.1:" + std::to_string(acme_port_) + "/dir";
  }
  const std::string& listener_ca() const { return listener_ca_; }
  // Writes pebble's current root to `path` (what DERP clients trust) and returns the path.
  std::string WriteRoot(const fs::path& path) const {
    EXPECT_FALSE(net::WriteFileAtomically(path.string(), Get(management_port_, "/roots/0"), 0644));
    return path.string();
  }
  std::string log() const { return ReadWholeFile(dir_ / "pebble.log"); }

 private:
  std::string Get(std::uint16_t port, const std::string& path) const {
    httplib::Client client("https://127.0.0.1:" + std::to_string(port));
    client.set_ca_cert_path(listener_ca_);
    client.enable_server_certificate_verification(true);
    client.set_connection_timeout(std::chrono::seconds(2));
    auto r = client.Get(path);
    return r && r->status == 200 ? r->body : std::string();
  }

  fs::path dir_;
  std::string listener_ca_;
  std::uint16_t acme_port_ = 0;
  std::uint16_t management_port_ = 0;
  std::string dns_address_;  // challtestsrv's -dns01 address, pebble's -dnsserver
  std::unique_ptr<ChildProcess> dns_;
  std::unique_ptr<ChildProcess> pebble_;
};

struct AcmeRelayOptions {
  std::uint16_t port = 0;
  int http_port = -1;
  std::string challenge;
  std::chrono::seconds renew_before{0};
};

std::unique_ptr<TestRelay> StartAcmeRelay(const fs::path& cert_dir, const Pebble& pebble,
                                          const AcmeRelayOptions& o) {
  TestRelayOptions t;
  t.workers = 2;
  t.tweak = [&](relay::RelayConfig& c) {
    c.addr = "127.0.0.1:" + std::to_string(o.port);
    c.http_port = o.http_port;
    c.cert_mode = "letsencrypt";
    c.cert_dir = cert_dir.string();
    c.hostname = kHost;
    c.acme_directory = pebble.directory_url();
    c.acme_ca_file = pebble.listener_ca();
    c.acme_email = "ops@derpkit.test";
    c.acme_challenge = o.challenge;
    c.acme_renew_before = o.renew_before;
    c.acme_retry_min = std::chrono::milliseconds(300);
  };
  return std::make_unique<TestRelay>(t);
}

derpclient::ClientOptions ClientFor(std::uint16_t port, const std::string& ca_file) {
  derpclient::ClientOptions o;
  o.url = std::string("https://") + kHost + ":" + std::to_string(port) + "/derp";
  o.dial_host = "127.0.0.1";
  o.tls.ca_file = ca_file;
  o.connect_timeout = std::chrono::milliseconds(5000);
  return o;
}

const relay::CertStats& Stats(TestRelay& relay) { return relay.server().certs()->stats(); }

std::uint64_t Failures(TestRelay& relay) {
  std::uint64_t n = 0;
  for (const auto& f : Stats(relay).acme_failures) n += f.load();
  return n;
}

// Relays one packet from `from` to `to` and checks it arrives.
void ExpectRelays(asio::io_context& io, derpclient::Client& from, const derp::PublicKey& from_key,
                  derpclient::Client& to, const derp::PublicKey& to_key) {
  const std::vector<std::byte> payload(64, std::byte{0x5a});
  ASSERT_FALSE(Await(io, from.SendPacket(to_key, payload)));
  const auto got = RecvUntil<derpclient::RecvPacketMessage>(io, to);
  EXPECT_EQ(got.src, from_key);
  EXPECT_EQ(got.packet.size(), payload.size());
}

TEST(AcmePebble, Http01IssuesRenewsBacksOffAndRestartsFromTheStoredCertificate) {
  ScratchDir scratch;
  const fs::path cert_dir = scratch.path() / "certs";
  const std::uint16_t port = PickFreePort();
  const std::uint16_t http_port = PickFreePort();
  Pebble pebble(scratch.path(), http_port, port);
  ASSERT_FALSE(::testing::Test::HasFailure());

  // Renewal due long before expiry: each certificate is replaced ~10 s after it is issued (the
  // relay's floor between renewals), which exercises renewal within the test.
  auto relay = StartAcmeRelay(cert_dir, pebble,
                              {port, http_port, "http-01", std::chrono::hours(24 * 365 * 20)});
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).acme_issued.load() >= 1; }, 60000ms))
      << pebble.log();
  const std::string first = relay->server().cert_sha256();
  ASSERT_EQ(first.size(), 64u);
  EXPECT_GE(relay->server().certs()->challenges()->answered(0), 1u);

  // Stored in --certdir: the pair, key 0600, and the account key.
  struct stat st {};
  ASSERT_EQ(::stat((cert_dir / (std::string(kHost) + ".key")).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(fs::exists(cert_dir / (std::string(kHost) + ".crt")));
  EXPECT_TRUE(fs::exists(cert_dir / "acme_account+key"));

  // DERP clients that trust pebble's root (and check the name) connect and relay.
  const std::string root = pebble.WriteRoot(scratch.path() / "pebble-root.pem");
  asio::io_context io;
  auto alice_opts = ClientFor(port, root);
  auto bob_opts = ClientFor(port, root);
  auto alice = ConnectClient(io, alice_opts);
  auto bob = ConnectClient(io, bob_opts);
  ExpectRelays(io, *alice, alice_opts.key.Public(), *bob, bob_opts.key.Public());
  const TlsProbe probe = ProbeTls(port, kHost, root);
  EXPECT_EQ(probe.error, "");
  EXPECT_TRUE(probe.meta_cert);

  // Renewal: a new certificate for new handshakes; the open connections keep relaying.
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).acme_issued.load() >= 2; }, 60000ms))
      << pebble.log();
  EXPECT_NE(relay->server().cert_sha256(), first);
  EXPECT_GE(Stats(*relay).installs.load(), 2u);
  ExpectRelays(io, *bob, bob_opts.key.Public(), *alice, alice_opts.key.Public());
  EXPECT_EQ(ProbeTls(port, kHost, root).leaf_sha256, relay->server().cert_sha256());

  // pebble gone: attempts fail and back off; the certificate in service stays.
  pebble.Stop();
  const std::uint64_t failures_before = Failures(*relay);
  ASSERT_TRUE(WaitUntil([&] { return Failures(*relay) >= failures_before + 2; }, 60000ms));
  const std::string kept = relay->server().cert_sha256();
  ASSERT_TRUE(WaitUntil([&] { return Failures(*relay) >= failures_before + 3; }, 60000ms));
  EXPECT_EQ(relay->server().cert_sha256(), kept);
  EXPECT_EQ(ProbeTls(port, kHost, root).leaf_sha256, kept);
  auto carol = ConnectClient(io, ClientFor(port, root));
  ExpectRelays(io, *alice, alice_opts.key.Public(), *bob, bob_opts.key.Public());
  const std::string metrics = relay::RenderPrometheus(relay->server());
  EXPECT_EQ(metrics.find("derp_acme_failures_total{reason=\"network\"} 0"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("derp_acme_challenges_answered_total{type=\"tls-alpn-01\"} 0"),
            std::string::npos);
  carol.reset();
  alice.reset();
  bob.reset();
  relay.reset();

  // A restart serves the stored certificate at once and asks nobody (pebble is still down).
  auto again = StartAcmeRelay(cert_dir, pebble, {0, 0, "http-01", std::chrono::seconds(0)});
  EXPECT_EQ(again->server().cert_sha256(), kept);
  EXPECT_EQ(ProbeTls(again->port(), kHost, root).leaf_sha256, kept);
  EXPECT_EQ(Stats(*again).acme_issued.load(), 0u);
  EXPECT_TRUE(WaitUntil(
      [&] { return Stats(*again).acme_next_attempt_unix.load() > std::time(nullptr) + 86400; }));
}

TEST(AcmeWithoutCa, RefusesHandshakesUntilTheFirstCertificateAndBacksOff) {
  ScratchDir scratch;
  TestRelayOptions t;
  t.tweak = [&](relay::RelayConfig& c) {
    c.cert_mode = "letsencrypt";
    c.cert_dir = (scratch.path() / "certs").string();
    c.hostname = kHost;
    c.acme_directory = "https://127.0.0.1:" + std::to_string(PickFreePort()) + "/dir";
    c.acme_retry_min = std::chrono::milliseconds(100);
  };
  TestRelay relay(t);
  ASSERT_TRUE(WaitUntil([&] {
    return Stats(relay)
               .acme_failures[static_cast<std::size_t>(acme::FailureKind::kNetwork)]
               .load() >= 2;
  }));
  EXPECT_EQ(relay.server().cert_sha256(), "");
  EXPECT_NE(ProbeTls(relay.port(), kHost, "").error, "");
  EXPECT_TRUE(fs::exists(scratch.path() / "certs" / "acme_account+key"));
  const std::string metrics = relay::RenderPrometheus(relay.server());
  EXPECT_NE(metrics.find("derp_tls_cert_expiry_timestamp_seconds 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("derp_acme_certificates_issued_total 0"), std::string::npos);
}

TEST(AcmePebble, TlsAlpn01IssuesACertificateOnTheMainPort) {
  ScratchDir scratch;
  const fs::path cert_dir = scratch.path() / "certs";
  const std::uint16_t port = PickFreePort();
  Pebble pebble(scratch.path(), PickFreePort(), port);
  ASSERT_FALSE(::testing::Test::HasFailure());

  auto relay = StartAcmeRelay(cert_dir, pebble, {port, -1, "tls-alpn-01", std::chrono::seconds(0)});
  ASSERT_TRUE(WaitUntil([&] { return Stats(*relay).acme_issued.load() >= 1; }, 60000ms))
      << pebble.log();
  EXPECT_GE(relay->server().certs()->challenges()->answered(1), 1u);
  EXPECT_EQ(relay->server().certs()->challenges()->answered(0), 0u);

  const std::string root = pebble.WriteRoot(scratch.path() / "pebble-root.pem");
  asio::io_context io;
  auto alice_opts = ClientFor(port, root);
  auto bob_opts = ClientFor(port, root);
  auto alice = ConnectClient(io, alice_opts);
  auto bob = ConnectClient(io, bob_opts);
  ExpectRelays(io, *alice, alice_opts.key.Public(), *bob, bob_opts.key.Public());

  // With the challenge answered, "acme-tls/1" is no longer served: such a handshake is refused,
  // and a browser's ALPN still gets http/1.1.
  EXPECT_NE(ProbeTls(port, kHost, "", {"acme-tls/1"}).error, "");
  EXPECT_EQ(ProbeTls(port, kHost, root, {"h2", "http/1.1"}).alpn, "http/1.1");
}

}  // namespace
}  // namespace derpkit::testing
