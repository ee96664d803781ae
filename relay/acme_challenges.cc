// ACME challenge answers (see acme_challenges.h). The board is shared by the certificate thread
// and the shards.
#include "relay/acme_challenges.h"

#include <algorithm>
#include <cctype>

namespace derpkit::relay {
namespace {

// TLS names compare without case (RFC 6066 §3, RFC 4343).
std::string Lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

void ChallengeBoard::PutHttp01(const std::string& token, const std::string& key_authorization) {
  std::lock_guard lock(mu_);
  http01_[token] = key_authorization;
}

void ChallengeBoard::RemoveHttp01(const std::string& token) {
  std::lock_guard lock(mu_);
  http01_.erase(token);
}

std::optional<std::string> ChallengeBoard::AnswerHttp01(std::string_view token) const {
  std::lock_guard lock(mu_);
  const auto it = http01_.find(token);
  if (it == http01_.end()) return std::nullopt;
  answered_[0].fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

void ChallengeBoard::PutTlsAlpn(const std::string& server_name,
                                std::shared_ptr<const ServedCert> cert) {
  std::lock_guard lock(mu_);
  tls_alpn_[Lowercase(server_name)] = std::move(cert);
}

void ChallengeBoard::RemoveTlsAlpn(const std::string& server_name) {
  std::lock_guard lock(mu_);
  tls_alpn_.erase(Lowercase(server_name));
}

std::shared_ptr<const ServedCert> ChallengeBoard::ChallengeCertFor(
    std::string_view server_name) const {
  std::lock_guard lock(mu_);
  const auto it = tls_alpn_.find(Lowercase(server_name));
  return it == tls_alpn_.end() ? nullptr : it->second;
}

void ChallengeBoard::NoteTlsAlpnAnswered() const {
  answered_[1].fetch_add(1, std::memory_order_relaxed);
}

Expected<void, std::string> Http01Responder::Present(const std::string&,
                                                     const acme::Challenge& challenge,
                                                     const std::string& key_authorization) {
  board_.PutHttp01(challenge.token, key_authorization);
  return {};
}

void Http01Responder::CleanUp(const std::string&, const acme::Challenge& challenge) {
  board_.RemoveHttp01(challenge.token);
}

Expected<void, std::string> TlsAlpnResponder::Present(const std::string& identifier,
                                                      const acme::Challenge&,
                                                      const std::string& key_authorization) {
  auto pem = acme::MakeTlsAlpnCert(identifier, key_authorization);
  if (!pem) return Unexpected(pem.error());
  auto cert = ParseCertPair(pem->cert_pem, pem->key_pem, identifier, "TLS-ALPN-01 certificate",
                            "TLS-ALPN-01 key");
  if (!cert) return Unexpected(cert.error().message);
  // The CA sends the identifier as SNI; for an IP identifier, RFC 8738 §6 uses its reverse-DNS
  // name, which we do not answer: IP identifiers use HTTP-01.
  board_.PutTlsAlpn(identifier, *cert);
  return {};
}

void TlsAlpnResponder::CleanUp(const std::string& identifier, const acme::Challenge&) {
  board_.RemoveTlsAlpn(identifier);
}

void AnswerHttp01(const http::RequestHead& req, const ChallengeBoard& board, RouteResult& result) {
  if (result.route == RouteId::kBadRequest) return;
  const std::string_view path = RoutingPath(req);
  if (!path.starts_with(kAcmeChallengePath)) return;
  if (req.method != "GET" && req.method != "HEAD") return;
  const std::string_view token = path.substr(kAcmeChallengePath.size());
  http::Response response;
  response.headers.push_back({"Content-Type", "text/plain"});
  if (auto answer = board.AnswerHttp01(token)) {
    response.status = 200;
    response.body = std::move(*answer);
  } else {
    response.status = 404;
    response.body = "no such ACME challenge\n";
  }
  result.kind = RouteResult::Kind::kResponse;
  result.route = RouteId::kAcmeChallenge;
  result.response = std::move(response);
  result.close_after = false;
}

}  // namespace derpkit::relay
