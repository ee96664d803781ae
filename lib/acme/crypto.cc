// ACME cryptography with OpenSSL 3 (see crypto.h).
#include "lib/acme/crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "lib/net/openssl_util.h"
#include "lib/util/netaddr.h"

namespace derpkit::acme {
namespace {

using net::internal::BioPtr;
using net::internal::OpenSslDeleter;
using net::internal::X509Ptr;
using ExtensionPtr = net::internal::X509ExtensionPtr;
using BnPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpenSslDeleter<ECDSA_SIG_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslDeleter<X509_REQ_free>>;
using ObjectPtr = std::unique_ptr<ASN1_OBJECT, OpenSslDeleter<ASN1_OBJECT_free>>;
using OctetPtr = std::unique_ptr<ASN1_OCTET_STRING, OpenSslDeleter<ASN1_OCTET_STRING_free>>;

constexpr std::size_t kCoordinateBytes = 32;  // P-256
constexpr const char* kAcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";
constexpr long kChallengeCertBackdateSeconds = 60 * 60;
constexpr long kChallengeCertDays = 7;

std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error" : out;
}

Unexpected<std::string> Fail(const std::string& what) {
  return Unexpected(what + ": " + OpenSslErrors());
}

std::shared_ptr<EVP_PKEY> Share(EVP_PKEY* key) { return {key, EVP_PKEY_free}; }

std::optional<std::string> ToPemText(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return std::nullopt;
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::optional<std::string> KeyPem(EVP_PKEY* key) {
  return ToPemText([&](BIO* bio) {
    return PEM_write_bio_PrivateKey_traditional(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  char group[64] = {};
  std::size_t size = 0;
  return EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &size) == 1 &&
         std::string_view(group, size) == "prime256v1";
}

Expected<std::array<unsigned char, kCoordinateBytes>, std::string> Coordinate(EVP_PKEY* key,
                                                                              const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return Fail("ACME key: cannot read the point");
  BnPtr bn(raw);
  std::array<unsigned char, kCoordinateBytes> out{};
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size())) < 0) {
    return Fail("ACME key: coordinate larger than 32 bytes");
  }
  return out;
}

Expected<EVP_PKEY*, std::string> NewP256() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) return Fail("ACME: cannot generate a P-256 key");
  return key;
}

// A subjectAltName value for X509V3_EXT_conf_nid: "IP:192.0.2.1" or "DNS:example.com".
std::string SanValue(const std::string& identifier) {
  return (netaddr::ParseIp(identifier) ? "IP:" : "DNS:") + identifier;
}

X509_EXTENSION* SanExtension(const std::string& identifier) {
  const std::string value = SanValue(identifier);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, nullptr, nullptr, nullptr, nullptr, 0);
  return X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, value.c_str());
}

}  // namespace

std::string Base64Url(std::span<const unsigned char> bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    const unsigned v = bytes[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    const unsigned v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string Base64Url(std::string_view text) {
  return Base64Url(std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
}

AccountKey::AccountKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}

Expected<AccountKey, std::string> AccountKey::FromKey(std::shared_ptr<EVP_PKEY> key) {
  AccountKey out(std::move(key));
  auto x = Coordinate(out.key_.get(), OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = x ? Coordinate(out.key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y) : x;
  if (!y) return Unexpected(y.error());
  // RFC 7638 §3.2: the required members only, sorted, no whitespace.
  out.jwk_json_ =
      R"({"crv":"P-256","kty":"EC","x":")" + Base64Url(*x) + R"(","y":")" + Base64Url(*y) + R"("})";
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(out.jwk_json_.data()), out.jwk_json_.size(),
         digest.data());
  out.thumbprint_ = Base64Url(digest);
  return out;
}

Expected<AccountKey, std::string> AccountKey::Generate() {
  auto key = NewP256();
  if (!key) return Unexpected(key.error());
  return FromKey(Share(*key));
}

Expected<AccountKey, std::string> AccountKey::FromPem(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw == nullptr) return Fail("ACME account key: no PEM private key");
  std::shared_ptr<EVP_PKEY> key = Share(raw);
  if (!IsP256(key.get())) {
    return Unexpected(std::string("ACME account key: not an ECDSA P-256 key"));
  }
  return FromKey(std::move(key));
}

std::string AccountKey::ToPem() const { return KeyPem(key_.get()).value_or(""); }

Expected<std::string, std::string> AccountKey::SignRequest(std::string_view kid,
                                                           std::string_view nonce,
                                                           std::string_view url,
                                                           std::string_view payload) const {
  nlohmann::json header = {{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
  if (kid.empty()) {
    header["jwk"] = nlohmann::json::parse(jwk_json_);
  } else {
    header["kid"] = kid;
  }
  const std::string protected_b64 = Base64Url(header.dump());
  const std::string payload_b64 = payload.empty() ? std::string() : Base64Url(payload);
  const std::string signing_input = protected_b64 + "." + payload_b64;

  ERR_clear_error();
  MdCtxPtr md(EVP_MD_CTX_new());
  std::size_t der_size = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &der_size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return Fail("ACME: cannot sign a request");
  }
  std::vector<unsigned char> der(der_size);
  if (EVP_DigestSign(md.get(), der.data(), &der_size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return Fail("ACME: cannot sign a request");
  }
  // JWS wants r || s, each 32 bytes (RFC 7518 §3.4), not the DER OpenSSL produces.
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_size)));
  if (!sig) return Fail("ACME: cannot decode an ECDSA signature");
  std::array<unsigned char, 2 * kCoordinateBytes> raw{};
  const BIGNUM* r = ECDSA_SIG_get0_r(sig.get());
  const BIGNUM* s = ECDSA_SIG_get0_s(sig.get());
  if (BN_bn2binpad(r, raw.data(), kCoordinateBytes) < 0 ||
      BN_bn2binpad(s, raw.data() + kCoordinateBytes, kCoordinateBytes) < 0) {
    return Fail("ACME: ECDSA signature too large");
  }
  nlohmann::json jws = {
      {"protected", protected_b64}, {"payload", payload_b64}, {"signature", Base64Url(raw)}};
  return jws.dump();
}

std::string KeyAuthorization(std::string_view token, const AccountKey& key) {
  return std::string(token) + "." + key.thumbprint();
}

Expected<CsrAndKey, std::string> MakeCsr(const std::string& identifier) {
  ERR_clear_error();
  auto generated = NewP256();
  if (!generated) return Unexpected(generated.error());
  std::shared_ptr<EVP_PKEY> key = Share(*generated);
  X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return Fail("ACME CSR: cannot start the request");
  }
  // X.520 bounds a CN to 64 characters; the SAN alone names longer identifiers.
  if (identifier.size() <= 64) {
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(identifier.c_str()), -1,
                                   -1, 0) != 1) {
      return Fail("ACME CSR: cannot set the common name \"" + identifier + "\"");
    }
  }
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san = SanExtension(identifier);
  bool ok = false;
  if (exts != nullptr && san != nullptr && sk_X509_EXTENSION_push(exts, san) > 0) {
    san = nullptr;  // the stack owns it now
    ok = X509_REQ_add_extensions(req.get(), exts) == 1;
  }
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!ok) return Fail("ACME CSR: cannot add the subjectAltName " + SanValue(identifier));
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) return Fail("ACME CSR: cannot sign");
  unsigned char* der = nullptr;
  const int size = i2d_X509_REQ(req.get(), &der);
  if (size <= 0) return Fail("ACME CSR: cannot encode");
  CsrAndKey out;
  out.csr_der_base64url = Base64Url(std::span(der, static_cast<std::size_t>(size)));
  OPENSSL_free(der);
  auto pem = KeyPem(key.get());
  if (!pem) return Fail("ACME CSR: cannot write the key as PEM");
  out.key_pem = std::move(*pem);
  return out;
}

Expected<PemPair, std::string> MakeTlsAlpnCert(const std::string& identifier,
                                               std::string_view key_authorization) {
  ERR_clear_error();
  auto generated = NewP256();
  if (!generated) return Unexpected(generated.error());
  std::shared_ptr<EVP_PKEY> key = Share(*generated);
  X509Ptr cert(X509_new());
  if (!cert) return Fail("TLS-ALPN-01 certificate: out of memory");
  X509* x = cert.get();

  std::array<unsigned char, 16> serial_bytes{};
  if (RAND_bytes(serial_bytes.data(), static_cast<int>(serial_bytes.size())) != 1) {
    return Fail("TLS-ALPN-01 certificate: no random serial");
  }
  serial_bytes[0] &= 0x7f;  // positive
  BnPtr serial(BN_bin2bn(serial_bytes.data(), static_cast<int>(serial_bytes.size()), nullptr));
  time_t now = std::time(nullptr);
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x)) == nullptr ||
      X509_set_version(x, X509_VERSION_3) != 1 ||
      X509_time_adj_ex(X509_getm_notBefore(x), 0, -kChallengeCertBackdateSeconds, &now) ==
          nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), kChallengeCertDays, 0, &now) == nullptr ||
      X509_set_pubkey(x, key.get()) != 1) {
    return Fail("TLS-ALPN-01 certificate: cannot set serial, dates or key");
  }
  X509_NAME* name = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("ACME challenge"), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(x, name) != 1) {
    return Fail("TLS-ALPN-01 certificate: cannot set the names");
  }
  ExtensionPtr san(SanExtension(identifier));
  if (!san || X509_add_ext(x, san.get(), -1) != 1) {
    return Fail("TLS-ALPN-01 certificate: cannot add the subjectAltName " + SanValue(identifier));
  }
  // extnValue is the DER of Authorization ::= OCTET STRING (SIZE (32)): 04 20 <SHA-256>.
  std::array<unsigned char, 2 + SHA256_DIGEST_LENGTH> value{0x04, SHA256_DIGEST_LENGTH};
  SHA256(reinterpret_cast<const unsigned char*>(key_authorization.data()), key_authorization.size(),
         value.data() + 2);
  ObjectPtr oid(OBJ_txt2obj(kAcmeIdentifierOid, 1));
  OctetPtr octets(ASN1_OCTET_STRING_new());
  if (!oid || !octets ||
      ASN1_OCTET_STRING_set(octets.get(), value.data(), static_cast<int>(value.size())) != 1) {
    return Fail("TLS-ALPN-01 certificate: cannot build acmeIdentifier");
  }
  ExtensionPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, octets.get()));
  if (!ext || X509_add_ext(x, ext.get(), -1) != 1) {
    return Fail("TLS-ALPN-01 certificate: cannot add acmeIdentifier");
  }
  if (X509_sign(x, key.get(), EVP_sha256()) <= 0) {
    return Fail("TLS-ALPN-01 certificate: cannot sign");
  }
  PemPair out;
  auto cert_pem = ToPemText([&](BIO* bio) { return PEM_write_bio_X509(bio, x); });
  auto key_pem = KeyPem(key.get());
  if (!cert_pem || !key_pem) return Fail("TLS-ALPN-01 certificate: cannot write PEM");
  out.cert_pem = std::move(*cert_pem);
  out.key_pem = std::move(*key_pem);
  return out;
}

}  // namespace derpkit::acme
