// The ACME challenge answers the relay serves while its certificate thread runs an order:
// HTTP-01 key authorizations on the --http-port listener (RFC 8555 §8.3) and TLS-ALPN-01
// certificates on the main TLS listener (RFC 8737), and the two lib/acme responders that put
// them up and take them down.
//
// Thread affinity: the board is written by the certificate thread and read by every shard (HTTP
// requests, TLS handshakes); a mutex guards it. Answers are few and short-lived.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "lib/acme/client.h"
#include "lib/http/head.h"
#include "relay/http_routes.h"
#include "relay/tls_cert.h"

namespace derpkit::relay {

// Label values of derp_acme_challenges_answered_total{type}.
inline constexpr std::array<std::string_view, 2> kChallengeTypeLabel = {"http-01", "tls-alpn-01"};

class ChallengeBoard final : public ChallengeCertSource {
 public:
  void PutHttp01(const std::string& token, const std::string& key_authorization);
  void RemoveHttp01(const std::string& token);
  // Returns the key authorization for `token` and counts the answer, or nullopt.
  std::optional<std::string> AnswerHttp01(std::string_view token) const;

  void PutTlsAlpn(const std::string& server_name, std::shared_ptr<const ServedCert> cert);
  void RemoveTlsAlpn(const std::string& server_name);

  // ChallengeCertSource (TLS handshakes on the shards).
  std::shared_ptr<const ServedCert> ChallengeCertFor(std::string_view server_name) const override;
  void NoteTlsAlpnAnswered() const override;

  // Answers served so far, by kChallengeTypeLabel index.
  std::uint64_t answered(std::size_t type) const {
    return answered_[type].load(std::memory_order_relaxed);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> http01_;
  std::map<std::string, std::shared_ptr<const ServedCert>, std::less<>> tls_alpn_;
  mutable std::array<std::atomic<std::uint64_t>, 2> answered_{};
};

// Puts HTTP-01 answers on the board.
class Http01Responder final : public acme::ChallengeResponder {
 public:
  explicit Http01Responder(ChallengeBoard& board) : board_(board) {}
  std::string_view type() const override { return "http-01"; }
  Expected<void, std::string> Present(const std::string& identifier,
                                      const acme::Challenge& challenge,
                                      const std::string& key_authorization) override;
  void CleanUp(const std::string& identifier, const acme::Challenge& challenge) override;

 private:
  ChallengeBoard& board_;
};

// Makes the RFC 8737 certificate for the identifier and puts it on the board.
class TlsAlpnResponder final : public acme::ChallengeResponder {
 public:
  explicit TlsAlpnResponder(ChallengeBoard& board) : board_(board) {}
  std::string_view type() const override { return "tls-alpn-01"; }
  Expected<void, std::string> Present(const std::string& identifier,
                                      const acme::Challenge& challenge,
                                      const std::string& key_authorization) override;
  void CleanUp(const std::string& identifier, const acme::Challenge& challenge) override;

 private:
  ChallengeBoard& board_;
};

// The path prefix of HTTP-01 answers (RFC 8555 §8.3).
inline constexpr std::string_view kAcmeChallengePath = "/.well-known/acme-challenge/";

// On the --http-port listener in letsencrypt mode: replaces `result` with the answer to a GET or
// HEAD of /.well-known/acme-challenge/<token> (200 text/plain with the key authorization, or 404
// when the token is not on the board). Leaves other requests, and requests the router refused
// for a bad Host header, alone.
void AnswerHttp01(const http::RequestHead& req, const ChallengeBoard& board, RouteResult& result);

}  // namespace derpkit::relay
