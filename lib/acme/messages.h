// ACME (RFC 8555) resources as the relay's certificate client reads and writes them: the
// directory (§7.1.1), orders (§7.1.3), authorizations and challenges (§7.1.4, §8), problem
// documents (§6.7, RFC 7807), and the JSON payloads of new-account, new-order and finalize.
//
// Pure: JSON text in, values out (nlohmann-json), no I/O and no state. Every parser rejects what
// the client could not act on with a message naming the field ("order: \"finalize\" is not a
// string"); fields the client does not use are ignored, as RFC 8555 §7.1 asks of clients.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/expected.h"

namespace derpkit::acme {

struct Directory {
  std::string new_nonce;
  std::string new_account;
  std::string new_order;
  std::string terms_of_service;  // meta.termsOfService; empty when absent
};

// An RFC 7807 problem document ("urn:ietf:params:acme:error:badNonce", ...).
struct Problem {
  std::string type;
  std::string detail;
  int status = 0;  // 0 when absent
};

struct Challenge {
  std::string type;  // "http-01", "tls-alpn-01", "dns-01", or one we do not know
  std::string url;
  std::string token;  // empty for types without one
  std::string status;
  std::optional<Problem> error;
};

struct Authorization {
  std::string identifier_type;  // "dns" or "ip"
  std::string identifier_value;
  std::string status;  // pending, valid, invalid, deactivated, expired, revoked
  std::vector<Challenge> challenges;
};

struct Order {
  std::string status;  // pending, ready, processing, valid, invalid
  std::vector<std::string> authorizations;
  std::string finalize;
  std::string certificate;  // empty until the order is valid
  std::optional<Problem> error;
};

Expected<Directory, std::string> ParseDirectory(std::string_view json);
Expected<Problem, std::string> ParseProblem(std::string_view json);
Expected<Authorization, std::string> ParseAuthorization(std::string_view json);
Expected<Order, std::string> ParseOrder(std::string_view json);

// The badNonce problem type: the request may be retried with the nonce of that response (§6.5).
inline constexpr std::string_view kBadNonceProblem = "urn:ietf:params:acme:error:badNonce";

// Returns the new-account payload (§7.3): terms agreed, and "mailto:<email>" as the only contact
// when `email` is non-empty.
std::string NewAccountPayload(std::string_view email);

// Returns the new-order payload (§7.4) for one identifier: type "ip" for an IP literal (RFC 8738),
// else "dns".
std::string NewOrderPayload(std::string_view identifier, bool is_ip);

// Returns the finalize payload (§7.4): {"csr": <base64url DER>}.
std::string FinalizePayload(std::string_view csr_base64url);

// Returns a one-line summary of a problem for logs: "<type without the urn prefix>: <detail>".
std::string DescribeProblem(const Problem& problem);

}  // namespace derpkit::acme
