// The ACME issuance flow over cpp-httplib (see client.h). Blocking; the certificate thread.
#include "lib/acme/client.h"

#include <httplib.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include "lib/http/body_text.h"
#include "lib/http/url.h"
#include "lib/net/http_failure.h"
#include "lib/util/netaddr.h"

namespace derpkit::acme {
namespace {

using std::chrono::milliseconds;

// badNonce is retryable (§6.5); pebble rejects 5% of good nonces on purpose. A few retries make
// an unlucky streak vanishingly rare without looping on a CA that rejects every nonce.
constexpr int kBadNonceRetries = 5;
constexpr milliseconds kDefaultPoll{1000};
constexpr milliseconds kMaxPoll{10000};
constexpr std::size_t kQuotedBodyBytes = 200;

Unexpected<Failure> Fail(FailureKind kind, std::string message) {
  return Unexpected(Failure{kind, std::move(message)});
}

// The wait a Retry-After header asks for (delay-seconds only; an HTTP date gets our default),
// within [1 s, 10 s].
milliseconds PollDelay(const std::string& retry_after) {
  int seconds = 0;
  const auto [end, ec] =
      std::from_chars(retry_after.data(), retry_after.data() + retry_after.size(), seconds);
  if (ec != std::errc() || end != retry_after.data() + retry_after.size()) return kDefaultPoll;
  return std::clamp(milliseconds(std::chrono::seconds(seconds)), kDefaultPoll, kMaxPoll);
}

}  // namespace

std::string_view FailureKindLabel(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNetwork:
      return "network";
    case FailureKind::kServer:
      return "server";
    case FailureKind::kBadResponse:
      return "bad_response";
    case FailureKind::kChallenge:
      return "challenge";
    case FailureKind::kTimeout:
      return "timeout";
    case FailureKind::kLocal:
      return "local";
    case FailureKind::kStopped:
      return "stopped";
  }
  return "unknown";
}

Client::Client(ClientOptions options, AccountKey key)
    : options_(std::move(options)), key_(std::move(key)) {}

Expected<Client::Reply, Failure> Client::Send(const std::string& method,
                                              const std::string& url_text,
                                              const std::string& body) {
  auto url = http::ParseUrl(url_text);
  if (!url) {
    return Fail(FailureKind::kBadResponse,
                "not a usable URL: " + url_text + ": " + std::string(http::Describe(url.error())));
  }
  httplib::Client client(http::SchemeHostPort(*url));
  client.set_connection_timeout(options_.request_timeout);
  client.set_read_timeout(options_.request_timeout);
  client.set_write_timeout(options_.request_timeout);
  client.set_follow_location(false);
  client.set_keep_alive(false);
  if (url->tls()) {
    client.enable_server_certificate_verification(true);
    if (!options_.ca_file.empty()) client.set_ca_cert_path(options_.ca_file);
  }
  const httplib::Headers headers = {{"User-Agent", options_.user_agent}};
  httplib::Result result = method == "GET" ? client.Get(url->target, headers)
                           : method == "HEAD"
                               ? client.Head(url->target, headers)
                               : client.Post(url->target, headers, body, "application/jose+json");
  if (!result) {
    net::HttpFailureContext context;
    context.where = url->HostHeader();
    context.timeout = options_.request_timeout;
    context.ca_file = options_.ca_file;
    context.trust_hint = " (see --acme-ca-file)";
    return Fail(
        FailureKind::kNetwork,
        method + " " + url_text + ": " +
            net::DescribeHttpFailure(result.error(), client.get_openssl_verify_result(), context));
  }
  Reply reply;
  reply.status = result->status;
  reply.body = std::move(result->body);
  reply.location = result->get_header_value("Location");
  reply.retry_after = result->get_header_value("Retry-After");
  if (std::string nonce = result->get_header_value("Replay-Nonce"); !nonce.empty()) {
    nonce_ = std::move(nonce);
  }
  return reply;
}

Expected<void, Failure> Client::EnsureDirectory() {
  if (directory_) return {};
  auto reply = Send("GET", options_.directory_url, "");
  if (!reply) return Unexpected(reply.error());
  if (reply->status != 200) {
    return Fail(FailureKind::kServer,
                "directory " + options_.directory_url + ": " +
                    http::DescribeStatus(reply->status, reply->body, kQuotedBodyBytes));
  }
  auto dir = ParseDirectory(reply->body);
  if (!dir) return Fail(FailureKind::kBadResponse, options_.directory_url + ": " + dir.error());
  directory_ = std::move(*dir);
  return {};
}

Expected<Client::Reply, Failure> Client::SignedPost(const std::string& url,
                                                    std::string_view payload,
                                                    std::string_view what) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      auto fresh = Send("HEAD", directory_->new_nonce, "");
      if (!fresh) return Unexpected(fresh.error());
      if (nonce_.empty()) {
        return Fail(FailureKind::kBadResponse,
                    "newNonce " + directory_->new_nonce + " sent no Replay-Nonce header");
      }
    }
    // new-account is signed with the key itself; everything after with the account URL.
    const std::string kid = url == directory_->new_account ? std::string() : account_url_;
    auto jws = key_.SignRequest(kid, std::exchange(nonce_, std::string()), url, payload);
    if (!jws) return Fail(FailureKind::kLocal, jws.error());
    auto reply = Send("POST", url, *jws);
    if (!reply) return Unexpected(reply.error());
    if (reply->status >= 200 && reply->status < 300) return reply;
    auto problem = ParseProblem(reply->body);
    if (problem && problem->type == kBadNonceProblem && attempt < kBadNonceRetries) continue;
    const std::string said =
        problem ? DescribeProblem(*problem)
                : http::DescribeStatus(reply->status, reply->body, kQuotedBodyBytes);
    return Fail(FailureKind::kServer, std::string(what) + ": the CA answered HTTP " +
                                          std::to_string(reply->status) + ": " + said);
  }
}

Expected<void, Failure> Client::EnsureAccount() {
  if (!account_url_.empty()) return {};
  auto reply =
      SignedPost(directory_->new_account, NewAccountPayload(options_.email), "new-account");
  if (!reply) return Unexpected(reply.error());
  if (reply->location.empty()) {
    return Fail(FailureKind::kBadResponse, "new-account: no Location header (account URL)");
  }
  account_url_ = reply->location;
  return {};
}

Expected<void, Failure> Client::Authorize(const std::string& authz_url,
                                          ChallengeResponder& responder, const Waiter& wait) {
  auto reply = SignedPost(authz_url, "", "authorization");
  if (!reply) return Unexpected(reply.error());
  auto authz = ParseAuthorization(reply->body);
  if (!authz) return Fail(FailureKind::kBadResponse, authz_url + ": " + authz.error());
  if (authz->status == "valid") return {};  // reused from an earlier order (§7.1.4)
  if (authz->status != "pending") {
    return Fail(FailureKind::kChallenge, "authorization for " + authz->identifier_value + " is " +
                                             authz->status + ", not pending");
  }
  const auto chosen = std::find_if(authz->challenges.begin(), authz->challenges.end(),
                                   [&](const Challenge& c) { return c.type == responder.type(); });
  if (chosen == authz->challenges.end()) {
    std::string offered;
    for (const Challenge& c : authz->challenges) offered += (offered.empty() ? "" : ", ") + c.type;
    return Fail(FailureKind::kChallenge, "the CA offers no " + std::string(responder.type()) +
                                             " challenge for " + authz->identifier_value +
                                             " (it offers: " + offered + ")");
  }
  const Challenge challenge = *chosen;
  if (challenge.token.empty()) {
    return Fail(FailureKind::kBadResponse, challenge.type + " challenge without a token");
  }
  const std::string identifier = authz->identifier_value;
  if (auto ok = responder.Present(identifier, challenge, KeyAuthorization(challenge.token, key_));
      !ok) {
    return Fail(FailureKind::kLocal, "cannot answer " + challenge.type + ": " + ok.error());
  }
  // From here the answer must be taken down again whatever happens.
  auto result = [&]() -> Expected<void, Failure> {
    auto accepted = SignedPost(challenge.url, "{}", challenge.type + " challenge");
    if (!accepted) return Unexpected(accepted.error());
    milliseconds delay = PollDelay(accepted->retry_after);
    const auto give_up = std::chrono::steady_clock::now() + options_.settle_timeout;
    for (;;) {
      if (!wait(delay)) return Fail(FailureKind::kStopped, "stopping");
      auto polled = SignedPost(authz_url, "", "authorization");
      if (!polled) return Unexpected(polled.error());
      auto now = ParseAuthorization(polled->body);
      if (!now) return Fail(FailureKind::kBadResponse, authz_url + ": " + now.error());
      if (now->status == "valid") return {};
      if (now->status != "pending") {
        std::string why = "the CA did not validate " + challenge.type + " for " + identifier +
                          " (authorization " + now->status + ")";
        for (const Challenge& c : now->challenges) {
          if (c.url == challenge.url && c.error) why += ": " + DescribeProblem(*c.error);
        }
        return Fail(FailureKind::kChallenge, why);
      }
      if (std::chrono::steady_clock::now() >= give_up) {
        return Fail(FailureKind::kTimeout,
                    "the authorization for " + identifier + " stayed pending for " +
                        std::to_string(options_.settle_timeout.count()) + " ms");
      }
      delay = PollDelay(polled->retry_after);
    }
  }();
  responder.CleanUp(identifier, challenge);
  return result;
}

Expected<Order, Failure> Client::PollOrder(const std::string& order_url, Order order,
                                           std::string_view until, const Waiter& wait) {
  const auto give_up = std::chrono::steady_clock::now() + options_.settle_timeout;
  milliseconds delay = kDefaultPoll;
  while (order.status != until) {
    if (order.status == "invalid") {
      return Fail(FailureKind::kServer,
                  "the order became invalid" +
                      (order.error ? ": " + DescribeProblem(*order.error) : std::string()));
    }
    if (order.status != "pending" && order.status != "ready" && order.status != "processing") {
      return Fail(FailureKind::kBadResponse, "order status \"" + order.status + "\" is unknown");
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      return Fail(FailureKind::kTimeout, "the order stayed " + order.status + " for " +
                                             std::to_string(options_.settle_timeout.count()) +
                                             " ms");
    }
    if (!wait(delay)) return Fail(FailureKind::kStopped, "stopping");
    auto reply = SignedPost(order_url, "", "order");
    if (!reply) return Unexpected(reply.error());
    auto parsed = ParseOrder(reply->body);
    if (!parsed) return Fail(FailureKind::kBadResponse, order_url + ": " + parsed.error());
    order = std::move(*parsed);
    delay = PollDelay(reply->retry_after);
  }
  return order;
}

Expected<IssuedCert, Failure> Client::Issue(const std::string& identifier,
                                            ChallengeResponder& responder, const Waiter& wait) {
  if (auto ok = EnsureDirectory(); !ok) return Unexpected(ok.error());
  if (auto ok = EnsureAccount(); !ok) return Unexpected(ok.error());

  const bool is_ip = netaddr::ParseIp(identifier).has_value();
  auto created = SignedPost(directory_->new_order, NewOrderPayload(identifier, is_ip), "new-order");
  if (!created) return Unexpected(created.error());
  if (created->location.empty()) {
    return Fail(FailureKind::kBadResponse, "new-order: no Location header (order URL)");
  }
  const std::string order_url = created->location;
  auto order = ParseOrder(created->body);
  if (!order) return Fail(FailureKind::kBadResponse, "new-order: " + order.error());

  if (order->status == "pending") {
    for (const std::string& authz_url : order->authorizations) {
      if (auto ok = Authorize(authz_url, responder, wait); !ok) return Unexpected(ok.error());
    }
  }
  auto ready = PollOrder(order_url, std::move(*order), "ready", wait);
  if (!ready) return Unexpected(ready.error());

  auto csr = MakeCsr(identifier);
  if (!csr) return Fail(FailureKind::kLocal, csr.error());
  auto finalized = SignedPost(ready->finalize, FinalizePayload(csr->csr_der_base64url), "finalize");
  if (!finalized) return Unexpected(finalized.error());
  auto after = ParseOrder(finalized->body);
  if (!after) return Fail(FailureKind::kBadResponse, "finalize: " + after.error());
  auto valid = PollOrder(order_url, std::move(*after), "valid", wait);
  if (!valid) return Unexpected(valid.error());
  if (valid->certificate.empty()) {
    return Fail(FailureKind::kBadResponse, "the valid order has no certificate URL");
  }
  auto download = SignedPost(valid->certificate, "", "certificate download");
  if (!download) return Unexpected(download.error());
  if (download->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Fail(FailureKind::kBadResponse, "the certificate download holds no PEM certificate");
  }
  return IssuedCert{std::move(download->body), std::move(csr->key_pem)};
}

}  // namespace derpkit::acme
