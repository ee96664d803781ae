// Internal to derpkit's TLS code (lib/net's tls.cc and certs.cc, lib/acme's crypto, derp-probe's
// tls check, and their tests): RAII owners for OpenSSL objects and small helpers. Not public API.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace derpkit::net::internal {

template <auto FreeFn>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};

using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;

// Drains OpenSSL's thread-local error queue into one line ("error:...; error:..."), so that a
// start-up failure message says what OpenSSL saw. Returns "no OpenSSL error" when it is empty.
std::string DrainOpenSslErrors();

// Returns the DER encoding of `cert`.
std::vector<unsigned char> CertDer(X509* cert);

// Returns the lowercase hex SHA-256 of `der`.
std::string Sha256Hex(std::span<const unsigned char> der);

// Returns the subject's common name (the last CN attribute, as Go's pkix.Name does), or "" when
// there is none or it is not valid text.
std::string SubjectCommonName(X509* cert);

// Returns a one-line text form of an ASN1_TIME ("Dec 21 23:00:48 2026 GMT").
std::string TimeText(const ASN1_TIME* t);

// True when `host` is an IPv4 or IPv6 literal (no brackets, no zone).
bool IsIpLiteral(std::string_view host);

// True when `cert` is valid for `host`: an IP SAN for an IP literal, else a DNS SAN (wildcards
// only as a whole left-most label). Like Go's VerifyHostname, the subject CN is never consulted.
bool CertCoversHost(X509* cert, const std::string& host);

}  // namespace derpkit::net::internal
