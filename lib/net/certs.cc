#include "lib/net/certs.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "lib/net/atomic_file.h"
#include "lib/net/openssl_util.h"

namespace derpkit::net {
namespace {

using internal::BioPtr;
using internal::EvpPkeyPtr;
using internal::GeneralNamesPtr;
using internal::X509ExtensionPtr;
using internal::X509Ptr;

constexpr long kBackdateSeconds = 60 * 60;
constexpr int kValidityDays = 365;

[[noreturn]] void FailOpenSsl(const std::string& what) {
  throw std::runtime_error(what + ": " + internal::DrainOpenSslErrors());
}

bool IsHostnameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// Checks what we are about to put in a certificate. Anything that is neither an IP literal nor made
// of hostname characters is an operator mistake best reported now rather than as a TLS failure.
void ValidateHostname(const std::string& hostname) {
  if (hostname.empty()) throw std::runtime_error("TLS certificate: hostname is empty");
  if (internal::IsIpLiteral(hostname)) return;
  if (hostname.size() > 253) {
    throw std::runtime_error("TLS certificate: hostname is longer than 253 characters");
  }
  for (char c : hostname) {
    if (!IsHostnameChar(c)) {
      throw std::runtime_error("TLS certificate: hostname \"" + hostname +
                               "\" is neither an IP address nor a DNS name");
    }
  }
}

// Go writes a name attribute as PrintableString when every character allows it, else UTF8String;
// we do the same so our certificates look like derper's.
bool IsPrintableString(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

void AddConfExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    FailOpenSsl(std::string("TLS certificate: cannot add extension ") + value);
  }
}

void AddSubjectAltNames(X509* cert, const std::string& hostname) {
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) FailOpenSsl("TLS certificate: out of memory");
  auto push = [&](int type, ASN1_STRING* value) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (name == nullptr || value == nullptr) {
      GENERAL_NAME_free(name);
      ASN1_STRING_free(value);
      FailOpenSsl("TLS certificate: cannot build subjectAltName for \"" + hostname + "\"");
    }
    GENERAL_NAME_set0_value(name, type, value);
    sk_GENERAL_NAME_push(names.get(), name);
  };
  auto push_ip = [&](const char* ip) { push(GEN_IPADD, a2i_IPADDRESS(ip)); };

  if (internal::IsIpLiteral(hostname)) {
    push_ip(hostname.c_str());
  } else {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    if (dns != nullptr &&
        ASN1_STRING_set(dns, hostname.data(), static_cast<int>(hostname.size())) != 1) {
      ASN1_IA5STRING_free(dns);
      dns = nullptr;
    }
    push(GEN_DNS, dns);
    // Tests and local runs dial "localhost" by address as often as by name.
    if (hostname == "localhost") {
      push_ip("127.0.0.1");
      push_ip("::1");
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    FailOpenSsl("TLS certificate: cannot add subjectAltName");
  }
}

void SetRandomSerial(X509* cert) {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof(random)) != 1) FailOpenSsl("TLS certificate: RAND_bytes");
  random[15] |= 1;  // never zero: RFC 5280 wants a positive serial
  BIGNUM* bn = BN_bin2bn(random, sizeof(random), nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  if (!ok) FailOpenSsl("TLS certificate: cannot set serial number");
}

std::string PemOf(const std::string& what, auto&& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) FailOpenSsl("TLS certificate: cannot PEM-encode the " + what);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

X509Ptr ReadCertPem(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) FailOpenSsl("TLS certificate: cannot open " + path);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) FailOpenSsl("TLS certificate: no PEM certificate in " + path);
  return cert;
}

EvpPkeyPtr ReadKeyPem(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) FailOpenSsl("TLS key: cannot open " + path);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) FailOpenSsl("TLS key: no PEM private key in " + path);
  return key;
}

// Writes through lib/net/atomic_file so that a crash never leaves a truncated key or certificate.
void WriteFileOrThrow(const std::string& path, const std::string& contents, mode_t mode) {
  if (auto err = WriteFileAtomically(path, contents, mode)) throw std::runtime_error(*err);
}

}  // namespace

CertFiles ManualCertPaths(const std::string& certdir, const std::string& hostname) {
  std::string name;
  for (char c : hostname) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.') {
      name += c;
    }
  }
  if (name.empty()) {
    throw std::runtime_error("TLS certificate: hostname \"" + hostname +
                             "\" leaves no usable file name");
  }
  const std::filesystem::path dir(certdir);
  return CertFiles{(dir / (name + ".crt")).string(), (dir / (name + ".key")).string()};
}

SelfSignedCert GenerateSelfSigned(const std::string& hostname) {
  ValidateHostname(hostname);

  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) FailOpenSsl("TLS certificate: cannot generate a P-256 key");

  X509Ptr cert(X509_new());
  if (!cert) FailOpenSsl("TLS certificate: out of memory");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) FailOpenSsl("TLS certificate: set version");
  SetRandomSerial(x);

  X509_NAME* name = X509_get_subject_name(x);
  const int type = IsPrintableString(hostname) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, type,
                                 reinterpret_cast<const unsigned char*>(hostname.data()),
                                 static_cast<int>(hostname.size()), -1, 0) != 1 ||
      X509_set_issuer_name(x, name) != 1) {
    FailOpenSsl("TLS certificate: cannot set the subject name");
  }

  time_t now = std::time(nullptr);
  if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -kBackdateSeconds, &now) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), kValidityDays, 0, &now) == nullptr) {
    FailOpenSsl("TLS certificate: cannot set the validity");
  }
  if (X509_set_pubkey(x, key.get()) != 1) FailOpenSsl("TLS certificate: cannot set the key");

  AddConfExtension(x, NID_basic_constraints, "critical,CA:FALSE");
  AddConfExtension(x, NID_key_usage, "critical,digitalSignature");
  AddConfExtension(x, NID_ext_key_usage, "serverAuth");
  AddSubjectAltNames(x, hostname);

  if (X509_sign(x, key.get(), EVP_sha256()) <= 0) FailOpenSsl("TLS certificate: cannot sign");

  SelfSignedCert out;
  out.cert_pem = PemOf("certificate", [&](BIO* bio) { return PEM_write_bio_X509(bio, x); });
  out.key_pem = PemOf("key", [&](BIO* bio) {
    return PEM_write_bio_PrivateKey_traditional(bio, key.get(), nullptr, nullptr, 0, nullptr,
                                                nullptr);
  });
  out.sha256_der_hex = internal::Sha256Hex(internal::CertDer(x));
  return out;
}

EnsuredCert EnsureSelfSignedCert(const std::string& certdir, const std::string& hostname) {
  EnsuredCert out;
  out.files = ManualCertPaths(certdir, hostname);
  const CertFiles& files = out.files;
  std::error_code ec;
  const bool have_cert = std::filesystem::exists(files.cert_file, ec);
  const bool have_key = std::filesystem::exists(files.key_file, ec);

  if (have_cert && have_key) {
    X509Ptr cert = ReadCertPem(files.cert_file);
    EvpPkeyPtr key = ReadKeyPem(files.key_file);
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
      FailOpenSsl("TLS: key " + files.key_file + " does not match certificate " + files.cert_file);
    }
    if (!internal::CertCoversHost(cert.get(), hostname)) {
      throw std::runtime_error("TLS: certificate " + files.cert_file + " is not valid for \"" +
                               hostname + "\"");
    }
    out.sha256_der_hex = CertSha256Hex(files.cert_file);
    out.created = false;
    return out;
  }
  if (have_cert != have_key) {
    throw std::runtime_error("TLS: found " + (have_cert ? files.cert_file : files.key_file) +
                             " but not " + (have_cert ? files.key_file : files.cert_file) +
                             "; refusing to overwrite it with a generated pair");
  }

  const SelfSignedCert generated = GenerateSelfSigned(hostname);
  const std::filesystem::path dir = std::filesystem::path(files.cert_file).parent_path();
  if (!dir.empty()) {
    const bool made = std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("TLS: cannot create " + dir.string() + ": " + ec.message());
    if (made) {
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
      if (ec) throw std::runtime_error("TLS: cannot chmod " + dir.string() + ": " + ec.message());
    }
  }
  // Key first: a certificate on disk then always has its key beside it.
  WriteFileOrThrow(files.key_file, generated.key_pem, 0600);
  WriteFileOrThrow(files.cert_file, generated.cert_pem, 0644);
  out.sha256_der_hex = CertSha256Hex(files.cert_file);
  out.created = true;
  return out;
}

std::string CertSha256Hex(const std::string& cert_pem_file) {
  X509Ptr cert = ReadCertPem(cert_pem_file);
  const std::vector<unsigned char> der = internal::CertDer(cert.get());
  if (der.empty()) FailOpenSsl("TLS certificate: cannot DER-encode " + cert_pem_file);
  return internal::Sha256Hex(der);
}

}  // namespace derpkit::net
