// ACME JSON resources (see messages.h). Pure.
#include "lib/acme/messages.h"

#include <nlohmann/json.hpp>

namespace derpkit::acme {
namespace {

using nlohmann::json;

Expected<json, std::string> ParseObject(std::string_view text, std::string_view what) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Unexpected(std::string(what) + ": not valid JSON");
  if (!doc.is_object()) return Unexpected(std::string(what) + ": not a JSON object");
  return doc;
}

// Reads a string member: nullopt with `error` set when it is missing (and required) or not a
// string; "" when it is missing and optional.
std::optional<std::string> StringField(const json& obj, const char* name, bool required,
                                       std::string_view what, std::string& error) {
  const auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    if (!required) return std::string();
    error = std::string(what) + ": \"" + name + "\" is missing";
    return std::nullopt;
  }
  if (!it->is_string()) {
    error = std::string(what) + ": \"" + name + "\" is not a string";
    return std::nullopt;
  }
  return it->get<std::string>();
}

Expected<Problem, std::string> ProblemFrom(const json& obj, std::string_view what) {
  if (!obj.is_object()) return Unexpected(std::string(what) + ": not a JSON object");
  std::string error;
  Problem p;
  auto type = StringField(obj, "type", false, what, error);
  auto detail = StringField(obj, "detail", false, what, error);
  if (!type || !detail) return Unexpected(error);
  p.type = *type;
  p.detail = *detail;
  if (const auto it = obj.find("status"); it != obj.end() && !it->is_null()) {
    if (!it->is_number_integer())
      return Unexpected(std::string(what) + ": \"status\" is not an integer");
    const auto status = it->get<std::int64_t>();
    if (status < 100 || status > 599) {
      return Unexpected(std::string(what) + ": \"status\" " + std::to_string(status) +
                        " is not an HTTP status");
    }
    p.status = static_cast<int>(status);
  }
  return p;
}

// An optional "error" member holding a problem document.
Expected<std::optional<Problem>, std::string> OptionalProblem(const json& obj,
                                                              std::string_view what) {
  const auto it = obj.find("error");
  if (it == obj.end() || it->is_null()) return std::optional<Problem>();
  auto p = ProblemFrom(*it, std::string(what) + " error");
  if (!p) return Unexpected(p.error());
  return std::optional<Problem>(std::move(*p));
}

}  // namespace

Expected<Directory, std::string> ParseDirectory(std::string_view text) {
  auto doc = ParseObject(text, "directory");
  if (!doc) return Unexpected(doc.error());
  std::string error;
  auto nonce = StringField(*doc, "newNonce", true, "directory", error);
  auto account = nonce ? StringField(*doc, "newAccount", true, "directory", error) : std::nullopt;
  auto order = account ? StringField(*doc, "newOrder", true, "directory", error) : std::nullopt;
  if (!order) return Unexpected(error);
  Directory d{*nonce, *account, *order, ""};
  if (const auto meta = doc->find("meta"); meta != doc->end() && meta->is_object()) {
    auto tos = StringField(*meta, "termsOfService", false, "directory meta", error);
    if (!tos) return Unexpected(error);
    d.terms_of_service = *tos;
  }
  return d;
}

Expected<Problem, std::string> ParseProblem(std::string_view text) {
  auto doc = ParseObject(text, "problem");
  if (!doc) return Unexpected(doc.error());
  return ProblemFrom(*doc, "problem");
}

Expected<Authorization, std::string> ParseAuthorization(std::string_view text) {
  auto doc = ParseObject(text, "authorization");
  if (!doc) return Unexpected(doc.error());
  std::string error;
  Authorization a;
  const auto id = doc->find("identifier");
  if (id == doc->end() || !id->is_object()) {
    return Unexpected(std::string("authorization: \"identifier\" is missing or not an object"));
  }
  auto id_type = StringField(*id, "type", true, "authorization identifier", error);
  auto id_value =
      id_type ? StringField(*id, "value", true, "authorization identifier", error) : std::nullopt;
  auto status = id_value ? StringField(*doc, "status", true, "authorization", error) : std::nullopt;
  if (!status) return Unexpected(error);
  a.identifier_type = *id_type;
  a.identifier_value = *id_value;
  a.status = *status;
  const auto challenges = doc->find("challenges");
  if (challenges == doc->end() || !challenges->is_array()) {
    return Unexpected(std::string("authorization: \"challenges\" is missing or not an array"));
  }
  for (std::size_t i = 0; i < challenges->size(); ++i) {
    const json& c = (*challenges)[i];
    const std::string what = "authorization challenge " + std::to_string(i);
    if (!c.is_object()) return Unexpected(what + ": not a JSON object");
    Challenge ch;
    auto type = StringField(c, "type", true, what, error);
    auto url = type ? StringField(c, "url", true, what, error) : std::nullopt;
    auto token = url ? StringField(c, "token", false, what, error) : std::nullopt;
    auto ch_status = token ? StringField(c, "status", true, what, error) : std::nullopt;
    if (!ch_status) return Unexpected(error);
    ch.type = *type;
    ch.url = *url;
    ch.token = *token;
    ch.status = *ch_status;
    auto problem = OptionalProblem(c, what);
    if (!problem) return Unexpected(problem.error());
    ch.error = std::move(*problem);
    a.challenges.push_back(std::move(ch));
  }
  return a;
}

Expected<Order, std::string> ParseOrder(std::string_view text) {
  auto doc = ParseObject(text, "order");
  if (!doc) return Unexpected(doc.error());
  std::string error;
  Order o;
  auto status = StringField(*doc, "status", true, "order", error);
  auto finalize = status ? StringField(*doc, "finalize", true, "order", error) : std::nullopt;
  auto certificate =
      finalize ? StringField(*doc, "certificate", false, "order", error) : std::nullopt;
  if (!certificate) return Unexpected(error);
  o.status = *status;
  o.finalize = *finalize;
  o.certificate = *certificate;
  const auto authz = doc->find("authorizations");
  if (authz == doc->end() || !authz->is_array()) {
    return Unexpected(std::string("order: \"authorizations\" is missing or not an array"));
  }
  for (const json& url : *authz) {
    if (!url.is_string())
      return Unexpected(std::string("order: an authorization URL is not a string"));
    o.authorizations.push_back(url.get<std::string>());
  }
  auto problem = OptionalProblem(*doc, "order");
  if (!problem) return Unexpected(problem.error());
  o.error = std::move(*problem);
  return o;
}

std::string NewAccountPayload(std::string_view email) {
  json payload = {{"termsOfServiceAgreed", true}};
  if (!email.empty()) payload["contact"] = json::array({"mailto:" + std::string(email)});
  return payload.dump();
}

std::string NewOrderPayload(std::string_view identifier, bool is_ip) {
  json id = {{"type", is_ip ? "ip" : "dns"}, {"value", std::string(identifier)}};
  return json{{"identifiers", json::array({id})}}.dump();
}

std::string FinalizePayload(std::string_view csr_base64url) {
  return json{{"csr", std::string(csr_base64url)}}.dump();
}

std::string DescribeProblem(const Problem& problem) {
  constexpr std::string_view kPrefix = "urn:ietf:params:acme:error:";
  std::string_view type = problem.type;
  if (type.starts_with(kPrefix)) type.remove_prefix(kPrefix.size());
  std::string out = type.empty() ? std::string("problem") : std::string(type);
  if (!problem.detail.empty()) out += ": " + problem.detail;
  return out;
}

}  // namespace derpkit::acme
