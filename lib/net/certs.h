// Certificate files for the relay's TLS listener: derper's `--certmode manual` file layout and the
// self-signed certificate derper generates when it has none.
//
// Everything here runs at start-up (or in tests) and reports failure by throwing
// std::runtime_error with a message naming the file and what OpenSSL said. Thread-safe: no state.
#pragma once

#include <string>

namespace derpkit::net {

// The pair `--certmode manual` reads: a PEM certificate chain (leaf first) and its PEM key.
struct CertFiles {
  std::string cert_file{};
  std::string key_file{};
};

// Returns derper's manual-mode paths <certdir>/<name>.crt and <certdir>/<name>.key, where <name> is
// `hostname` with every character outside [A-Za-z0-9.-] removed (as derper does, so that "::1"
// maps to "1.crt" and the two programs can share a cert directory).
CertFiles ManualCertPaths(const std::string& certdir, const std::string& hostname);

// A freshly generated self-signed leaf and its key, both PEM.
struct SelfSignedCert {
  std::string cert_pem{};
  std::string key_pem{};  // SEC1 "EC PRIVATE KEY", as derper writes it
  // Lowercase hex SHA-256 of the certificate DER: the DERPNode CertName "sha256-raw:<hex>".
  std::string sha256_der_hex{};
};

// Generates a self-signed TLS server certificate for `hostname`, shaped like the one derper makes
// for an IP hostname (cmd/derper/cert.go createSelfSignedIPCert): ECDSA P-256, random positive
// serial below 2^128, CN = hostname, basicConstraints critical CA:FALSE, keyUsage critical
// digitalSignature, extKeyUsage serverAuth, no SKI/AKI. SAN: the IP address when `hostname` is an
// IP literal, else the DNS name; "localhost" also gets 127.0.0.1 and ::1.
// Validity: derper uses now .. now+1 year ("a bit over that is rejected by macOS"); we start one
// hour in the past so that a peer whose clock is slightly behind accepts a freshly generated cert.
// Throws std::runtime_error on an empty or malformed hostname or an OpenSSL failure.
SelfSignedCert GenerateSelfSigned(const std::string& hostname);

struct EnsuredCert {
  CertFiles files{};
  std::string sha256_der_hex{};  // pin of the leaf as read back from files.cert_file
  bool created = false;          // true when this call generated and wrote the pair
};

// Loads the manual-mode pair for `hostname` from `certdir` when both files exist (checking that
// the key matches the certificate and that the certificate is valid for `hostname`), or generates
// a self-signed pair with GenerateSelfSigned and writes it when neither exists: directories are
// created (the cert dir itself with mode 0700), the key file gets mode 0600, the cert 0644; each
// file is written to a temporary name and renamed, key first. Throws std::runtime_error when only
// one of the two files exists (we never overwrite an operator's file), or on any I/O or OpenSSL
// failure.
EnsuredCert EnsureSelfSignedCert(const std::string& certdir, const std::string& hostname);

// Returns the lowercase hex SHA-256 of the DER of the first certificate in a PEM file (the leaf).
// Throws std::runtime_error when the file can't be read or holds no certificate.
std::string CertSha256Hex(const std::string& cert_pem_file);

}  // namespace derpkit::net
