#include "lib/net/certs.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "lib/net/openssl_util.h"
#include "tests/unit/net/net_test_util.h"

namespace derpkit::net {
namespace {

using internal::BioPtr;
using internal::EvpPkeyPtr;
using internal::X509Ptr;
using nettest::ReadFile;
using nettest::ScratchDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

X509Ptr ParsePem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

EvpPkeyPtr ParseKeyPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return EvpPkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// Returns the subjectAltName entries as "DNS:name" / "IP:addr" in certificate order.
std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_STRING* s = name->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
      inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text));
      out.push_back(std::string("IP:") + text);
    } else {
      out.push_back("other");
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

bool ExtensionIsCritical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

// Seconds from now to `t` (negative: in the past).
long SecondsFromNow(const ASN1_TIME* t) {
  int days = 0;
  int seconds = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, t), 1);
  return static_cast<long>(days) * 86400 + seconds;
}

mode_t FileMode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(ManualCertPathsTest, StripsTheCharactersDerperStrips) {
  CertFiles files = ManualCertPaths("/etc/derp", "derp.example.com");
  EXPECT_EQ(files.cert_file, "/etc/derp/derp.example.com.crt");
  EXPECT_EQ(files.key_file, "/etc/derp/derp.example.com.key");

  files = ManualCertPaths("certs", "::1");  // derper: keyname "1"
  EXPECT_EQ(files.cert_file, "certs/1.crt");
  EXPECT_EQ(files.key_file, "certs/1.key");

  files = ManualCertPaths("d", "a_b/../c d");
  EXPECT_EQ(files.cert_file, "d/ab..cd.crt");
}

TEST(ManualCertPathsTest, RejectsHostnameThatLeavesNoFileName) {
  EXPECT_THROW(ManualCertPaths("d", "::"), std::runtime_error);
  EXPECT_THROW(ManualCertPaths("d", ""), std::runtime_error);
}

TEST(GenerateSelfSignedTest, LocalhostCertHasDnsAndBothLoopbackIpSans) {
  const SelfSignedCert generated = GenerateSelfSigned("localhost");
  X509Ptr cert = ParsePem(generated.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_THAT(SubjectAltNames(cert.get()), ElementsAre("DNS:localhost", "IP:127.0.0.1", "IP:::1"));
  EXPECT_EQ(internal::SubjectCommonName(cert.get()), "localhost");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
}

TEST(GenerateSelfSignedTest, CertIsShapedLikeDerpersSelfSignedIpCert) {
  const SelfSignedCert generated = GenerateSelfSigned("localhost");
  X509Ptr cert = ParsePem(generated.cert_pem);
  ASSERT_TRUE(cert);
  X509* x = cert.get();
  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);

  // ECDSA P-256 key, ECDSA-SHA256 signature that verifies with the cert's own key.
  EVP_PKEY* pub = X509_get0_pubkey(x);
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  char group[64] = {};
  std::size_t group_size = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_size), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(x, pub), 1);

  // Serial: positive, at most 128 bits.
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr);
  ASSERT_NE(serial, nullptr);
  EXPECT_FALSE(BN_is_negative(serial));
  EXPECT_FALSE(BN_is_zero(serial));
  EXPECT_LE(BN_num_bits(serial), 128);
  BN_free(serial);

  // Extensions: basicConstraints critical CA:FALSE, keyUsage critical digitalSignature only,
  // extKeyUsage serverAuth, SAN; nothing else (no SKI/AKI).
  EXPECT_EQ(X509_get_ext_count(x), 4);
  EXPECT_TRUE(ExtensionIsCritical(x, NID_basic_constraints));
  EXPECT_EQ(X509_get_extension_flags(x) & EXFLAG_CA, 0u);
  EXPECT_TRUE(ExtensionIsCritical(x, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_FALSE(ExtensionIsCritical(x, NID_ext_key_usage));
  EXPECT_EQ(X509_get_extended_key_usage(x), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get0_subject_key_id(x), nullptr);
  EXPECT_EQ(X509_get0_authority_key_id(x), nullptr);

  // Validity: an hour back, a year ahead (a few seconds of slack for a slow test machine).
  EXPECT_NEAR(SecondsFromNow(X509_get0_notBefore(x)), -3600, 60);
  EXPECT_NEAR(SecondsFromNow(X509_get0_notAfter(x)), 365L * 86400, 60);

  // Key: SEC1 PEM like derper's, matching the certificate.
  EXPECT_EQ(generated.key_pem.rfind("-----BEGIN EC PRIVATE KEY-----", 0), 0u);
  EvpPkeyPtr key = ParseKeyPem(generated.key_pem);
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(x, key.get()), 1);

  EXPECT_EQ(generated.sha256_der_hex, internal::Sha256Hex(internal::CertDer(x)));
  EXPECT_EQ(generated.sha256_der_hex.size(), 64u);
}

TEST(GenerateSelfSignedTest, Ipv4LiteralGetsOnlyAnIpSan) {
  X509Ptr cert = ParsePem(GenerateSelfSigned("127.0.0.1").cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_THAT(SubjectAltNames(cert.get()), ElementsAre("IP:127.0.0.1"));
  EXPECT_EQ(internal::SubjectCommonName(cert.get()), "127.0.0.1");
}

TEST(GenerateSelfSignedTest, Ipv6LiteralGetsOnlyAnIpSan) {
  X509Ptr cert = ParsePem(GenerateSelfSigned("2001:db8::10").cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_THAT(SubjectAltNames(cert.get()), ElementsAre("IP:2001:db8::10"));
}

TEST(GenerateSelfSignedTest, DnsNameGetsOnlyADnsSan) {
  X509Ptr cert = ParsePem(GenerateSelfSigned("derp.example.com").cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_THAT(SubjectAltNames(cert.get()), ElementsAre("DNS:derp.example.com"));
}

TEST(GenerateSelfSignedTest, EveryCallMakesANewKeyAndSerial) {
  const SelfSignedCert a = GenerateSelfSigned("localhost");
  const SelfSignedCert b = GenerateSelfSigned("localhost");
  EXPECT_NE(a.key_pem, b.key_pem);
  EXPECT_NE(a.sha256_der_hex, b.sha256_der_hex);
  X509Ptr ca = ParsePem(a.cert_pem);
  X509Ptr cb = ParsePem(b.cert_pem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca.get()), X509_get0_serialNumber(cb.get())),
            0);
}

TEST(GenerateSelfSignedTest, RejectsEmptyAndMalformedHostnames) {
  EXPECT_THROW(GenerateSelfSigned(""), std::runtime_error);
  try {
    GenerateSelfSigned("bad host,DNS:evil");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("neither an IP address nor a DNS name"));
  }
  EXPECT_THROW(GenerateSelfSigned(std::string(254, 'a')), std::runtime_error);
}

TEST(EnsureSelfSignedCertTest, CreatesKeyWithMode0600AndCertWithMode0644) {
  ScratchDir scratch;
  const std::string certdir = scratch / "new/certs";
  const EnsuredCert ensured = EnsureSelfSignedCert(certdir, "localhost");
  EXPECT_TRUE(ensured.created);
  EXPECT_EQ(ensured.files.cert_file, certdir + "/localhost.crt");
  EXPECT_EQ(ensured.files.key_file, certdir + "/localhost.key");
  EXPECT_EQ(FileMode(ensured.files.key_file), 0600u);
  EXPECT_EQ(FileMode(ensured.files.cert_file), 0644u);
  EXPECT_EQ(FileMode(certdir), 0700u);
  EXPECT_FALSE(std::filesystem::exists(ensured.files.key_file + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(ensured.files.cert_file + ".tmp"));

  X509Ptr cert = ParsePem(ReadFile(ensured.files.cert_file));
  ASSERT_TRUE(cert);
  EXPECT_EQ(ensured.sha256_der_hex, internal::Sha256Hex(internal::CertDer(cert.get())));
  EXPECT_EQ(ensured.sha256_der_hex, CertSha256Hex(ensured.files.cert_file));
}

TEST(EnsureSelfSignedCertTest, SecondCallLoadsTheSamePair) {
  ScratchDir scratch;
  const EnsuredCert first = EnsureSelfSignedCert(scratch.path().string(), "127.0.0.1");
  const std::string cert_pem = ReadFile(first.files.cert_file);
  const std::string key_pem = ReadFile(first.files.key_file);

  const EnsuredCert second = EnsureSelfSignedCert(scratch.path().string(), "127.0.0.1");
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.sha256_der_hex, first.sha256_der_hex);
  EXPECT_EQ(second.files.cert_file, first.files.cert_file);
  EXPECT_EQ(ReadFile(second.files.cert_file), cert_pem);
  EXPECT_EQ(ReadFile(second.files.key_file), key_pem);
}

TEST(EnsureSelfSignedCertTest, RefusesToOverwriteALoneCertOrKey) {
  ScratchDir scratch;
  const CertFiles files = ManualCertPaths(scratch.path().string(), "localhost");
  nettest::WriteFile(files.cert_file, "operator's file");
  try {
    EnsureSelfSignedCert(scratch.path().string(), "localhost");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("but not " + files.key_file));
  }
  EXPECT_EQ(ReadFile(files.cert_file), "operator's file");

  std::filesystem::remove(files.cert_file);
  nettest::WriteFile(files.key_file, "operator's key");
  EXPECT_THROW(EnsureSelfSignedCert(scratch.path().string(), "localhost"), std::runtime_error);
  EXPECT_EQ(ReadFile(files.key_file), "operator's key");
}

TEST(EnsureSelfSignedCertTest, RejectsExistingCertForAnotherHostname) {
  ScratchDir scratch;
  const EnsuredCert made = EnsureSelfSignedCert(scratch.path().string(), "localhost");
  const CertFiles other = ManualCertPaths(scratch.path().string(), "derp.example.com");
  std::filesystem::copy_file(made.files.cert_file, other.cert_file);
  std::filesystem::copy_file(made.files.key_file, other.key_file);
  try {
    EnsureSelfSignedCert(scratch.path().string(), "derp.example.com");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("is not valid for \"derp.example.com\""));
  }
}

TEST(EnsureSelfSignedCertTest, RejectsKeyThatDoesNotMatchTheCert) {
  ScratchDir scratch;
  const EnsuredCert made = EnsureSelfSignedCert(scratch.path().string(), "localhost");
  nettest::WriteFile(made.files.key_file, GenerateSelfSigned("localhost").key_pem);
  try {
    EnsureSelfSignedCert(scratch.path().string(), "localhost");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("does not match certificate"));
  }
}

TEST(CertSha256HexTest, ThrowsForMissingFileAndForFileWithoutCertificate) {
  ScratchDir scratch;
  try {
    CertSha256Hex(scratch / "missing.crt");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.crt"));
  }
  nettest::WriteFile(scratch / "junk.crt", "not a certificate\n");
  try {
    CertSha256Hex(scratch / "junk.crt");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no PEM certificate in"));
  }
}

TEST(CertSha256HexTest, HashesTheFirstCertificateOfAChain) {
  ScratchDir scratch;
  const SelfSignedCert leaf = GenerateSelfSigned("localhost");
  const SelfSignedCert other = GenerateSelfSigned("derp.example.com");
  nettest::WriteFile(scratch / "chain.crt", leaf.cert_pem + other.cert_pem);
  EXPECT_EQ(CertSha256Hex(scratch / "chain.crt"), leaf.sha256_der_hex);
}

}  // namespace
}  // namespace derpkit::net
