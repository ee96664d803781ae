// Helpers for the derp-probe check tests: DERP map nodes that point at in-process relays on
// loopback, two TLS relays meshed with each other (one certificate, one mesh key), a free port
// nothing listens on, and a short-lived certificate made with OpenSSL for the expiry tests.
//
// Thread: the test's own. Relays run on their own threads; checks run on the test's io_context.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "lib/derp/keys.h"
#include "lib/derpmap/derpmap.h"
#include "lib/net/certs.h"
#include "tests/support/run.h"
#include "tests/support/test_relay.h"

namespace derpkit::probe::testing_util {

using namespace std::chrono_literals;

inline constexpr std::string_view kMeshKey =
    "f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805";

// A node on 127.0.0.1 with the test certificate's name; cert_name "" (verify by a CA file) or a
// "sha256-raw:" pin.
inline derpmap::Node NodeAt(std::string name, std::uint16_t derp_port, std::string cert_name = "") {
  derpmap::Node n;
  n.name = std::move(name);
  n.region_id = 900;
  n.host_name = "localhost";
  n.ipv4 = "127.0.0.1";
  n.ipv6 = "none";
  n.derp_port = derp_port;
  n.cert_name = std::move(cert_name);
  return n;
}

inline std::string PinOf(const std::filesystem::path& cert_file) {
  return "sha256-raw:" + net::CertSha256Hex(cert_file.string());
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, read back, released).
inline std::uint16_t DeadTcpPort() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// A fresh directory under the temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ =
        std::filesystem::temp_directory_path() /
        ("derpkit-probe-checks-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes <dir>/localhost.crt and .key: a self-signed ECDSA P-256 certificate for localhost (SAN
// DNS:localhost, IP:127.0.0.1) valid from now + not_before to now + not_after, the pair a relay
// reads in manual cert mode. Throws on an OpenSSL failure.
inline void WriteLocalhostCert(const std::filesystem::path& dir, std::chrono::seconds not_before,
                               std::chrono::seconds not_after) {
  std::filesystem::create_directories(dir);
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) throw std::runtime_error("OpenSSL: out of memory");
  X509_NAME* name = X509_get_subject_name(cert);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  const bool ok =
      X509_set_version(cert, X509_VERSION_3) == 1 &&
      ASN1_INTEGER_set(X509_get_serialNumber(cert), 4242) == 1 &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                 0) == 1 &&
      X509_set_issuer_name(cert, name) == 1 &&
      X509_gmtime_adj(X509_getm_notBefore(cert), static_cast<long>(not_before.count())) !=
          nullptr &&
      X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(not_after.count())) != nullptr &&
      X509_set_pubkey(cert, key) == 1 && san != nullptr && X509_add_ext(cert, san, -1) == 1 &&
      X509_sign(cert, key, EVP_sha256()) > 0;
  X509_EXTENSION_free(san);
  if (ok) {
    FILE* crt = std::fopen((dir / "localhost.crt").c_str(), "w");
    FILE* k = std::fopen((dir / "localhost.key").c_str(), "w");
    const bool written = crt != nullptr && k != nullptr && PEM_write_X509(crt, cert) == 1 &&
                         PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    if (crt != nullptr) std::fclose(crt);
    if (k != nullptr) std::fclose(k);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!written) throw std::runtime_error("cannot write the test certificate in " + dir.string());
    return;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  throw std::runtime_error("OpenSSL: cannot build the test certificate");
}

// A TLS relay serving <dir>/localhost.crt in manual mode.
inline std::unique_ptr<testing::TestRelay> RelayWithCertIn(const std::filesystem::path& dir) {
  testing::TestRelayOptions o;
  o.tls = true;
  o.tweak = [dir](relay::RelayConfig& c) {
    c.cert_mode = "manual";
    c.cert_dir = dir.string();
  };
  return std::make_unique<testing::TestRelay>(o);
}

// Two TLS relays of one region sharing a certificate (so each trusts the other through
// mesh_ca_file) and a mesh key; meshed with each other unless told not to.
class RelayPair {
 public:
  explicit RelayPair(bool meshed = true) {
    key_file_ = (dir_.path() / "mesh.key").string();
    std::ofstream(key_file_) << kMeshKey << "\n";
    certs_ = dir_.path() / "certs";
    for (auto* relay : {&a_, &b_}) {
      testing::TestRelayOptions o;
      o.tls = true;
      o.tweak = [this](relay::RelayConfig& c) {
        c.cert_dir = certs_.string();
        c.mesh_psk_file = key_file_;
        c.mesh_ca_file = ca_file();
      };
      *relay = std::make_unique<testing::TestRelay>(o);
    }
    if (!meshed) return;
    a_->server().AddMeshPeers({"localhost:" + std::to_string(b_->port()) + "/127.0.0.1"});
    b_->server().AddMeshPeers({"localhost:" + std::to_string(a_->port()) + "/127.0.0.1"});
    const bool linked = testing::WaitUntil(
        [&] {
          for (auto* relay : {&a_, &b_}) {
            if ((*relay)->server().mesh_links().empty()) return false;
            for (auto& link : (*relay)->server().mesh_links()) {
              if (!link->stats().connected) return false;
            }
          }
          return true;
        },
        10000ms);
    if (!linked) throw std::runtime_error("the two test relays did not mesh within 10 s");
  }

  testing::TestRelay& a() { return *a_; }
  testing::TestRelay& b() { return *b_; }
  // Stops relay b (its clients see the connection close).
  void StopB() { b_.reset(); }
  std::string ca_file() const { return (certs_ / "localhost.crt").string(); }
  derpmap::Node NodeA() const { return NodeAt("1a", a_->port()); }
  derpmap::Node NodeB() const { return NodeAt("1b", b_->port()); }

 private:
  TempDir dir_;
  std::string key_file_;
  std::filesystem::path certs_;
  std::unique_ptr<testing::TestRelay> a_;
  std::unique_ptr<testing::TestRelay> b_;
};

}  // namespace derpkit::probe::testing_util
