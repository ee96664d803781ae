// The cryptography of an ACME client (RFC 8555): the account key (ECDSA P-256) and its JWK and
// thumbprint (RFC 7517, RFC 7638), ES256 JWS requests (§6.2), key authorizations (§8.1), the CSR
// of a finalize request (§7.4), and the self-signed certificate a TLS-ALPN-01 responder presents
// (RFC 8737 §3).
//
// OpenSSL; no I/O, no clock except certificate dates. Errors are messages saying which step
// failed and what OpenSSL said. Thread-safe: AccountKey is immutable after creation.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace derpkit::acme {

// Returns the unpadded base64url encoding (RFC 4648 §5) JWS uses.
std::string Base64Url(std::span<const unsigned char> bytes);
std::string Base64Url(std::string_view text);

class AccountKey {
 public:
  // Returns a fresh ECDSA P-256 key.
  static Expected<AccountKey, std::string> Generate();
  // Parses a PEM ECDSA P-256 private key (SEC1 "EC PRIVATE KEY" or PKCS#8); any other key type
  // is refused, since ES256 is what every ACME server accepts.
  static Expected<AccountKey, std::string> FromPem(std::string_view pem);

  // Returns the key as SEC1 PEM ("EC PRIVATE KEY"), as Go's autocert stores it.
  std::string ToPem() const;
  // Returns the public JWK with members in RFC 7638's order: {"crv","kty","x","y"}.
  const std::string& jwk_json() const { return jwk_json_; }
  // Returns base64url(SHA-256(jwk_json())).
  const std::string& thumbprint() const { return thumbprint_; }
  // Returns the flattened JSON JWS of a POST to `url` (§6.2): ES256, the nonce, the URL, and
  // "kid" (the account URL) or, when `kid` is empty, "jwk". An empty `payload` makes a
  // POST-as-GET (§6.3). Fails only on an OpenSSL error.
  Expected<std::string, std::string> SignRequest(std::string_view kid, std::string_view nonce,
                                                 std::string_view url,
                                                 std::string_view payload) const;

 private:
  explicit AccountKey(std::shared_ptr<EVP_PKEY> key);
  static Expected<AccountKey, std::string> FromKey(std::shared_ptr<EVP_PKEY> key);
  std::shared_ptr<EVP_PKEY> key_;
  std::string jwk_json_;
  std::string thumbprint_;
};

// Returns token + "." + thumbprint (§8.1).
std::string KeyAuthorization(std::string_view token, const AccountKey& key);

// A new certificate key and the CSR that asks for it.
struct CsrAndKey {
  std::string csr_der_base64url;
  std::string key_pem;  // SEC1 "EC PRIVATE KEY"
};

// Generates an ECDSA P-256 key and a CSR for `identifier` (CN and one SAN: an IP address for an IP
// literal, else a DNS name), signed with SHA-256.
Expected<CsrAndKey, std::string> MakeCsr(const std::string& identifier);

struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

// Returns the TLS-ALPN-01 validation certificate for `identifier` (RFC 8737 §3): self-signed,
// fresh P-256 key, one SAN for the identifier, and the critical id-pe-acmeIdentifier extension
// (1.3.6.1.5.5.7.1.31) holding the SHA-256 of `key_authorization` as an OCTET STRING.
Expected<PemPair, std::string> MakeTlsAlpnCert(const std::string& identifier,
                                               std::string_view key_authorization);

}  // namespace derpkit::acme
