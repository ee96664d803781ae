// Helpers of the certificate tests (cert_reload_test, acme_pebble_test): PEM pairs with chosen
// names and dates, and a TLS probe that reports what a new handshake with the relay gets: the
// leaf's SHA-256, whether the DERP meta certificate followed it, the ALPN protocol.
//
// Blocking; the test's main thread.
#pragma once

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <ctime>
#include <string>
#include <vector>

#include "lib/net/openssl_util.h"
#include "lib/net/tls.h"

namespace derpkit::testing {

struct TestPemPair {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed P-256 certificate with one DNS SAN, valid from now+not_before_s to
// now+not_after_s (negative: in the past).
inline TestPemPair MakeTestCert(const std::string& dns_name, long not_before_s = -3600,
                                long not_after_s = 30L * 24 * 3600) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* x = X509_new();
  time_t now = std::time(nullptr);
  X509_set_version(x, X509_VERSION_3);
  static long serial = static_cast<long>(now % 100000) * 1000;  // distinct serials in the logs
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_time_adj_ex(X509_getm_notBefore(x), 0, not_before_s, &now);
  X509_time_adj_ex(X509_getm_notAfter(x), 0, not_after_s, &now);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  const std::string san = "DNS:" + dns_name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* bio = BIO_new(BIO_s_mem());
    write(bio);
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(size));
    BIO_free(bio);
    return out;
  };
  TestPemPair out;
  out.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
  out.key_pem = pem([&](BIO* b) {
    PEM_write_bio_PrivateKey_traditional(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

// Lowercase hex SHA-256 of the first certificate's DER in `pem`.
inline std::string PemLeafSha256(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (x == nullptr) return "";
  const std::string hex = net::internal::Sha256Hex(net::internal::CertDer(x));
  X509_free(x);
  return hex;
}

struct TlsProbe {
  std::string error;  // empty when the handshake (and verification) succeeded
  std::string leaf_sha256;
  bool meta_cert = false;  // the DERP meta certificate came after the leaf
  std::string alpn;
};

// Handshakes with 127.0.0.1:`port` sending `server_name` as SNI, verifying against `ca_file`
// (or nothing at all when it is empty), offering `alpn` protocols when given.
inline TlsProbe ProbeTls(std::uint16_t port, const std::string& server_name,
                         const std::string& ca_file, const std::vector<std::string>& alpn = {}) {
  TlsProbe probe;
  net::TlsClientOptions options;
  options.server_name = server_name;
  options.ca_file = ca_file;
  options.insecure = ca_file.empty();
  auto ctx = net::MakeClientContext(options);
  asio::io_context io;
  asio::ssl::stream<asio::ip::tcp::socket> tls(io, *ctx);
  std::error_code ec;
  tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) {
    probe.error = "connect: " + ec.message();
    return probe;
  }
  net::PrepareClientSsl(tls.native_handle(), options);
  if (!alpn.empty()) {
    std::string wire;
    for (const std::string& p : alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(tls.native_handle(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  bool done = false;
  tls.async_handshake(asio::ssl::stream_base::client, [&](const std::error_code& e) {
    ec = e;
    done = true;
  });
  io.run_for(std::chrono::seconds(10));
  if (!done) {
    probe.error = "handshake timed out";
    return probe;
  }
  SSL* ssl = tls.native_handle();
  if (ec) {
    probe.error = net::DescribeHandshakeFailure(ssl, ec);
    return probe;
  }
  if (X509* leaf = SSL_get0_peer_certificate(ssl)) {
    probe.leaf_sha256 = net::internal::Sha256Hex(net::internal::CertDer(leaf));
  }
  probe.meta_cert = net::FindMetaCert(ssl).has_value();
  const unsigned char* selected = nullptr;
  unsigned int selected_size = 0;
  SSL_get0_alpn_selected(ssl, &selected, &selected_size);
  probe.alpn.assign(reinterpret_cast<const char*>(selected), selected_size);
  return probe;
}

}  // namespace derpkit::testing
