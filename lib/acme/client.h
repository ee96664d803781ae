// An ACME (RFC 8555) client that obtains one certificate: directory, account (created once and
// found again by its key), order, one challenge per pending authorization, finalize with a CSR,
// download of the chain. HTTP over cpp-httplib with nonces (§6.5, badNonce retried), ES256 JWS.
//
// Blocking: every call does network I/O and waits for the CA, so it runs on a thread of its own
// (the relay's certificate thread), never on an event loop. Not thread-safe; one Client per
// thread. Failures are values: a FailureKind for metrics and a message for the operator that says
// which step failed and what the CA said.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lib/acme/crypto.h"
#include "lib/acme/messages.h"
#include "lib/util/expected.h"

namespace derpkit::acme {

// Why an issuance failed. Closed set: the `reason` label of derp_acme_failures_total.
enum class FailureKind {
  kNetwork,      // no connection, TLS failure, timeout of one request
  kServer,       // the CA answered with an error (problem document or unexpected status)
  kBadResponse,  // the CA's answer was not what RFC 8555 says (bad JSON, missing header)
  kChallenge,    // the CA could not validate our challenge answer, or offered none we answer
  kTimeout,      // the order or an authorization did not settle in time
  kLocal,        // something on our side: key generation, the responder
  kStopped,      // the caller asked us to stop (not counted)
};
inline constexpr std::size_t kFailureKindCount = 6;  // counted ones: all but kStopped
std::string_view FailureKindLabel(FailureKind kind);

struct Failure {
  FailureKind kind = FailureKind::kLocal;
  std::string message;
};

struct ClientOptions {
  std::string directory_url;
  std::string ca_file;  // trust anchors for the CA's HTTPS; empty: the system's
  std::string email;    // account contact; empty: none
  std::chrono::milliseconds request_timeout{30000};
  // How long an authorization or the order may stay pending/processing before we give up.
  std::chrono::milliseconds settle_timeout{std::chrono::minutes(2)};
  std::string user_agent = "derpkit-acme";
};

// Answers one challenge type. Present() makes the answer reachable for the CA, CleanUp() takes it
// away once the authorization settled (called after every successful Present()).
class ChallengeResponder {
 public:
  virtual ~ChallengeResponder() = default;
  virtual std::string_view type() const = 0;  // "http-01" or "tls-alpn-01"
  virtual Expected<void, std::string> Present(const std::string& identifier,
                                              const Challenge& challenge,
                                              const std::string& key_authorization) = 0;
  virtual void CleanUp(const std::string& identifier, const Challenge& challenge) = 0;
};

// Sleeps up to `duration` between polls; returns false when the caller is stopping (Issue then
// returns kStopped).
using Waiter = std::function<bool(std::chrono::milliseconds duration)>;

struct IssuedCert {
  std::string chain_pem;  // leaf first, as the CA sent it
  std::string key_pem;    // the new certificate key (SEC1 PEM)
};

class Client {
 public:
  Client(ClientOptions options, AccountKey key);

  // Obtains a certificate for `identifier` (a DNS name, or an IP literal as an "ip" identifier).
  Expected<IssuedCert, Failure> Issue(const std::string& identifier, ChallengeResponder& responder,
                                      const Waiter& wait);

  // The account URL ("kid") once an Issue() got that far; empty before.
  const std::string& account_url() const { return account_url_; }

 private:
  struct Reply {
    int status = 0;
    std::string body;
    std::string location;
    std::string retry_after;
  };
  Expected<Reply, Failure> Send(const std::string& method, const std::string& url,
                                const std::string& body);
  Expected<Reply, Failure> SignedPost(const std::string& url, std::string_view payload,
                                      std::string_view what);
  Expected<void, Failure> EnsureDirectory();
  Expected<void, Failure> EnsureAccount();
  Expected<void, Failure> Authorize(const std::string& authz_url, ChallengeResponder& responder,
                                    const Waiter& wait);
  Expected<Order, Failure> PollOrder(const std::string& order_url, Order order,
                                     std::string_view until, const Waiter& wait);

  ClientOptions options_;
  AccountKey key_;
  std::optional<Directory> directory_;
  std::string account_url_;
  std::string nonce_;
};

}  // namespace derpkit::acme
