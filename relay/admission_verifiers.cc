// The blocking verifier requests of client admission (see admission_verifiers.h). Runs on
// admission worker threads only.
#include "relay/admission_verifiers.h"

#include <httplib.h>
#include <openssl/x509.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lib/derpmap/localapi.h"
#include "lib/http/body_text.h"
#include "lib/http/head.h"
#include "lib/http/url.h"
#include "lib/net/http_failure.h"

namespace derpkit::relay {
namespace {

using VerifierClock = std::chrono::steady_clock;

// whois answers carry the node, its user and its capabilities: small, but not tiny.
constexpr std::size_t kWhoisMaxBytes = 1024 * 1024;
constexpr std::size_t kStatusMaxBytes = 4 * 1024 * 1024;
constexpr std::size_t kQuotedBodyBytes = 200;

Verdict AdmitVerdict(AdmitVia via, std::string detail) {
  Verdict v;
  v.admit = true;
  v.via = via;
  v.detail = std::move(detail);
  return v;
}

Verdict RefuseVerdict(Refusal why, std::string detail) {
  Verdict v;
  v.refusal = why;
  v.detail = std::move(detail);
  return v;
}

}  // namespace

std::string AdmitRequestJson(const derp::PublicKey& key, const std::string& source_ip) {
  // An IP address in text needs no JSON escaping; the key text is hex.
  return "{\"NodePublic\":\"" + key.ToText() + "\",\"Source\":\"" + source_ip + "\"}";
}

Expected<bool, std::string> ParseAdmitResponse(std::string_view body) {
  // Go's json.Decoder reads the first value and ignores what follows it: strict = false.
  nlohmann::json json;
  nlohmann::detail::json_sax_dom_parser<nlohmann::json> dom(json, /*allow_exceptions_=*/false);
  const bool parsed = nlohmann::json::sax_parse(body, &dom, nlohmann::json::input_format_t::json,
                                                /*strict=*/false);
  if (!parsed || dom.is_errored()) return Unexpected(std::string("the body is not JSON"));
  if (json.is_null()) return false;
  if (!json.is_object()) return Unexpected(std::string("the body is not a JSON object"));
  // Go's decoder prefers the exact name and otherwise takes a case-insensitive match.
  auto member = json.find("Allow");
  for (auto it = json.begin(); member == json.end() && it != json.end(); ++it) {
    if (http::EqualsIgnoreCase(it.key(), "Allow")) member = it;
  }
  if (member == json.end() || member->is_null()) return false;
  if (!member->is_boolean()) return Unexpected(std::string("\"Allow\" is not true or false"));
  return member->get<bool>();
}

Verdict AskTailscaled(const std::string& socket_path, const derp::PublicKey& key,
                      std::chrono::milliseconds timeout) {
  localapi::GetRequest request;
  request.socket_path = socket_path;
  request.target = "/localapi/v0/whois?addr=" + localapi::QueryEscape(key.ToText());
  request.timeout = timeout;
  request.max_body_bytes = kWhoisMaxBytes;
  auto answer = localapi::Get(request);
  if (!answer) return RefuseVerdict(Refusal::kTailscaledError, answer.error());
  if (answer->status == 404) {
    return RefuseVerdict(Refusal::kNotInTailnet, "not found in local tailscaled");
  }
  if (answer->status != 200) {
    std::string detail = localapi::DescribeAnswer(*answer);
    // derper's hint (Tailscale issue 12617): tailscaled before 1.68 cannot look up node keys.
    if (answer->status == 400 && answer->body.find("'addr' parameter") != std::string::npos) {
      detail += " (is tailscaled older than this relay expects? whois by node key needs 1.68+)";
    }
    return RefuseVerdict(Refusal::kTailscaledError, std::move(detail));
  }
  const auto json = nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return RefuseVerdict(Refusal::kTailscaledError,
                         "tailscaled's whois answer is not a JSON object");
  }
  return AdmitVerdict(AdmitVia::kVerifier, "known to local tailscaled");
}

Verdict AskAdmissionUrl(const std::string& url_text, const derp::PublicKey& key,
                        const std::string& source_ip, bool fail_open,
                        std::chrono::milliseconds timeout) {
  auto url = http::ParseUrl(url_text);
  if (!url) {
    return RefuseVerdict(Refusal::kUrlBadAnswer, "--verify-client-url is not a usable URL: " +
                                                     std::string(Describe(url.error())));
  }
  const auto deadline = VerifierClock::now() + timeout;
  httplib::Client client(http::SchemeHostPort(*url));
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(false);
  client.set_follow_location(false);  // derper's Go client would follow; a redirect is refused
  if (url->tls()) client.enable_server_certificate_verification(true);

  httplib::Request request;
  request.method = "POST";
  request.path = url->target;
  request.headers = {{"Host", url->HostHeader()},
                     {"User-Agent", "derpkit/" DERPKIT_VERSION},
                     {"Content-Type", "application/json"}};
  request.body = AdmitRequestJson(key, source_ip);
  int status = 0;
  std::string body;
  bool past_deadline = false;
  request.response_handler = [&status](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  request.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
    if (VerifierClock::now() > deadline) {
      past_deadline = true;
      return false;
    }
    // derper decodes from a 4 KiB LimitReader: what follows is never read.
    const std::size_t room = kAdmitResponseMaxBytes - body.size();
    body.append(data, std::min(size, room));
    return body.size() < kAdmitResponseMaxBytes;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  client.send(request, response, error);

  if (status == 0) {
    // No response at all: the one case that may fail open.
    const long verify =
        error == httplib::Error::SSLServerVerification ? client.get_openssl_verify_result() : 0;
    net::HttpFailureContext context;
    context.where = url->HostHeader();
    context.timeout = timeout;
    const std::string why = net::DescribeHttpFailure(error, verify, context);
    if (fail_open)
      return AdmitVerdict(AdmitVia::kFailOpen, "admission controller unreachable: " + why);
    return RefuseVerdict(Refusal::kUrlUnreachable, "admission controller unreachable: " + why);
  }
  if (status != 200) {
    return RefuseVerdict(
        Refusal::kUrlBadAnswer,
        "admission controller answered " + http::DescribeStatus(status, body, kQuotedBodyBytes));
  }
  if (past_deadline) {
    return RefuseVerdict(
        Refusal::kUrlBadAnswer,
        "admission controller's answer did not arrive within " + net::MillisText(timeout));
  }
  auto allow = ParseAdmitResponse(body);
  if (!allow) {
    const bool cut = body.size() >= kAdmitResponseMaxBytes;
    return RefuseVerdict(
        Refusal::kUrlBadAnswer,
        "admission controller's answer is not {\"Allow\": true|false}: " + allow.error() +
            (cut ? " (in the first 4096 bytes, all we read)" : ""));
  }
  if (!*allow) return RefuseVerdict(Refusal::kUrlDenied, "admission controller said Allow: false");
  return AdmitVerdict(AdmitVia::kVerifier, "admission controller said Allow: true");
}

Expected<derp::PublicKey, std::string> TailscaledSelfKey(const std::string& socket_path,
                                                         std::chrono::milliseconds timeout) {
  localapi::GetRequest request;
  request.socket_path = socket_path;
  request.target = "/localapi/v0/status?peers=false";
  request.timeout = timeout;
  request.max_body_bytes = kStatusMaxBytes;
  auto answer = localapi::Get(request);
  if (!answer) return Unexpected(answer.error());
  if (answer->status != 200) return Unexpected(localapi::DescribeAnswer(*answer));
  const auto json = nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return Unexpected(std::string("tailscaled's status answer is not a JSON object"));
  }
  const auto self = json.find("Self");
  if (self == json.end() || !self->is_object()) {
    return Unexpected(std::string("tailscaled has no node yet (is it logged in?)"));
  }
  const auto key = self->find("PublicKey");
  if (key == self->end() || !key->is_string()) {
    return Unexpected(std::string("tailscaled's status has no Self.PublicKey"));
  }
  auto parsed = derp::PublicKey::FromText(key->get<std::string>());
  if (!parsed || parsed->IsZero()) {
    return Unexpected(
        std::string("tailscaled's Self.PublicKey is not a node key (is it logged in?)"));
  }
  return *parsed;
}

}  // namespace derpkit::relay
