// TLS for DERP (docs/derp-protocol.md §4): OpenSSL contexts for asio::ssl on both sides, the
// DERP meta-certificate ("fast start"), certificate pinning (CertName "sha256-raw:<hex>") and the
// client's meta-certificate scan.
//
// Server: MakeServerContext loads the manual-mode cert files, appends the meta cert to the chain
// presented in every handshake, and answers ALPN with "http/1.1" only when the client offers it.
//
// Client, per connection:
//   auto ctx = MakeClientContext(opts);                        // once, at start-up
//   asio::ssl::stream<tcp::socket> tls(socket, *ctx);
//   PrepareClientSsl(tls.native_handle(), opts);               // SNI + name check or pin
//   auto [ec] = co_await tls.async_handshake(client, ...);
//   if (ec) log(DescribeHandshakeFailure(tls.native_handle(), ec));
//   else if (auto err = CheckPeerAfterHandshake(ssl, opts); !err.empty()) fail(err);
//   if (SSL_version(ssl) == TLS1_3_VERSION) meta = FindMetaCert(ssl);
//
// Errors: the Make* functions throw std::runtime_error with a precise message (start-up only).
// The per-connection functions never throw; they return messages. Contexts are immutable after
// creation and may be shared by connections on any thread.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <asio/ssl.hpp>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "lib/net/certs.h"

namespace derpkit::net {

// A raw 32-byte Curve25519 DERP server public key (derp::PublicKey::bytes).
using RawKey = std::array<std::byte, 32>;

// CN prefix of the meta certificate; the rest of the CN is the server key in lowercase hex.
inline constexpr std::string_view kMetaCertCommonNamePrefix = "derpkey";
// The DERP protocol version the meta certificate carries in its serial number.
inline constexpr int kMetaCertProtocolVersion = 2;
// CertName prefix that turns name verification into a SHA-256 pin of the leaf DER.
inline constexpr std::string_view kCertNamePinPrefix = "sha256-raw:";

// Returns the DER of a fresh meta certificate naming `server_key`, shaped exactly like derper's
// (derpserver.go initMetacert; compare testdata/derp/faststart/metacert.der): X.509 v3, fresh
// Ed25519 key, serial 2, subject CN = issuer CN = "derpkey" + 64 lowercase hex digits
// (PrintableString), NotBefore now-30d, NotAfter now+30d, one extension: basicConstraints critical
// CA:FALSE; no SKI/AKI. Throws std::runtime_error on an OpenSSL failure.
std::vector<unsigned char> MakeMetaCertDer(const RawKey& server_key);

struct TlsServerOptions {
  CertFiles files{};    // PEM chain (leaf first) and key
  RawKey server_key{};  // named by the meta certificate
  bool add_meta_cert = true;
};

// Returns a server context: TLS 1.2 minimum, the chain from files.cert_file followed by the meta
// certificate (when add_meta_cert) in every handshake, ALPN "http/1.1" selected only if the client
// offers it (no ALPN otherwise; never h2), SSL_MODE_RELEASE_BUFFERS so idle connections stay small,
// no renegotiation, session tickets on, cipher suites chosen as derper chooses (below). Throws
// std::runtime_error naming the file when the cert or key can't be loaded or don't match.
std::unique_ptr<asio::ssl::context> MakeServerContext(const TlsServerOptions& options);

// What every server context of ours shares (net::MakeServerContext and the relay's
// BuildServerContext): TLS 1.2 minimum, no renegotiation, SSL_MODE_RELEASE_BUFFERS so idle
// connections stay small, and cipher suites picked as derper (Go's crypto/tls) picks them: its
// own order, not the client's. TLS 1.3: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; TLS 1.2:
// ECDHE with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, then OpenSSL's defaults. A client that
// lists ChaCha20-Poly1305 first (one without AES hardware) gets that. OpenSSL alone follows the
// client's order, so an OpenSSL client (curl, derp-load) would get AES-256-GCM, which costs the
// relay 7-18% more per record. Returns what failed (the caller adds OpenSSL's reason), or nothing.
std::optional<std::string> ApplyServerPolicy(SSL_CTX* ctx);

// For an ALPN select callback: finds `want` in the client's protocol list (`in`, `in_size` as
// OpenSSL passes them) and points out/out_size at it. False when absent or the list is malformed.
bool FindAlpnProtocol(const unsigned char* in, unsigned int in_size, std::string_view want,
                      const unsigned char** out, unsigned char* out_size);

struct TlsClientOptions {
  // The dialled host: sent as SNI when it is a DNS name (never for an IP literal, RFC 6066), and
  // the name or address verified when cert_name is empty. Empty is fine with a pin or insecure.
  std::string server_name{};
  // Name to verify instead of server_name; "sha256-raw:<64 hex>" pins the SHA-256 of the DER of
  // the single non-meta certificate instead of verifying a chain.
  std::string cert_name{};
  std::string ca_file{};  // PEM trust anchors; empty = system roots
  bool insecure = false;  // no verification at all (tests only: DERPNode InsecureForTests)
};

// Returns a client context: TLS 1.2 minimum, no ALPN, the trust store (ca_file or the system
// roots) and the verification hook PrepareClientSsl relies on. Any certificate in the trust store
// is a trust anchor, even a leaf (as in Go, and as curl does): that is what passing a self-signed
// server certificate as ca_file means. Throws std::runtime_error when ca_file can't be loaded or a
// sha256-raw pin isn't 64 hex digits. Per-connection fields (server_name) are not used here.
std::unique_ptr<asio::ssl::context> MakeClientContext(const TlsClientOptions& options);

// Configures one client connection before its handshake: SNI, then either no verification
// (insecure), the pin check (sha256-raw: exactly one non-meta certificate, whose DER SHA-256 equals
// the pin, valid now, and valid for server_name when that is set), or chain verification against
// cert_name (else server_name), as a host name or as an IP address. `ssl` must come from a context
// made by MakeClientContext. With nothing to verify (not insecure, no pin, both names empty) the
// handshake fails closed with a message saying so.
void PrepareClientSsl(SSL* ssl, const TlsClientOptions& options);

// Returns a human-readable reason for a failed client handshake: the pin mismatch or the X.509
// verification error (with the name we expected and the offending certificate's subject) when
// verification failed, else ec's message.
std::string DescribeHandshakeFailure(SSL* ssl, const std::error_code& ec);

// Re-checks a completed client handshake and returns an error message, or "" when the peer is
// acceptable. Verification already happens inside the handshake; this is belt and braces, and it
// also covers resumed sessions, where OpenSSL runs no certificate callback.
std::string CheckPeerAfterHandshake(SSL* ssl, const TlsClientOptions& options);

struct MetaCertInfo {
  RawKey server_key{};
  int version = 0;  // from the serial number, 1..255
};

// Parses a meta certificate: CN = "derpkey" + 64 hex digits (either case) naming a non-zero key,
// serial in 1..255. Returns nullopt for anything else, including non-certificates. Like the Go
// client, it trusts nothing else in the certificate (signature, dates): the key only enables the
// fast-start optimisation, and the TLS chain has been verified separately.
std::optional<MetaCertInfo> ParseMetaCertDer(std::span<const unsigned char> der);

// Scans the peer chain of a completed client handshake for a meta certificate and returns the
// first one that parses. The caller uses it only on TLS 1.3 (SSL_version(ssl) == TLS1_3_VERSION),
// where certificates travel encrypted; the reference client ignores it on TLS 1.2 too.
std::optional<MetaCertInfo> FindMetaCert(SSL* ssl);

}  // namespace derpkit::net
