// Reading, checking and serving the relay's certificate (see tls_cert.h). Certificate thread and
// start-up; the context callbacks at the bottom run inside handshakes on the shards.
#include "relay/tls_cert.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "lib/acme/client_hello.h"
#include "lib/net/direct_tls_stream.h"
#include "lib/net/tls.h"

namespace derpkit::relay {
namespace {

using net::internal::BioPtr;
using net::internal::EvpPkeyPtr;
using net::internal::X509Ptr;

constexpr std::string_view kHttp11 = "http/1.1";
constexpr std::string_view kAcmeTls1 = "acme-tls/1";
// More than any real certificate file; bounds what a mistaken --certdir entry makes us read.
constexpr std::size_t kMaxPemFileBytes = 1 << 20;

Unexpected<CertError> CertFail(CertProblem problem, std::string message) {
  return Unexpected<CertError>(CertError{problem, std::move(message)});
}

std::string OpenSslReason() {
  std::string errors = net::internal::DrainOpenSslErrors();
  return errors;
}

std::optional<std::string> ReadSmallFile(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  text.resize(kMaxPemFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxPemFileBytes) {
    error = "cannot use " + path + ": larger than 1 MiB, not a PEM certificate or key";
    return std::nullopt;
  }
  return text;
}

std::int64_t UnixTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string SerialHex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (bn == nullptr) return "?";
  char* hex = BN_bn2hex(bn);
  std::string out = hex != nullptr ? hex : "?";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// Per-SSL mark: this handshake is a TLS-ALPN-01 validation (set by the ClientHello callback, read
// by the ALPN callback).
int AcmeMarkIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The context owns a reference to its challenge source through ex_data, so that the raw pointer
// the callbacks get stays valid for as long as any handshake can use the context.
void FreeChallengeRef(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<const ChallengeCertSource>*>(ptr);
}

int ChallengeRefIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeChallengeRef);
  return index;
}

// Serving nothing but challenges until the first certificate arrives.
struct CallbackState {
  const ChallengeCertSource* challenges = nullptr;
  bool has_cert = false;
};

void FreeCallbackState(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<CallbackState*>(ptr);
}

int CallbackStateIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeCallbackState);
  return index;
}

// Runs first in every handshake of a letsencrypt-mode context. A ClientHello offering
// "acme-tls/1" is a CA validating a TLS-ALPN-01 challenge: it gets the challenge certificate for
// its SNI (RFC 8737 §3), nothing else, or the handshake ends.
int OnClientHello(SSL* ssl, int* alert, void* arg) {
  const auto* state = static_cast<const CallbackState*>(arg);
  const unsigned char* alpn = nullptr;
  std::size_t alpn_size = 0;
  bool wants_acme = false;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn,
                                &alpn_size) == 1) {
    auto protocols = acme::ParseAlpnExtension(std::span(alpn, alpn_size));
    if (!protocols) {
      *alert = SSL_AD_DECODE_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    for (std::string_view p : *protocols) wants_acme = wants_acme || p == kAcmeTls1;
  }
  if (!wants_acme) {
    if (state->has_cert) return SSL_CLIENT_HELLO_SUCCESS;
    *alert = SSL_AD_UNRECOGNIZED_NAME;  // no certificate yet
    return SSL_CLIENT_HELLO_ERROR;
  }
  const unsigned char* sni = nullptr;
  std::size_t sni_size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &sni, &sni_size) != 1) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  auto name = acme::ParseServerNameExtension(std::span(sni, sni_size));
  std::shared_ptr<const ServedCert> cert;
  if (name && state->challenges != nullptr) cert = state->challenges->ChallengeCertFor(*name);
  if (!cert || cert->chain.empty()) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // Replaces whatever the context serves (the relay's certificate and the meta certificate).
  SSL_certs_clear(ssl);
  if (SSL_use_cert_and_key(ssl, cert->chain.front().get(), cert->key.get(), nullptr, 1) != 1 ||
      SSL_set_ex_data(ssl, AcmeMarkIndex(), reinterpret_cast<void*>(1)) != 1) {
    ERR_clear_error();
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  state->challenges->NoteTlsAlpnAnswered();
  return SSL_CLIENT_HELLO_SUCCESS;
}

// Picks "acme-tls/1" for a validation handshake, else "http/1.1" when offered. Anything else
// (h2 alone) gets no ALPN rather than an alert: DERP clients send none, and a browser offering
// only h2 still speaks 1.1.
int SelectAlpn(SSL* ssl, const unsigned char** out, unsigned char* out_size,
               const unsigned char* in, unsigned int in_size, void*) {
  const std::string_view want =
      SSL_get_ex_data(ssl, AcmeMarkIndex()) != nullptr ? kAcmeTls1 : kHttp11;
  if (net::FindAlpnProtocol(in, in_size, want, out, out_size)) return SSL_TLSEXT_ERR_OK;
  // RFC 8737 §3: a validation handshake that did not get acme-tls/1 must fail.
  return want == kAcmeTls1 ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string_view CertProblemLabel(CertProblem problem) {
  switch (problem) {
    case CertProblem::kUnreadable:
      return "unreadable";
    case CertProblem::kUnparsable:
      return "unparsable";
    case CertProblem::kKeyMismatch:
      return "key_mismatch";
    case CertProblem::kExpired:
      return "expired";
    case CertProblem::kWrongName:
      return "wrong_name";
  }
  return "unknown";
}

Expected<std::shared_ptr<const ServedCert>, CertError> ParseCertPair(std::string_view chain_pem,
                                                                     std::string_view key_pem,
                                                                     const std::string& hostname,
                                                                     std::string_view cert_label,
                                                                     std::string_view key_label) {
  ERR_clear_error();
  auto cert = std::make_shared<ServedCert>();
  BioPtr chain_bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  while (chain_bio) {
    X509Ptr x(PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr));
    if (!x) break;
    cert->chain.push_back(std::move(x));
  }
  // The loop ends on "no start line" at the end of the text; anything else is a broken block.
  const unsigned long last = ERR_peek_last_error();
  if (cert->chain.empty()) {
    ERR_clear_error();
    return CertFail(
        CertProblem::kUnparsable,
        std::string(cert_label) + ": no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
  }
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return CertFail(CertProblem::kUnparsable,
                    std::string(cert_label) + ": certificate " +
                        std::to_string(cert->chain.size() + 1) +
                        " of the chain does not parse: " + OpenSslReason());
  }
  ERR_clear_error();

  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (key_bio) cert->key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!cert->key) {
    return CertFail(CertProblem::kUnparsable,
                    std::string(key_label) + ": no usable PEM private key: " + OpenSslReason());
  }
  X509* leaf = cert->chain.front().get();
  if (X509_check_private_key(leaf, cert->key.get()) != 1) {
    ERR_clear_error();
    return CertFail(
        CertProblem::kKeyMismatch,
        "key " + std::string(key_label) + " does not match certificate " + std::string(cert_label));
  }
  cert->sha256_der_hex = net::internal::Sha256Hex(net::internal::CertDer(leaf));
  cert->serial_hex = SerialHex(leaf);
  cert->not_before_unix = UnixTime(X509_get0_notBefore(leaf));
  cert->not_after_unix = UnixTime(X509_get0_notAfter(leaf));
  cert->covers_hostname = !hostname.empty() && net::internal::CertCoversHost(leaf, hostname);
  ERR_clear_error();
  return std::shared_ptr<const ServedCert>(std::move(cert));
}

Expected<std::shared_ptr<const ServedCert>, CertError> ReadCertPair(const net::CertFiles& files,
                                                                    const std::string& hostname) {
  std::string error;
  const auto chain = ReadSmallFile(files.cert_file, error);
  if (!chain) return CertFail(CertProblem::kUnreadable, error);
  const auto key = ReadSmallFile(files.key_file, error);
  if (!key) return CertFail(CertProblem::kUnreadable, error);
  return ParseCertPair(*chain, *key, hostname, files.cert_file, files.key_file);
}

std::optional<CertError> RefuseAsReplacement(const ServedCert& next, const ServedCert* current,
                                             const std::string& hostname,
                                             std::string_view cert_label, std::int64_t now_unix) {
  if (next.not_after_unix <= now_unix) {
    return CertError{CertProblem::kExpired,
                     std::string(cert_label) + ": certificate (serial " + next.serial_hex +
                         ") expired " + std::to_string((now_unix - next.not_after_unix) / 3600) +
                         " hours ago"};
  }
  if (!next.covers_hostname && current != nullptr && current->covers_hostname) {
    return CertError{CertProblem::kWrongName, std::string(cert_label) + ": certificate (serial " +
                                                  next.serial_hex + ") is not valid for \"" +
                                                  hostname + "\", the one in service is"};
  }
  return std::nullopt;
}

Expected<std::shared_ptr<asio::ssl::context>, std::string> BuildServerContext(
    const std::shared_ptr<const ServedCert>& cert, const ServerContextOptions& options) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* handle = ctx->native_handle();
  ERR_clear_error();
  if (auto failed = net::ApplyServerPolicy(handle)) {
    return Unexpected(*failed + ": " + OpenSslReason());
  }
  if (cert != nullptr && !cert->chain.empty()) {
    if (SSL_CTX_use_certificate(handle, cert->chain.front().get()) != 1 ||
        SSL_CTX_use_PrivateKey(handle, cert->key.get()) != 1) {
      return Unexpected("TLS server: cannot use the certificate and key: " + OpenSslReason());
    }
    for (std::size_t i = 1; i < cert->chain.size(); ++i) {
      if (SSL_CTX_add1_chain_cert(handle, cert->chain[i].get()) != 1) {
        return Unexpected("TLS server: cannot add chain certificate " + std::to_string(i + 1) +
                          ": " + OpenSslReason());
      }
    }
    if (!options.meta_cert_der.empty()) {
      // Last in the chain, where derper puts it (derp-protocol.md §4).
      const unsigned char* p = options.meta_cert_der.data();
      X509* meta = d2i_X509(nullptr, &p, static_cast<long>(options.meta_cert_der.size()));
      if (meta == nullptr || SSL_CTX_add0_chain_cert(handle, meta) != 1) {
        X509_free(meta);
        return Unexpected("TLS server: cannot append the meta certificate: " + OpenSslReason());
      }
    }
  }
  SSL_CTX_set_alpn_select_cb(handle, SelectAlpn, nullptr);
  // TLS 1.3 connections move to our own record layer after the handshake (front.cc); this also
  // turns off TLS 1.3 session tickets (clients lose resumption only).
  net::DirectTlsStream::EnableTls13Handover(handle);
  if (options.challenges) {
    auto* state = new CallbackState{options.challenges.get(), cert != nullptr};
    auto* ref = new std::shared_ptr<const ChallengeCertSource>(options.challenges);
    if (SSL_CTX_set_ex_data(handle, CallbackStateIndex(), state) != 1) {
      delete state;
      delete ref;
      return Unexpected("TLS server: cannot attach the challenge responder: " + OpenSslReason());
    }
    if (SSL_CTX_set_ex_data(handle, ChallengeRefIndex(), ref) != 1) {
      delete ref;
      return Unexpected("TLS server: cannot attach the challenge responder: " + OpenSslReason());
    }
    SSL_CTX_set_client_hello_cb(handle, OnClientHello, state);
  }
  return ctx;
}

}  // namespace derpkit::relay
