#include "lib/net/tls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lib/net/as_tuple.h"
#include "lib/net/openssl_util.h"
#include "lib/util/bytes.h"
#include "tests/unit/net/net_test_util.h"

// GCC 12 misreports asio's coroutine frame operator new/delete pair as mismatched (GCC PR 109224).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace derpkit::net {
namespace {

using asio::ip::tcp;
using internal::BioPtr;
using internal::EvpPkeyPtr;
using internal::X509Ptr;
using nettest::DerperPublicKey;
using nettest::DerperPublicKeyHex;
using nettest::ReadBinary;
using nettest::ScratchDir;
using nettest::Testdata;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

using ::derpkit::net::kAsTuple;

X509Ptr ParseDer(std::span<const unsigned char> der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// Builds an Ed25519 self-signed certificate with the given CN and serial, for the parser's
// rejection tests.
std::vector<unsigned char> MakeCertForTest(const std::string& cn, long serial) {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  X509Ptr cert(X509_new());
  X509* x = cert.get();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_issuer_name(x, name);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key.get());
  X509_sign(x, key.get(), nullptr);
  return internal::CertDer(x);
}

void AddExtensionForTest(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

std::string PemForTest(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A test CA and a "localhost" leaf it issued, written as ca.pem, leaf.crt (leaf only), leaf.key.
struct CaIssued {
  std::string ca_file;
  CertFiles leaf;
};

CaIssued MakeCaIssuedLeaf(const ScratchDir& dir) {
  auto make = [](X509_NAME* issuer, const char* cn, EVP_PKEY* key) {
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? issuer : X509_get_subject_name(cert.get()));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
    X509_set_pubkey(cert.get(), key);
    return cert;
  };
  EvpPkeyPtr ca_key(EVP_EC_gen("P-256"));
  X509Ptr ca = make(nullptr, "derpkit test CA", ca_key.get());
  AddExtensionForTest(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtensionForTest(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign");
  X509_sign(ca.get(), ca_key.get(), EVP_sha256());

  EvpPkeyPtr leaf_key(EVP_EC_gen("P-256"));
  X509Ptr leaf = make(X509_get_subject_name(ca.get()), "localhost", leaf_key.get());
  AddExtensionForTest(leaf.get(), ca.get(), NID_subject_alt_name, "DNS:localhost");
  AddExtensionForTest(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  X509_sign(leaf.get(), ca_key.get(), EVP_sha256());

  CaIssued out{dir / "ca.pem", {dir / "leaf.crt", dir / "leaf.key"}};
  nettest::WriteFile(out.ca_file, PemForTest(ca.get()));
  nettest::WriteFile(out.leaf.cert_file, PemForTest(leaf.get()));
  BioPtr bio(BIO_new_file(out.leaf.key_file.c_str(), "w"));
  PEM_write_bio_PrivateKey(bio.get(), leaf_key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The meta certificate.

TEST(MetaCertTest, ParsesTheRealDerpersMetaCert) {
  const std::vector<unsigned char> der = ReadBinary(Testdata("derp/faststart/metacert.der"));
  ASSERT_EQ(der.size(), 359u);
  const std::optional<MetaCertInfo> info = ParseMetaCertDer(der);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(HexEncode(info->server_key), DerperPublicKeyHex());
  EXPECT_EQ(info->version, 2);
}

TEST(MetaCertTest, GeneratedMetaCertHasTheRealOnesStructure) {
  const std::vector<unsigned char> real_der = ReadBinary(Testdata("derp/faststart/metacert.der"));
  const std::vector<unsigned char> our_der = MakeMetaCertDer(DerperPublicKey());
  X509Ptr real = ParseDer(real_der);
  X509Ptr ours = ParseDer(our_der);
  ASSERT_TRUE(real);
  ASSERT_TRUE(ours);

  for (X509* x : {real.get(), ours.get()}) {
    SCOPED_TRACE(x == real.get() ? "real derper" : "ours");
    EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
    EXPECT_EQ(ASN1_INTEGER_get(X509_get0_serialNumber(x)), 2);
    EXPECT_EQ(internal::SubjectCommonName(x), "derpkey" + DerperPublicKeyHex());
    EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(x)), 1);
    const ASN1_STRING* cn =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(X509_get_subject_name(x), 0));
    EXPECT_EQ(ASN1_STRING_type(cn), V_ASN1_PRINTABLESTRING);

    EXPECT_EQ(X509_get_signature_nid(x), NID_ED25519);
    ASSERT_NE(X509_get0_pubkey(x), nullptr);
    EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_ED25519);
    EXPECT_EQ(X509_verify(x, X509_get0_pubkey(x)), 1);

    // Exactly one extension: basicConstraints, critical, CA:FALSE, no pathLen.
    ASSERT_EQ(X509_get_ext_count(x), 1);
    X509_EXTENSION* ext = X509_get_ext(x, 0);
    EXPECT_EQ(OBJ_obj2nid(X509_EXTENSION_get_object(ext)), NID_basic_constraints);
    EXPECT_EQ(X509_EXTENSION_get_critical(ext), 1);
    auto* constraints = static_cast<BASIC_CONSTRAINTS*>(
        X509_get_ext_d2i(x, NID_basic_constraints, nullptr, nullptr));
    ASSERT_NE(constraints, nullptr);
    EXPECT_EQ(constraints->ca, 0);
    EXPECT_EQ(constraints->pathlen, nullptr);
    BASIC_CONSTRAINTS_free(constraints);
    EXPECT_EQ(X509_get0_subject_key_id(x), nullptr);
    EXPECT_EQ(X509_get0_authority_key_id(x), nullptr);

    // Validity spans exactly 60 days.
    int days = 0;
    int seconds = 0;
    ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
    EXPECT_EQ(days, 60);
    EXPECT_EQ(seconds, 0);
    EXPECT_EQ(ASN1_STRING_type(X509_get0_notBefore(x)), V_ASN1_UTCTIME);
  }
}

// Stronger than the field comparison: the two DER encodings are the same length and differ only
// in the validity dates, the Ed25519 public key and the signature. Offsets are those of
// `openssl asn1parse -inform DER -in metacert.der`.
TEST(MetaCertTest, GeneratedMetaCertIsByteIdenticalToTheRealOneOutsideDatesKeyAndSignature) {
  const std::vector<unsigned char> real = ReadBinary(Testdata("derp/faststart/metacert.der"));
  const std::vector<unsigned char> ours = MakeMetaCertDer(DerperPublicKey());
  ASSERT_EQ(ours.size(), real.size());
  // The fields we skip are where asn1parse says: two UTCTimes, the key BIT STRING, the signature.
  ASSERT_EQ(real[109], 0x17);
  ASSERT_EQ(real[124], 0x17);
  ASSERT_EQ(real[232], 0x03);
  ASSERT_EQ(real[233], 33);
  ASSERT_EQ(real[292], 0x03);
  ASSERT_EQ(real[293], 65);
  auto varies = [](std::size_t i) {
    return (i >= 111 && i < 124) || (i >= 126 && i < 139) ||  // UTCTime contents
           (i >= 235 && i < 267) ||                           // public key
           (i >= 295 && i < 359);                             // signature
  };
  for (std::size_t i = 0; i < real.size(); ++i) {
    if (!varies(i)) {
      EXPECT_EQ(ours[i], real[i]) << "at offset " << i;
    }
  }
}

TEST(MetaCertTest, GeneratedMetaCertIsValidFromThirtyDaysAgoToThirtyDaysAhead) {
  X509Ptr cert = ParseDer(MakeMetaCertDer(DerperPublicKey()));
  ASSERT_TRUE(cert);
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notBefore(cert.get())), 1);
  EXPECT_NEAR(days * 86400L + seconds, -30 * 86400L, 60);
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_NEAR(days * 86400L + seconds, 30 * 86400L, 60);
}

TEST(MetaCertTest, EveryMetaCertHasAFreshKey) {
  const RawKey key = DerperPublicKey();
  X509Ptr a = ParseDer(MakeMetaCertDer(key));
  X509Ptr b = ParseDer(MakeMetaCertDer(key));
  EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(a.get()), X509_get0_pubkey(b.get())), 1);
}

TEST(MetaCertTest, RoundTripsThroughParse) {
  RawKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::byte>(0xa0 + i);
  const std::optional<MetaCertInfo> info = ParseMetaCertDer(MakeMetaCertDer(key));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->server_key, key);
  EXPECT_EQ(info->version, kMetaCertProtocolVersion);
}

TEST(ParseMetaCertDerTest, AcceptsUppercaseHexAndAnyVersionFrom1To255) {
  const std::string hex = DerperPublicKeyHex();
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::optional<MetaCertInfo> info = ParseMetaCertDer(MakeCertForTest("derpkey" + upper, 1));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->server_key, DerperPublicKey());
  EXPECT_EQ(info->version, 1);
  info = ParseMetaCertDer(MakeCertForTest("derpkey" + hex, 255));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->version, 255);
}

TEST(ParseMetaCertDerTest, RejectsSerialsOutside1To255) {
  const std::string cn = "derpkey" + DerperPublicKeyHex();
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest(cn, 0)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest(cn, 256)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest(cn, -2)).has_value());
}

TEST(ParseMetaCertDerTest, RejectsCommonNamesThatDoNotNameAKey) {
  const std::string hex = DerperPublicKeyHex();
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("localhost", 2)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("derpkey" + hex.substr(2), 2)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("derpkey" + hex + "00", 2)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("derpkey" + hex.substr(1) + "g", 2)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("DERPKEY" + hex, 2)).has_value());
  EXPECT_FALSE(ParseMetaCertDer(MakeCertForTest("derpkey" + std::string(64, '0'), 2)).has_value());
}

TEST(ParseMetaCertDerTest, RejectsBytesThatAreNotExactlyOneCertificate) {
  std::vector<unsigned char> der = ReadBinary(Testdata("derp/faststart/metacert.der"));
  EXPECT_FALSE(ParseMetaCertDer({}).has_value());
  EXPECT_FALSE(ParseMetaCertDer(std::span(der).first(der.size() - 1)).has_value());
  der.push_back(0);
  EXPECT_FALSE(ParseMetaCertDer(der).has_value());
  const std::string junk = "definitely not DER";
  EXPECT_FALSE(ParseMetaCertDer(std::vector<unsigned char>(junk.begin(), junk.end())).has_value());
}

// ---------------------------------------------------------------------------------------------
// Contexts: start-up errors.

TEST(MakeServerContextTest, NamesTheFileItCannotLoad) {
  ScratchDir scratch;
  TlsServerOptions options;
  options.files = {scratch / "missing.crt", scratch / "missing.key"};
  try {
    MakeServerContext(options);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("cannot load the certificate chain from " + options.files.cert_file));
  }
  const EnsuredCert ensured = EnsureSelfSignedCert(scratch.path().string(), "localhost");
  options.files.cert_file = ensured.files.cert_file;
  try {
    MakeServerContext(options);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot load the private key from " + options.files.key_file));
  }
}

TEST(MakeServerContextTest, RejectsAKeyThatDoesNotMatch) {
  ScratchDir scratch;
  const EnsuredCert ensured = EnsureSelfSignedCert(scratch.path().string(), "localhost");
  nettest::WriteFile(scratch / "other.key", GenerateSelfSigned("localhost").key_pem);
  TlsServerOptions options;
  options.files = {ensured.files.cert_file, scratch / "other.key"};
  try {
    MakeServerContext(options);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("does not match certificate"));
  }
}

TEST(MakeClientContextTest, RejectsMalformedPins) {
  for (const char* name : {"sha256-raw:", "sha256-raw:abcd", "sha256-raw:zz"}) {
    try {
      MakeClientContext({.server_name = "", .cert_name = name});
      ADD_FAILURE() << "no exception for " << name;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("64 hex digits"));
    }
  }
}

TEST(MakeClientContextTest, NamesTheCaFileItCannotLoad) {
  ScratchDir scratch;
  try {
    MakeClientContext({.server_name = "localhost", .ca_file = scratch / "nope.pem"});
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot load CA certificates from " + (scratch / "nope.pem")));
  }
}

// ---------------------------------------------------------------------------------------------
// Real TLS over loopback.

// What the server saw on one connection.
struct ServerSide {
  std::error_code ec;
  std::string sni;
  std::string alpn;
};

// What the client saw.
struct ClientOutcome {
  bool timed_out = false;
  std::error_code ec;
  std::string failure;  // DescribeHandshakeFailure when ec
  std::string check;    // CheckPeerAfterHandshake
  int version = 0;
  std::optional<MetaCertInfo> meta;
  std::vector<std::string> chain_cns;  // SSL_get_peer_cert_chain, leaf first
  std::string alpn;
};

std::string AlpnOf(SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl, &data, &size);
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A TLS server on 127.0.0.1:<ephemeral> running on its own io_context thread. After each
// handshake it records what it saw and writes one byte, so a client that has read that byte knows
// the record is there.
class TlsLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override { ensured_ = EnsureSelfSignedCert(scratch_.path().string(), "localhost"); }

  void TearDown() override {
    if (thread_.joinable()) {
      io_.stop();
      thread_.join();
    }
  }

  TlsServerOptions DefaultServerOptions() const {
    TlsServerOptions options;
    options.files = ensured_.files;
    options.server_key = DerperPublicKey();
    return options;
  }

  void StartServer(const TlsServerOptions& options) {
    server_ctx_ = MakeServerContext(options);
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, AcceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  void StartServer() { StartServer(DefaultServerOptions()); }

  asio::awaitable<void> AcceptLoop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kAsTuple);
      if (ec) co_return;
      asio::co_spawn(io_, Serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    asio::ssl::stream<tcp::socket> tls(std::move(socket), *server_ctx_);
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, kAsTuple);
    ServerSide seen;
    seen.ec = ec;
    if (!ec) {
      const char* sni = SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name);
      seen.sni = sni == nullptr ? "" : sni;
      seen.alpn = AlpnOf(tls.native_handle());
    }
    {
      std::lock_guard lock(mu_);
      server_seen_.push_back(seen);
    }
    if (ec) co_return;
    const char ready = 'k';
    auto [wec, wn] = co_await asio::async_write(tls, asio::buffer(&ready, 1), kAsTuple);
    char sink[256];
    while (!wec) {  // until the client goes away
      auto [rec, rn] = co_await tls.async_read_some(asio::buffer(sink), kAsTuple);
      if (rec) break;
    }
  }

  // `before` runs between PrepareClientSsl and the handshake, `after` after a good handshake.
  static asio::awaitable<ClientOutcome> RunClient(std::shared_ptr<asio::ssl::context> ctx,
                                                  TlsClientOptions options, uint16_t port,
                                                  std::function<void(SSL*)> before,
                                                  std::function<void(SSL*)> after) {
    ClientOutcome out;
    asio::ssl::stream<tcp::socket> tls(co_await asio::this_coro::executor, *ctx);
    auto [cec] = co_await tls.next_layer().async_connect(
        tcp::endpoint(asio::ip::address_v4::loopback(), port), kAsTuple);
    if (cec) {
      out.ec = cec;
      out.failure = "connect: " + cec.message();
      co_return out;
    }
    SSL* ssl = tls.native_handle();
    PrepareClientSsl(ssl, options);
    if (before) before(ssl);
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::client, kAsTuple);
    if (ec) {
      out.ec = ec;
      out.failure = DescribeHandshakeFailure(ssl, ec);
      co_return out;
    }
    out.check = CheckPeerAfterHandshake(ssl, options);
    if (after) after(ssl);
    out.version = SSL_version(ssl);
    out.meta = FindMetaCert(ssl);
    out.alpn = AlpnOf(ssl);
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
      out.chain_cns.push_back(internal::SubjectCommonName(sk_X509_value(chain, i)));
    }
    char ready = 0;
    auto [rec, rn] = co_await asio::async_read(tls, asio::buffer(&ready, 1), kAsTuple);
    if (rec || ready != 'k') out.check += " (no byte from the server: " + rec.message() + ")";
    co_return out;
  }

  static asio::awaitable<ClientOutcome> RunClientWithDeadline(
      std::shared_ptr<asio::ssl::context> ctx, TlsClientOptions options, uint16_t port,
      std::function<void(SSL*)> before, std::function<void(SSL*)> after) {
    asio::steady_timer deadline(co_await asio::this_coro::executor, 5s);
    auto result = co_await (
        RunClient(std::move(ctx), std::move(options), port, std::move(before), std::move(after)) ||
        deadline.async_wait(asio::use_awaitable));
    if (result.index() == 1) {
      ClientOutcome out;
      out.timed_out = true;
      co_return out;
    }
    co_return std::get<0>(std::move(result));
  }

  // Connects one client with a context made from `options` and returns what it saw.
  // Runs on the io_context thread; the test thread waits for it.
  ClientOutcome Connect(const TlsClientOptions& options, std::function<void(SSL*)> before = {},
                        std::function<void(SSL*)> after = {}) {
    std::shared_ptr<asio::ssl::context> ctx = MakeClientContext(options);
    std::future<ClientOutcome> result = asio::co_spawn(
        io_,
        RunClientWithDeadline(std::move(ctx), options, port_, std::move(before), std::move(after)),
        asio::use_future);
    // The coroutine's own 5 s deadline bounds this; the wait only guards against a wedged loop.
    if (result.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "client did not finish";
      std::abort();  // the coroutine still uses our state; nothing safe to do but stop
    }
    ClientOutcome out = result.get();
    EXPECT_FALSE(out.timed_out) << "TLS client hit its 5 s deadline";
    return out;
  }

  std::vector<ServerSide> ServerSeen() {
    std::lock_guard lock(mu_);
    return server_seen_;
  }

  std::string MetaCommonName() const { return "derpkey" + DerperPublicKeyHex(); }

  ScratchDir scratch_;
  EnsuredCert ensured_;
  std::unique_ptr<asio::ssl::context> server_ctx_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<ServerSide> server_seen_;
};

TEST_F(TlsLoopbackTest, VerifiesAgainstTheSelfSignedCertAsCaAndFindsTheMetaCert) {
  StartServer();
  const ClientOutcome out =
      Connect({.server_name = "localhost", .ca_file = ensured_.files.cert_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  EXPECT_EQ(out.version, TLS1_3_VERSION);
  ASSERT_TRUE(out.meta.has_value());
  EXPECT_EQ(out.meta->server_key, DerperPublicKey());
  EXPECT_EQ(out.meta->version, 2);
  EXPECT_EQ(out.alpn, "");  // DERP clients send no ALPN, and get none
  const std::vector<ServerSide> seen = ServerSeen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].sni, "localhost");
  EXPECT_EQ(seen[0].alpn, "");
}

TEST_F(TlsLoopbackTest, VerifiesACaIssuedLeafAgainstItsCa) {
  const CaIssued issued = MakeCaIssuedLeaf(scratch_);
  TlsServerOptions options = DefaultServerOptions();
  options.files = issued.leaf;
  StartServer(options);
  const ClientOutcome out = Connect({.server_name = "localhost", .ca_file = issued.ca_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  EXPECT_TRUE(out.meta.has_value());
}

// Go's verifier treats every certificate in the root pool as an anchor, so a DERP map user may
// hand us the server's own leaf even when a CA issued it. OpenSSL needs X509_V_FLAG_PARTIAL_CHAIN.
TEST_F(TlsLoopbackTest, TrustsACaIssuedLeafGivenDirectlyAsCaFile) {
  const CaIssued issued = MakeCaIssuedLeaf(scratch_);
  TlsServerOptions options = DefaultServerOptions();
  options.files = issued.leaf;
  StartServer(options);
  const ClientOutcome out = Connect({.server_name = "localhost", .ca_file = issued.leaf.cert_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
}

TEST_F(TlsLoopbackTest, PresentsTheLeafThenTheMetaCertLast) {
  StartServer();
  const ClientOutcome out = Connect({.server_name = "localhost", .insecure = true});
  ASSERT_FALSE(out.ec) << out.failure;
  ASSERT_EQ(out.chain_cns.size(), 2u);
  EXPECT_EQ(out.chain_cns[0], "localhost");
  EXPECT_EQ(out.chain_cns[1], MetaCommonName());
}

TEST_F(TlsLoopbackTest, AppendsTheMetaCertAfterTheFilesOwnChain) {
  // A cert file holding leaf + one more certificate, as with a CA-issued chain.
  const SelfSignedCert other = GenerateSelfSigned("intermediate.example");
  const std::string chain_file = scratch_ / "chain.crt";
  nettest::WriteFile(chain_file, nettest::ReadFile(ensured_.files.cert_file) + other.cert_pem);
  TlsServerOptions options = DefaultServerOptions();
  options.files.cert_file = chain_file;
  StartServer(options);

  const ClientOutcome out = Connect({.server_name = "localhost", .insecure = true});
  ASSERT_FALSE(out.ec) << out.failure;
  ASSERT_EQ(out.chain_cns.size(), 3u);
  EXPECT_EQ(out.chain_cns[0], "localhost");
  EXPECT_EQ(out.chain_cns[1], "intermediate.example");
  EXPECT_EQ(out.chain_cns[2], MetaCommonName());
}

TEST_F(TlsLoopbackTest, WithoutMetaCertPresentsOnlyTheLeaf) {
  TlsServerOptions options = DefaultServerOptions();
  options.add_meta_cert = false;
  StartServer(options);
  const ClientOutcome out =
      Connect({.server_name = "localhost", .ca_file = ensured_.files.cert_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.chain_cns, std::vector<std::string>{"localhost"});
  EXPECT_FALSE(out.meta.has_value());
}

TEST_F(TlsLoopbackTest, AcceptsTheRightPin) {
  StartServer();
  const ClientOutcome out =
      Connect({.server_name = "localhost", .cert_name = "sha256-raw:" + ensured_.sha256_der_hex});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  EXPECT_TRUE(out.meta.has_value());  // the meta cert doesn't count against "exactly one"
}

TEST_F(TlsLoopbackTest, AcceptsTheRightPinInUppercaseWhenDialledByIp) {
  StartServer();
  std::string upper = ensured_.sha256_der_hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const ClientOutcome out = Connect({.server_name = "", .cert_name = "sha256-raw:" + upper});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  const std::vector<ServerSide> seen = ServerSeen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].sni, "");  // no SNI without a name
}

TEST_F(TlsLoopbackTest, RejectsTheWrongPinDuringTheHandshake) {
  StartServer();
  const std::string wrong(64, 'a');
  const ClientOutcome out =
      Connect({.server_name = "localhost", .cert_name = "sha256-raw:" + wrong});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("does not match the pinned sha256-raw:" + wrong));
  EXPECT_THAT(out.failure, HasSubstr(ensured_.sha256_der_hex));
}

TEST_F(TlsLoopbackTest, CheckPeerAfterHandshakeRejectsAWrongPinOnItsOwn) {
  StartServer();
  // The handshake verifies nothing; the after-check with a pin must still tell right from wrong.
  const TlsClientOptions right{.cert_name = "sha256-raw:" + ensured_.sha256_der_hex};
  const TlsClientOptions wrong{.cert_name = "sha256-raw:" + std::string(64, '0')};
  std::string right_check = "not run";
  std::string wrong_check = "not run";
  const ClientOutcome out = Connect({.insecure = true}, {}, [&](SSL* ssl) {
    right_check = CheckPeerAfterHandshake(ssl, right);
    wrong_check = CheckPeerAfterHandshake(ssl, wrong);
  });
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(right_check, "");
  EXPECT_THAT(wrong_check,
              HasSubstr("does not match the pinned sha256-raw:" + std::string(64, '0')));
}

TEST_F(TlsLoopbackTest, CheckPeerAfterHandshakeChecksTheNameOnItsOwn) {
  StartServer();
  std::string good = "not run";
  std::string bad = "not run";
  std::string none = "not run";
  const ClientOutcome out = Connect({.insecure = true}, {}, [&](SSL* ssl) {
    good = CheckPeerAfterHandshake(ssl, {.server_name = "localhost"});
    bad = CheckPeerAfterHandshake(ssl, {.server_name = "derp.example.com"});
    none = CheckPeerAfterHandshake(ssl, {});
  });
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(good, "");
  EXPECT_THAT(bad, HasSubstr("not valid for \"derp.example.com\""));
  EXPECT_THAT(none, HasSubstr("nothing to verify"));
}

TEST_F(TlsLoopbackTest, PinRejectsAChainWithTwoNonMetaCerts) {
  const SelfSignedCert other = GenerateSelfSigned("intermediate.example");
  const std::string chain_file = scratch_ / "chain.crt";
  nettest::WriteFile(chain_file, nettest::ReadFile(ensured_.files.cert_file) + other.cert_pem);
  TlsServerOptions options = DefaultServerOptions();
  options.files.cert_file = chain_file;
  StartServer(options);
  const ClientOutcome out =
      Connect({.server_name = "localhost", .cert_name = "sha256-raw:" + ensured_.sha256_der_hex});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("more than one non-meta certificate"));
}

TEST_F(TlsLoopbackTest, PinStillChecksTheDialledHostname) {
  StartServer();
  const ClientOutcome out = Connect(
      {.server_name = "derp.example.com", .cert_name = "sha256-raw:" + ensured_.sha256_der_hex});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("pinned certificate is not valid for \"derp.example.com\""));
}

TEST_F(TlsLoopbackTest, InsecureAcceptsAnything) {
  StartServer();
  const ClientOutcome out = Connect({.server_name = "not-the-name.example", .insecure = true});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  EXPECT_EQ(out.version, TLS1_3_VERSION);
}

TEST_F(TlsLoopbackTest, SystemRootsRejectTheSelfSignedCertWithAClearMessage) {
  StartServer();
  const ClientOutcome out = Connect({.server_name = "localhost"});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, StartsWith("TLS certificate verification failed: "));
  EXPECT_THAT(out.failure, HasSubstr("self-signed certificate"));
  EXPECT_THAT(out.failure, HasSubstr("CN = localhost"));
}

TEST_F(TlsLoopbackTest, VerifiesCertNameInsteadOfServerName) {
  StartServer();
  // Dialled by IP (no SNI), certificate checked for the name "localhost".
  ClientOutcome out = Connect(
      {.server_name = "127.0.0.1", .cert_name = "localhost", .ca_file = ensured_.files.cert_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  std::vector<ServerSide> seen = ServerSeen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].sni, "");  // never an IP literal in SNI

  out = Connect({.server_name = "localhost",
                 .cert_name = "derp.example.com",
                 .ca_file = ensured_.files.cert_file});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("hostname mismatch"));
  EXPECT_THAT(out.failure, HasSubstr("\"derp.example.com\""));
}

TEST_F(TlsLoopbackTest, VerifiesAnIpServerNameAgainstIpSans) {
  StartServer();
  ClientOutcome out = Connect({.server_name = "127.0.0.1", .ca_file = ensured_.files.cert_file});
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");

  out = Connect({.server_name = "127.0.0.2", .ca_file = ensured_.files.cert_file});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("IP address mismatch"));
}

TEST_F(TlsLoopbackTest, FailsClosedWithNothingToVerify) {
  StartServer();
  const ClientOutcome out = Connect({.server_name = "", .ca_file = ensured_.files.cert_file});
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("nothing to verify the server against"));
}

TEST_F(TlsLoopbackTest, Tls12OnlyClientConnectsAndStillSeesTheMetaCert) {
  StartServer();
  const ClientOutcome out =
      Connect({.server_name = "localhost", .ca_file = ensured_.files.cert_file},
              [](SSL* ssl) { SSL_set_max_proto_version(ssl, TLS1_2_VERSION); });
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.check, "");
  EXPECT_EQ(out.version, TLS1_2_VERSION);
  // Present, but in the clear on TLS 1.2: the DERP client must not use it (it checks the version).
  ASSERT_EQ(out.chain_cns.size(), 2u);
  EXPECT_EQ(out.chain_cns[1], MetaCommonName());
}

TEST_F(TlsLoopbackTest, SelectsHttp11OnlyWhenTheClientOffersIt) {
  StartServer();
  auto offer = [](std::string_view wire) {
    return [wire](SSL* ssl) {
      SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned int>(wire.size()));
    };
  };
  const TlsClientOptions options{.server_name = "localhost", .insecure = true};
  ClientOutcome out = Connect(options, offer(std::string_view("\x02h2\x08http/1.1", 12)));
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.alpn, "http/1.1");
  out = Connect(options, offer(std::string_view("\x02h2", 3)));
  ASSERT_FALSE(out.ec) << out.failure;
  EXPECT_EQ(out.alpn, "");
}

TEST_F(TlsLoopbackTest, RejectsClientsOlderThanTls12) {
  StartServer();
  const ClientOutcome out = Connect({.server_name = "localhost", .insecure = true}, [](SSL* ssl) {
    SSL_set_security_level(ssl, 0);  // let the client even try TLS 1.1
    SSL_set_min_proto_version(ssl, TLS1_1_VERSION);
    SSL_set_max_proto_version(ssl, TLS1_1_VERSION);
  });
  ASSERT_TRUE(out.ec);
  EXPECT_THAT(out.failure, HasSubstr("protocol version"));  // the server's alert
}

TEST_F(TlsLoopbackTest, OpensslSClientSeesTwoCertificatesEndingWithTheMetaCert) {
  StartServer();
  const std::string command =
      "timeout 5 openssl s_client -connect 127.0.0.1:" + std::to_string(port_) +
      " -servername localhost -showcerts </dev/null 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  const int status = ::pclose(pipe);
  ASSERT_EQ(status, 0) << output;

  std::size_t certs = 0;
  for (std::size_t at = output.find("-----BEGIN CERTIFICATE-----"); at != std::string::npos;
       at = output.find("-----BEGIN CERTIFICATE-----", at + 1)) {
    ++certs;
  }
  EXPECT_EQ(certs, 2u) << output;
  EXPECT_THAT(output, HasSubstr(" 0 s:CN = localhost"));
  EXPECT_THAT(output, HasSubstr(" 1 s:CN = " + MetaCommonName()));
  EXPECT_THAT(output, ::testing::Not(HasSubstr(" 2 s:")));
  EXPECT_THAT(output, HasSubstr("TLSv1.3"));
}

}  // namespace
}  // namespace derpkit::net
