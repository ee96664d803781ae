// The certificate the relay's TLS listener serves, and the server context built around it
// (derp-protocol.md §4): reading and checking a PEM chain and key, deciding whether a new pair
// may replace the one in service, and building a context that appends the meta certificate and,
// in letsencrypt mode, answers TLS-ALPN-01 challenges (RFC 8737) from a ChallengeCertSource.
//
// Thread affinity: the functions run on the certificate thread (CertManager) or at start-up;
// ServedCert and the contexts are immutable once built and are shared with the shards, whose
// handshakes call the context's callbacks on their own threads.
#pragma once

#include <asio/ssl.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/net/certs.h"
#include "lib/net/openssl_util.h"
#include "lib/util/expected.h"

namespace derpkit::relay {

// Why a certificate pair was not put in service. Closed set: the `reason` label of
// derp_tls_cert_reload_failures_total.
enum class CertProblem {
  kUnreadable,   // a file is missing or unreadable
  kUnparsable,   // no PEM certificate or key in it, or not what it claims to be
  kKeyMismatch,  // the key is not the certificate's
  kExpired,      // the leaf's notAfter is in the past
  kWrongName,    // the leaf is not valid for --hostname (while the one in service is)
};
inline constexpr std::size_t kCertProblemCount = 5;
std::string_view CertProblemLabel(CertProblem problem);

struct CertError {
  CertProblem problem = CertProblem::kUnparsable;
  std::string message;  // for the operator: which file and what is wrong with it
};

// A parsed chain (leaf first) and its key, with what the relay reports about the leaf.
struct ServedCert {
  std::vector<net::internal::X509Ptr> chain;
  net::internal::EvpPkeyPtr key;
  std::string sha256_der_hex;  // of the leaf DER: the DERPNode CertName "sha256-raw:<hex>"
  std::string serial_hex;      // of the leaf, uppercase as openssl prints it
  std::int64_t not_before_unix = 0;
  std::int64_t not_after_unix = 0;
  bool covers_hostname = false;  // valid for the --hostname it was checked against
};

// Parses a PEM chain (leaf first, intermediates after) and a PEM private key. `cert_label` and
// `key_label` name the sources in messages (file paths). Checks that both parse and that the
// key belongs to the leaf; records whether the leaf covers `hostname` (an IP literal against IP
// SANs) and its dates without judging them (see RefuseAsReplacement).
Expected<std::shared_ptr<const ServedCert>, CertError> ParseCertPair(std::string_view chain_pem,
                                                                     std::string_view key_pem,
                                                                     const std::string& hostname,
                                                                     std::string_view cert_label,
                                                                     std::string_view key_label);

// Reads files.cert_file and files.key_file and parses them with ParseCertPair.
Expected<std::shared_ptr<const ServedCert>, CertError> ReadCertPair(const net::CertFiles& files,
                                                                    const std::string& hostname);

// Returns why `next` must not replace `current` (nullptr: nothing in service yet) at `now_unix`,
// or nullopt when it may: an expired leaf never replaces anything, and a leaf that is not valid
// for the host name does not replace one that is. `cert_label` names the file in the message.
std::optional<CertError> RefuseAsReplacement(const ServedCert& next, const ServedCert* current,
                                             const std::string& hostname,
                                             std::string_view cert_label, std::int64_t now_unix);

// Where the TLS-ALPN-01 responder finds the challenge certificate for the name a validation
// handshake asks for (its SNI). Implemented by the ACME side; called from handshakes on any
// shard, so implementations are thread-safe.
class ChallengeCertSource {
 public:
  virtual ~ChallengeCertSource() = default;
  // Returns the certificate to present to an "acme-tls/1" handshake for `server_name`, or null.
  virtual std::shared_ptr<const ServedCert> ChallengeCertFor(
      std::string_view server_name) const = 0;
  // Counts one validation handshake answered.
  virtual void NoteTlsAlpnAnswered() const = 0;
};

struct ServerContextOptions {
  // DER of the meta certificate appended to every chain (net::MakeMetaCertDer); empty for none.
  std::vector<unsigned char> meta_cert_der;
  // letsencrypt mode: answer "acme-tls/1" handshakes from here. The context keeps a reference.
  std::shared_ptr<const ChallengeCertSource> challenges;
};

// Builds a server context like net::MakeServerContext (TLS 1.2 minimum, no renegotiation,
// released idle buffers, ALPN "http/1.1" only when offered, cipher suites in derper's order)
// serving `cert` followed by the meta
// certificate. `cert` may be null in letsencrypt mode before the first certificate: such a context
// answers only TLS-ALPN-01 validation and refuses other handshakes (alert unrecognized_name).
// With options.challenges set, a ClientHello that offers "acme-tls/1" gets the challenge
// certificate for its SNI and that protocol, or is refused when there is none. Returns a message
// on an OpenSSL failure.
Expected<std::shared_ptr<asio::ssl::context>, std::string> BuildServerContext(
    const std::shared_ptr<const ServedCert>& cert, const ServerContextOptions& options);

}  // namespace derpkit::relay
