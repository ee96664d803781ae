#include "lib/net/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "lib/net/openssl_util.h"
#include "lib/util/bytes.h"

namespace derpkit::net {
namespace {

using internal::BasicConstraintsPtr;
using internal::BioPtr;
using internal::EvpPkeyPtr;
using internal::X509Ptr;

constexpr long kMetaCertHalfLifeDays = 30;
constexpr std::string_view kHttp11 = "http/1.1";
constexpr std::string_view kNothingToVerify =
    "TLS: nothing to verify the server against: no server name, no CertName, not insecure";

[[noreturn]] void FailOpenSsl(const std::string& what) {
  throw std::runtime_error(what + ": " + internal::DrainOpenSslErrors());
}

bool IsPin(std::string_view cert_name) { return cert_name.starts_with(kCertNamePinPrefix); }

std::string LowercasePin(std::string_view cert_name) {
  std::string hex(cert_name.substr(kCertNamePinPrefix.size()));
  std::transform(hex.begin(), hex.end(), hex.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return hex;
}

// What PrepareClientSsl decided for one connection. Owned by the SSL (ex_data), freed with it.
struct ClientVerifyState {
  enum class Mode { kInsecure, kPin, kChain, kFailClosed };
  Mode mode = Mode::kFailClosed;
  std::string pin_hex;  // kPin: lowercase
  std::string host;     // kPin: server_name (checked when set); kChain: the name we verify
  std::string failure;  // first verification failure, for DescribeHandshakeFailure
};

void FreeState(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ClientVerifyState*>(ptr);
}

int DupState(CRYPTO_EX_DATA*, const CRYPTO_EX_DATA*, void** from_d, int, long, void*) {
  if (auto* state = static_cast<ClientVerifyState*>(*from_d)) {
    *from_d = new ClientVerifyState(*state);
  }
  return 1;
}

int StateIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, DupState, FreeState);
  return index;
}

ClientVerifyState* GetState(SSL* ssl) {
  return static_cast<ClientVerifyState*>(SSL_get_ex_data(ssl, StateIndex()));
}

bool IsMetaCert(X509* cert) {
  return internal::SubjectCommonName(cert).starts_with(kMetaCertCommonNamePrefix);
}

std::string NameText(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE) < 0) return "?";
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// The sha256-raw check, after Tailscale's tlsdial.SetConfigExpectedCertHash: ignoring meta certs,
// exactly one certificate, with the pinned hash, valid for `host` when one was dialled, and
// within its validity dates. No chain of trust: the pin is the trust. Returns "" when it passes.
std::string CheckPinnedChain(STACK_OF(X509) * chain, const std::string& pin_hex,
                             const std::string& host) {
  bool saw_pinned = false;
  const int count = chain == nullptr ? 0 : sk_X509_num(chain);
  for (int i = 0; i < count; ++i) {
    X509* cert = sk_X509_value(chain, i);
    if (IsMetaCert(cert)) continue;
    if (saw_pinned) {
      return "TLS: server presented more than one non-meta certificate; CertName sha256-raw "
             "expects exactly one";
    }
    const std::string got = internal::Sha256Hex(internal::CertDer(cert));
    if (got != pin_hex) {
      return "TLS: server certificate SHA-256 " + got +
             " does not match the pinned sha256-raw:" + pin_hex;
    }
    if (!host.empty() && !internal::CertCoversHost(cert, host)) {
      return "TLS: pinned certificate is not valid for \"" + host + "\"";
    }
    const ASN1_TIME* not_after = X509_get0_notAfter(cert);
    const ASN1_TIME* not_before = X509_get0_notBefore(cert);
    const int after_cmp = X509_cmp_current_time(not_after);
    const int before_cmp = X509_cmp_current_time(not_before);
    if (after_cmp == 0 || before_cmp == 0) {
      return "TLS: pinned certificate has unparsable validity dates";
    }
    if (after_cmp < 0) return "TLS: pinned certificate expired " + internal::TimeText(not_after);
    if (before_cmp > 0) {
      return "TLS: pinned certificate not valid until " + internal::TimeText(not_before) +
             "; is the clock correct?";
    }
    saw_pinned = true;
  }
  if (!saw_pinned) {
    return "TLS: server presented no certificate besides the meta certificate; expected "
           "sha256-raw:" +
           pin_hex;
  }
  return {};
}

std::string DescribeVerifyError(X509_STORE_CTX* store, const std::string& expected_name) {
  const int err = X509_STORE_CTX_get_error(store);
  std::string msg =
      std::string("TLS certificate verification failed: ") + X509_verify_cert_error_string(err);
  if (err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    msg += " (certificate is not valid for \"" + expected_name + "\")";
  } else if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
    msg += " (depth " + std::to_string(X509_STORE_CTX_get_error_depth(store)) + ", subject " +
           NameText(X509_get_subject_name(cert)) + ")";
  }
  return msg;
}

// Replaces OpenSSL's chain verification on client contexts so that a pin can stand in for a
// chain of trust. Without a PrepareClientSsl state it is plain X509_verify_cert.
int CertVerifyCallback(X509_STORE_CTX* store, void*) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  ClientVerifyState* state = ssl == nullptr ? nullptr : GetState(ssl);
  if (state == nullptr) return X509_verify_cert(store);

  auto reject = [&](std::string why) {
    if (state->failure.empty()) state->failure = std::move(why);
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  };
  switch (state->mode) {
    case ClientVerifyState::Mode::kInsecure:
      X509_STORE_CTX_set_error(store, X509_V_OK);
      return 1;
    case ClientVerifyState::Mode::kFailClosed:
      return reject(state->failure);
    case ClientVerifyState::Mode::kPin: {
      std::string why =
          CheckPinnedChain(X509_STORE_CTX_get0_untrusted(store), state->pin_hex, state->host);
      if (!why.empty()) return reject(std::move(why));
      X509_STORE_CTX_set_error(store, X509_V_OK);
      return 1;
    }
    case ClientVerifyState::Mode::kChain: {
      const int ok = X509_verify_cert(store);
      if (ok <= 0 && state->failure.empty()) {
        state->failure = DescribeVerifyError(store, state->host);
      }
      return ok;
    }
  }
  return 0;
}

// Picks "http/1.1" when the client offers it. Anything else (h2 alone, acme-tls/1) gets no ALPN
// rather than an alert: DERP clients send none, and a browser offering only h2 still speaks 1.1.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
               unsigned int in_size, void*) {
  return FindAlpnProtocol(in, in_size, kHttp11, out, out_size) ? SSL_TLSEXT_ERR_OK
                                                               : SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

bool FindAlpnProtocol(const unsigned char* in, unsigned int in_size, std::string_view want,
                      const unsigned char** out, unsigned char* out_size) {
  for (unsigned int i = 0; i < in_size;) {
    const unsigned int size = in[i];
    if (i + 1 + size > in_size) break;
    const std::string_view proto(reinterpret_cast<const char*>(in + i + 1), size);
    if (proto == want) {
      *out = in + i + 1;
      *out_size = static_cast<unsigned char>(size);
      return true;
    }
    i += 1 + size;
  }
  return false;
}

namespace {

std::optional<MetaCertInfo> ParseMetaCert(X509* cert) {
  const std::string cn = internal::SubjectCommonName(cert);
  if (!cn.starts_with(kMetaCertCommonNamePrefix)) return std::nullopt;
  MetaCertInfo info;
  if (!HexDecodeInto(std::string_view(cn).substr(kMetaCertCommonNamePrefix.size()),
                     info.server_key)) {
    return std::nullopt;
  }
  if (std::all_of(info.server_key.begin(), info.server_key.end(),
                  [](std::byte b) { return b == std::byte{0}; })) {
    return std::nullopt;
  }
  int64_t serial = 0;
  if (ASN1_INTEGER_get_int64(&serial, X509_get0_serialNumber(cert)) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  if (serial < 1 || serial > 255) return std::nullopt;
  info.version = static_cast<int>(serial);
  return info;
}

}  // namespace

std::vector<unsigned char> MakeMetaCertDer(const RawKey& server_key) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) FailOpenSsl("TLS meta certificate: cannot generate an Ed25519 key");
  X509Ptr cert(X509_new());
  if (!cert) FailOpenSsl("TLS meta certificate: out of memory");
  X509* x = cert.get();

  const std::string cn = std::string(kMetaCertCommonNamePrefix) + HexEncode(server_key);
  X509_NAME* name = X509_get_subject_name(x);
  // 71 characters is over X.520's 64-character CN bound, which OpenSSL enforces only for the
  // MBSTRING_* input types; naming the string type directly writes it as Go does.
  if (X509_set_version(x, X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(x), kMetaCertProtocolVersion) != 1 ||
      X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_PRINTABLESTRING,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_set_issuer_name(x, name) != 1) {
    FailOpenSsl("TLS meta certificate: cannot set version, serial or names");
  }
  // Windows wants both dates; derper uses now±30 days.
  time_t now = std::time(nullptr);
  if (X509_time_adj_ex(X509_getm_notBefore(x), -kMetaCertHalfLifeDays, 0, &now) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), kMetaCertHalfLifeDays, 0, &now) == nullptr ||
      X509_set_pubkey(x, key.get()) != 1) {
    FailOpenSsl("TLS meta certificate: cannot set validity or key");
  }
  // macOS wants basicConstraints when subject == issuer. No SKI/AKI: derpprobe skips certificates
  // whose SKI equals their AKI, so having them would make it flag the 30-day meta cert.
  BasicConstraintsPtr constraints(BASIC_CONSTRAINTS_new());
  if (!constraints) FailOpenSsl("TLS meta certificate: out of memory");
  constraints->ca = 0;
  if (X509_add1_ext_i2d(x, NID_basic_constraints, constraints.get(), 1, X509V3_ADD_DEFAULT) != 1) {
    FailOpenSsl("TLS meta certificate: cannot add basicConstraints");
  }
  if (X509_sign(x, key.get(), nullptr) <= 0) FailOpenSsl("TLS meta certificate: cannot sign");
  std::vector<unsigned char> der = internal::CertDer(x);
  if (der.empty()) FailOpenSsl("TLS meta certificate: cannot DER-encode");
  return der;
}

namespace {

// Go's crypto/tls order, not the client's (ApplyServerPolicy in tls.h says why).
bool PreferCipherSuitesAsGo(SSL_CTX* ctx) {
  // crypto/tls defaultCipherSuitesTLS13 and the head of cipherSuitesPreferenceOrder (TLS 1.2); for
  // a client that prefers ChaCha20-Poly1305, Go switches to its no-AES orders, which
  // SSL_OP_PRIORITIZE_CHACHA matches by moving ChaCha20-Poly1305 to the top for that client.
  // DEFAULT after the TLS 1.2 head keeps OpenSSL's other suites, in its order, behind them.
  constexpr const char* kTls12 =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
      "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
      "DEFAULT";
  if (SSL_CTX_set_ciphersuites(
          ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256") != 1 ||
      SSL_CTX_set_cipher_list(ctx, kTls12) != 1) {
    return false;
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
  return true;
}

}  // namespace

std::optional<std::string> ApplyServerPolicy(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return "TLS server: cannot set TLS 1.2 as the minimum version";
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!PreferCipherSuitesAsGo(ctx)) return "TLS server: cannot set the cipher suites";
  return std::nullopt;
}

std::unique_ptr<asio::ssl::context> MakeServerContext(const TlsServerOptions& options) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* handle = ctx->native_handle();
  ERR_clear_error();
  if (auto failed = ApplyServerPolicy(handle)) FailOpenSsl(*failed);

  const CertFiles& files = options.files;
  if (SSL_CTX_use_certificate_chain_file(handle, files.cert_file.c_str()) != 1) {
    FailOpenSsl("TLS server: cannot load the certificate chain from " + files.cert_file);
  }
  EvpPkeyPtr key;
  if (BioPtr bio(BIO_new_file(files.key_file.c_str(), "r")); bio) {
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!key) FailOpenSsl("TLS server: cannot load the private key from " + files.key_file);
  if (X509_check_private_key(SSL_CTX_get0_certificate(handle), key.get()) != 1) {
    FailOpenSsl("TLS server: key " + files.key_file + " does not match certificate " +
                files.cert_file);
  }
  if (SSL_CTX_use_PrivateKey(handle, key.get()) != 1) {
    FailOpenSsl("TLS server: cannot use the private key from " + files.key_file);
  }
  if (options.add_meta_cert) {
    // After use_certificate_chain_file, which replaces the chain: the meta cert goes last.
    const std::vector<unsigned char> der = MakeMetaCertDer(options.server_key);
    const unsigned char* p = der.data();
    X509* meta = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (meta == nullptr || SSL_CTX_add0_chain_cert(handle, meta) != 1) {
      X509_free(meta);
      FailOpenSsl("TLS server: cannot append the meta certificate to the chain");
    }
  }
  SSL_CTX_set_alpn_select_cb(handle, SelectAlpn, nullptr);
  return ctx;
}

std::unique_ptr<asio::ssl::context> MakeClientContext(const TlsClientOptions& options) {
  if (IsPin(options.cert_name)) {
    const std::string hex = LowercasePin(options.cert_name);
    std::array<std::byte, 32> digest;
    if (!HexDecodeInto(hex, digest)) {
      throw std::runtime_error("TLS client: CertName \"" + options.cert_name +
                               "\" must be sha256-raw: followed by 64 hex digits");
    }
  }
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* handle = ctx->native_handle();
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(handle, TLS1_2_VERSION) != 1) {
    FailOpenSsl("TLS client: cannot set TLS 1.2 as the minimum version");
  }
  SSL_CTX_set_options(handle, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(handle, SSL_MODE_RELEASE_BUFFERS);

  if (options.insecure) {
    SSL_CTX_set_verify(handle, SSL_VERIFY_NONE, nullptr);
  } else {
    if (options.ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(handle) != 1) {
        FailOpenSsl("TLS client: cannot load the system trust store");
      }
    } else if (SSL_CTX_load_verify_locations(handle, options.ca_file.c_str(), nullptr) != 1) {
      FailOpenSsl("TLS client: cannot load CA certificates from " + options.ca_file);
    }
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(handle), X509_V_FLAG_PARTIAL_CHAIN);
    SSL_CTX_set_verify(handle, SSL_VERIFY_PEER, nullptr);
  }
  SSL_CTX_set_cert_verify_callback(handle, CertVerifyCallback, nullptr);
  return ctx;
}

void PrepareClientSsl(SSL* ssl, const TlsClientOptions& options) {
  auto state = std::make_unique<ClientVerifyState>();
  const bool server_is_ip = internal::IsIpLiteral(options.server_name);
  if (!options.server_name.empty() && !server_is_ip &&
      SSL_set_tlsext_host_name(ssl, options.server_name.c_str()) != 1) {
    state->failure = "TLS: cannot send \"" + options.server_name + "\" as SNI";
  }

  int verify_mode = SSL_VERIFY_PEER;
  if (!state->failure.empty()) {
    // Stays kFailClosed.
  } else if (options.insecure) {
    state->mode = ClientVerifyState::Mode::kInsecure;
    verify_mode = SSL_VERIFY_NONE;
  } else if (IsPin(options.cert_name)) {
    state->mode = ClientVerifyState::Mode::kPin;
    state->pin_hex = LowercasePin(options.cert_name);
    state->host = options.server_name;
  } else {
    const std::string& name = options.cert_name.empty() ? options.server_name : options.cert_name;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(
        param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (name.empty()) {
      state->failure = std::string(kNothingToVerify);
    } else if (internal::IsIpLiteral(name)
                   ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1
                   : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) != 1) {
      state->failure = "TLS: cannot verify against the name \"" + name + "\"";
    } else {
      state->mode = ClientVerifyState::Mode::kChain;
      state->host = name;
    }
  }
  ERR_clear_error();
  SSL_set_verify(ssl, verify_mode, nullptr);
  delete GetState(ssl);
  SSL_set_ex_data(ssl, StateIndex(), state.release());
}

std::string DescribeHandshakeFailure(SSL* ssl, const std::error_code& ec) {
  if (const ClientVerifyState* state = GetState(ssl); state != nullptr && !state->failure.empty()) {
    return state->failure;
  }
  if (const long result = SSL_get_verify_result(ssl); result != X509_V_OK) {
    return std::string("TLS certificate verification failed: ") +
           X509_verify_cert_error_string(result);
  }
  return "TLS handshake failed: " + ec.message();
}

std::string CheckPeerAfterHandshake(SSL* ssl, const TlsClientOptions& options) {
  if (options.insecure) return {};
  if (IsPin(options.cert_name)) {
    return CheckPinnedChain(SSL_get_peer_cert_chain(ssl), LowercasePin(options.cert_name),
                            options.server_name);
  }
  if (const ClientVerifyState* state = GetState(ssl); state != nullptr && !state->failure.empty()) {
    return state->failure;
  }
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) return "TLS: server presented no certificate";
  if (const long result = SSL_get_verify_result(ssl); result != X509_V_OK) {
    return std::string("TLS certificate verification failed: ") +
           X509_verify_cert_error_string(result);
  }
  const std::string& name = options.cert_name.empty() ? options.server_name : options.cert_name;
  if (name.empty()) return std::string(kNothingToVerify);
  if (!internal::CertCoversHost(leaf, name)) {
    return "TLS: server certificate is not valid for \"" + name + "\"";
  }
  return {};
}

std::optional<MetaCertInfo> ParseMetaCertDer(std::span<const unsigned char> der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    ERR_clear_error();
    return std::nullopt;
  }
  if (p != der.data() + der.size()) return std::nullopt;  // trailing bytes: not one certificate
  return ParseMetaCert(cert.get());
}

std::optional<MetaCertInfo> FindMetaCert(SSL* ssl) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  const int count = chain == nullptr ? 0 : sk_X509_num(chain);
  for (int i = 0; i < count; ++i) {
    if (auto info = ParseMetaCert(sk_X509_value(chain, i))) return info;
  }
  return std::nullopt;
}

}  // namespace derpkit::net
