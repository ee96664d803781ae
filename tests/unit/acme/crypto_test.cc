// lib/acme/crypto, checked with OpenSSL from the outside: base64url against RFC 4648's vectors,
// the JWK's coordinates against the key, an ES256 JWS that verifies with the key the JWK names,
// a CSR that asks for exactly the identifier, and a TLS-ALPN-01 certificate carrying the critical
// acmeIdentifier extension with SHA-256(key authorization) (RFC 8737 §3).
#include "lib/acme/crypto.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <nlohmann/json.hpp>
#include <vector>

namespace derpkit::acme {
namespace {

std::vector<unsigned char> Base64UrlDecode(std::string_view in) {
  std::string padded(in);
  for (char& c : padded) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (padded.size() % 4 != 0) padded += '=';
  std::vector<unsigned char> out(padded.size());
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(padded.data()),
                                static_cast<int>(padded.size()));
  EXPECT_GE(n, 0);
  // EVP_DecodeBlock counts the zero bytes that stand for padding too.
  out.resize(static_cast<std::size_t>(n) - (padded.size() - in.size()));
  return out;
}

std::string AsText(const std::vector<unsigned char>& v) { return {v.begin(), v.end()}; }

TEST(Base64Url, MatchesRfc4648WithoutPadding) {
  EXPECT_EQ(Base64Url(std::string_view("")), "");
  EXPECT_EQ(Base64Url(std::string_view("f")), "Zg");
  EXPECT_EQ(Base64Url(std::string_view("fo")), "Zm8");
  EXPECT_EQ(Base64Url(std::string_view("foo")), "Zm9v");
  EXPECT_EQ(Base64Url(std::string_view("foob")), "Zm9vYg");
  const unsigned char url_chars[] = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(Base64Url(std::span(url_chars)), "-_-_");
}

TEST(AccountKey, RoundTripsThroughPemAndKeepsItsThumbprint) {
  auto key = AccountKey::Generate();
  ASSERT_TRUE(key) << key.error();
  const std::string pem = key->ToPem();
  EXPECT_NE(pem.find("-----BEGIN EC PRIVATE KEY-----"), std::string::npos);
  auto again = AccountKey::FromPem(pem);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->jwk_json(), key->jwk_json());
  EXPECT_EQ(again->thumbprint(), key->thumbprint());
  // RFC 7638: SHA-256 over exactly the canonical JWK text.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key->jwk_json().data()), key->jwk_json().size(),
         digest);
  EXPECT_EQ(key->thumbprint(), Base64Url(std::span(digest)));
  EXPECT_EQ(KeyAuthorization("tok", *key), "tok." + key->thumbprint());
}

TEST(AccountKey, RefusesKeysOtherThanP256) {
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  ASSERT_NE(rsa, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  auto key = AccountKey::FromPem(std::string_view(data, static_cast<std::size_t>(size)));
  BIO_free(bio);
  EVP_PKEY_free(rsa);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error(), "ACME account key: not an ECDSA P-256 key");
  EXPECT_FALSE(AccountKey::FromPem("not a key"));
}

// Verifies a flattened JWS with the public key its "jwk" member names.
void ExpectVerifies(const std::string& jws_text, const AccountKey& key, bool expect_jwk) {
  const auto jws = nlohmann::json::parse(jws_text);
  const std::string protected_b64 = jws.at("protected");
  const std::string payload_b64 = jws.at("payload");
  const auto header = nlohmann::json::parse(AsText(Base64UrlDecode(protected_b64)));
  EXPECT_EQ(header.at("alg"), "ES256");
  EXPECT_EQ(header.contains("jwk"), expect_jwk);
  EXPECT_EQ(header.contains("kid"), !expect_jwk);
  const auto jwk = nlohmann::json::parse(key.jwk_json());
  const auto x = Base64UrlDecode(jwk.at("x").get<std::string>());
  const auto y = Base64UrlDecode(jwk.at("y").get<std::string>());
  ASSERT_EQ(x.size(), 32u);
  ASSERT_EQ(y.size(), 32u);
  std::vector<unsigned char> point = {0x04};
  point.insert(point.end(), x.begin(), x.end());
  point.insert(point.end(), y.begin(), y.end());
  EVP_PKEY* pub = nullptr;
  {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    ASSERT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("group", const_cast<char*>("prime256v1"), 0),
        OSSL_PARAM_construct_octet_string("pub", point.data(), point.size()), OSSL_PARAM_END};
    ASSERT_EQ(EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
  }
  const auto raw_sig = Base64UrlDecode(jws.at("signature").get<std::string>());
  ASSERT_EQ(raw_sig.size(), 64u);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(raw_sig.data(), 32, nullptr),
                 BN_bin2bn(raw_sig.data() + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int der_size = i2d_ECDSA_SIG(sig, &der);
  const std::string input = protected_b64 + "." + payload_b64;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, pub), 1);
  EXPECT_EQ(EVP_DigestVerify(md, der, static_cast<size_t>(der_size),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  EVP_PKEY_free(pub);
}

TEST(SignRequest, MakesAnEs256JwsThatVerifiesWithTheJwk) {
  auto key = AccountKey::Generate();
  ASSERT_TRUE(key) << key.error();
  auto with_jwk = key->SignRequest("", "nonce-1", "https://ca/new-acct", R"({"a":1})");
  ASSERT_TRUE(with_jwk) << with_jwk.error();
  ExpectVerifies(*with_jwk, *key, true);
  const auto parsed = nlohmann::json::parse(*with_jwk);
  const auto header =
      nlohmann::json::parse(AsText(Base64UrlDecode(parsed.at("protected").get<std::string>())));
  EXPECT_EQ(header.at("nonce"), "nonce-1");
  EXPECT_EQ(header.at("url"), "https://ca/new-acct");
  EXPECT_EQ(header.at("jwk"), nlohmann::json::parse(key->jwk_json()));
  EXPECT_EQ(AsText(Base64UrlDecode(parsed.at("payload").get<std::string>())), R"({"a":1})");

  // POST-as-GET: the kid, and an empty payload (RFC 8555 §6.3).
  auto as_get = key->SignRequest("https://ca/acct/7", "nonce-2", "https://ca/order/1", "");
  ASSERT_TRUE(as_get) << as_get.error();
  ExpectVerifies(*as_get, *key, false);
  EXPECT_EQ(nlohmann::json::parse(*as_get).at("payload"), "");
}

X509_EXTENSION* FindExtension(X509* cert, const char* oid) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  const int at = X509_get_ext_by_OBJ(cert, obj, -1);
  ASN1_OBJECT_free(obj);
  return at < 0 ? nullptr : X509_get_ext(cert, at);
}

TEST(MakeCsr, AsksForTheIdentifierWithAFreshKey) {
  auto csr = MakeCsr("relay.derpkit.test");
  ASSERT_TRUE(csr) << csr.error();
  const auto der = Base64UrlDecode(csr->csr_der_base64url);
  const unsigned char* p = der.data();
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(req, nullptr);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
  EXPECT_EQ(X509_REQ_verify(req, pub), 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  ASSERT_NE(exts, nullptr);
  ASSERT_EQ(sk_X509_EXTENSION_num(exts), 1);
  auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, 0)));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 1);
  const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, 0);
  ASSERT_EQ(name->type, GEN_DNS);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                             static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName))),
            "relay.derpkit.test");
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  // The key the CSR names is the key we keep.
  BIO* bio = BIO_new_mem_buf(csr->key_pem.data(), static_cast<int>(csr->key_pem.size()));
  EVP_PKEY* priv = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  ASSERT_NE(priv, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(priv, pub), 1);
  EVP_PKEY_free(priv);
  BIO_free(bio);
  X509_REQ_free(req);
}

TEST(MakeCsr, UsesAnIpSanForAnIpIdentifier) {
  auto csr = MakeCsr("192.0.2.7");
  ASSERT_TRUE(csr) << csr.error();
  const auto der = Base64UrlDecode(csr->csr_der_base64url);
  const unsigned char* p = der.data();
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  ASSERT_NE(req, nullptr);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(sk_X509_EXTENSION_value(exts, 0)));
  ASSERT_NE(names, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_value(names, 0)->type, GEN_IPADD);
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
}

TEST(MakeTlsAlpnCert, CarriesTheCriticalAcmeIdentifierExtension) {
  const std::string key_authorization = "token-123.thumbprint-456";
  auto pair = MakeTlsAlpnCert("relay.derpkit.test", key_authorization);
  ASSERT_TRUE(pair) << pair.error();
  BIO* bio = BIO_new_mem_buf(pair->cert_pem.data(), static_cast<int>(pair->cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_host(cert, "relay.derpkit.test", 0, 0, nullptr), 1);
  X509_EXTENSION* ext = FindExtension(cert, "1.3.6.1.5.5.7.1.31");
  ASSERT_NE(ext, nullptr);
  EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(ext);
  std::vector<unsigned char> want = {0x04, 0x20};
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key_authorization.data()), key_authorization.size(),
         digest);
  want.insert(want.end(), digest, digest + sizeof digest);
  EXPECT_EQ(std::vector<unsigned char>(ASN1_STRING_get0_data(value),
                                       ASN1_STRING_get0_data(value) + ASN1_STRING_length(value)),
            want);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1);  // self-signed
  X509_free(cert);
}

}  // namespace
}  // namespace derpkit::acme
