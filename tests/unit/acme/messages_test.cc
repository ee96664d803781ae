// lib/acme/messages: pebble's and RFC 8555's shapes parse to the right values; every malformed
// shape the client could not act on is refused with a message naming the field; the payloads
// are exactly the JSON RFC 8555 describes.
#include "lib/acme/messages.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace derpkit::acme {
namespace {

// What pebble 2.4 answers at /dir (its URLs; keyChange and revokeCert we do not use).
constexpr std::string_view kPebbleDirectory = R"({
   "keyChange": "https://127.0.0.1:14000/rollover-account-key",
   "meta": {"externalAccountRequired": false, "termsOfService": "data:text/plain,Do%20what%20thou%20wilt"},
   "newAccount": "https://127.0.0.1:14000/sign-me-up",
   "newNonce": "https://127.0.0.1:14000/nonce-plz",
   "newOrder": "https://127.0.0.1:14000/order-plz",
   "revokeCert": "https://127.0.0.1:14000/revoke-cert"
})";

TEST(ParseDirectory, ReadsTheThreeUrlsWeUseAndTheTerms) {
  auto d = ParseDirectory(kPebbleDirectory);
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->new_nonce, "https://127.0.0.1:14000/nonce-plz");
  EXPECT_EQ(d->new_account, "https://127.0.0.1:14000/sign-me-up");
  EXPECT_EQ(d->new_order, "https://127.0.0.1:14000/order-plz");
  EXPECT_EQ(d->terms_of_service, "data:text/plain,Do%20what%20thou%20wilt");
}

TEST(ParseDirectory, RefusesMissingOrMistypedUrlsByName) {
  EXPECT_EQ(ParseDirectory(R"({"newNonce":"n","newAccount":"a"})").error(),
            "directory: \"newOrder\" is missing");
  EXPECT_EQ(ParseDirectory(R"({"newNonce":1,"newAccount":"a","newOrder":"o"})").error(),
            "directory: \"newNonce\" is not a string");
  EXPECT_EQ(ParseDirectory("[1]").error(), "directory: not a JSON object");
  EXPECT_EQ(ParseDirectory("{").error(), "directory: not valid JSON");
  EXPECT_EQ(ParseDirectory(R"({"newNonce":"n","newAccount":"a","newOrder":"o","meta":)"
                           R"({"termsOfService":5}})")
                .error(),
            "directory meta: \"termsOfService\" is not a string");
}

TEST(ParseOrder, ReadsAPendingOrder) {
  auto o = ParseOrder(R"({"status":"pending","expires":"2026-12-01T00:00:00Z",
      "identifiers":[{"type":"dns","value":"relay.derpkit.test"}],
      "finalize":"https://ca/finalize/1","authorizations":["https://ca/authz/1","https://ca/authz/2"]})");
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->status, "pending");
  EXPECT_EQ(o->finalize, "https://ca/finalize/1");
  EXPECT_EQ(o->certificate, "");
  EXPECT_EQ(o->authorizations,
            (std::vector<std::string>{"https://ca/authz/1", "https://ca/authz/2"}));
  EXPECT_FALSE(o->error);
}

TEST(ParseOrder, ReadsTheCertificateUrlAndAProblem) {
  auto valid = ParseOrder(
      R"({"status":"valid","finalize":"f","authorizations":[],"certificate":"https://ca/cert/9"})");
  ASSERT_TRUE(valid) << valid.error();
  EXPECT_EQ(valid->certificate, "https://ca/cert/9");
  auto invalid = ParseOrder(R"({"status":"invalid","finalize":"f","authorizations":[],
      "error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no","status":403}})");
  ASSERT_TRUE(invalid) << invalid.error();
  ASSERT_TRUE(invalid->error);
  EXPECT_EQ(invalid->error->status, 403);
  EXPECT_EQ(DescribeProblem(*invalid->error), "unauthorized: no");
}

TEST(ParseOrder, RefusesWhatTheFlowCannotUse) {
  EXPECT_EQ(ParseOrder(R"({"finalize":"f","authorizations":[]})").error(),
            "order: \"status\" is missing");
  EXPECT_EQ(ParseOrder(R"({"status":"pending","authorizations":[]})").error(),
            "order: \"finalize\" is missing");
  EXPECT_EQ(ParseOrder(R"({"status":"pending","finalize":"f"})").error(),
            "order: \"authorizations\" is missing or not an array");
  EXPECT_EQ(ParseOrder(R"({"status":"pending","finalize":"f","authorizations":[1]})").error(),
            "order: an authorization URL is not a string");
  EXPECT_EQ(ParseOrder(R"({"status":"valid","finalize":"f","authorizations":[],"certificate":7})")
                .error(),
            "order: \"certificate\" is not a string");
  EXPECT_EQ(
      ParseOrder(R"({"status":"invalid","finalize":"f","authorizations":[],"error":"x"})").error(),
      "order error: not a JSON object");
}

TEST(ParseAuthorization, ReadsTheChallengesInOrder) {
  auto a = ParseAuthorization(R"({"status":"pending",
      "identifier":{"type":"dns","value":"relay.derpkit.test"},
      "challenges":[
        {"type":"http-01","url":"https://ca/chal/1","token":"t1","status":"pending"},
        {"type":"tls-alpn-01","url":"https://ca/chal/2","token":"t2","status":"pending"},
        {"type":"dns-account-01","url":"https://ca/chal/3","status":"pending"}]})");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->identifier_type, "dns");
  EXPECT_EQ(a->identifier_value, "relay.derpkit.test");
  ASSERT_EQ(a->challenges.size(), 3u);
  EXPECT_EQ(a->challenges[1].type, "tls-alpn-01");
  EXPECT_EQ(a->challenges[1].url, "https://ca/chal/2");
  EXPECT_EQ(a->challenges[1].token, "t2");
  EXPECT_EQ(a->challenges[2].token, "");  // a type we do not know, without a token: kept
}

TEST(ParseAuthorization, KeepsTheChallengeError) {
  auto a = ParseAuthorization(R"({"status":"invalid","identifier":{"type":"dns","value":"x"},
      "challenges":[{"type":"http-01","url":"u","token":"t","status":"invalid",
        "error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused","status":400}}]})");
  ASSERT_TRUE(a) << a.error();
  ASSERT_TRUE(a->challenges[0].error);
  EXPECT_EQ(DescribeProblem(*a->challenges[0].error), "connection: refused");
}

TEST(ParseAuthorization, RefusesMalformedShapesByName) {
  EXPECT_EQ(ParseAuthorization(R"({"status":"pending","challenges":[]})").error(),
            "authorization: \"identifier\" is missing or not an object");
  EXPECT_EQ(
      ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns"},"challenges":[]})")
          .error(),
      "authorization identifier: \"value\" is missing");
  EXPECT_EQ(
      ParseAuthorization(R"({"identifier":{"type":"dns","value":"x"},"challenges":[]})").error(),
      "authorization: \"status\" is missing");
  EXPECT_EQ(
      ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns","value":"x"}})").error(),
      "authorization: \"challenges\" is missing or not an array");
  EXPECT_EQ(ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns","value":"x"},
                                  "challenges":[{"type":"http-01","token":"t","status":"p"}]})")
                .error(),
            "authorization challenge 0: \"url\" is missing");
  EXPECT_EQ(ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns","value":"x"},
                                  "challenges":[3]})")
                .error(),
            "authorization challenge 0: not a JSON object");
}

TEST(ParseProblem, ReadsBadNonceAndRefusesNonsenseStatus) {
  auto p = ParseProblem(
      R"({"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce","status":400})");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->type, kBadNonceProblem);
  EXPECT_EQ(p->status, 400);
  EXPECT_EQ(ParseProblem(R"({"type":"x","status":7})").error(),
            "problem: \"status\" 7 is not an HTTP status");
  EXPECT_EQ(ParseProblem(R"({"type":"x","status":"400"})").error(),
            "problem: \"status\" is not an integer");
  EXPECT_EQ(ParseProblem("<html>").error(), "problem: not valid JSON");
}

TEST(Payloads, AreTheJsonRfc8555Describes) {
  EXPECT_EQ(nlohmann::json::parse(NewAccountPayload("ops@example.com")),
            nlohmann::json::parse(
                R"({"termsOfServiceAgreed":true,"contact":["mailto:ops@example.com"]})"));
  EXPECT_EQ(nlohmann::json::parse(NewAccountPayload("")),
            nlohmann::json::parse(R"({"termsOfServiceAgreed":true})"));
  EXPECT_EQ(
      nlohmann::json::parse(NewOrderPayload("relay.example.com", false)),
      nlohmann::json::parse(R"({"identifiers":[{"type":"dns","value":"relay.example.com"}]})"));
  EXPECT_EQ(nlohmann::json::parse(NewOrderPayload("192.0.2.7", true)),
            nlohmann::json::parse(R"({"identifiers":[{"type":"ip","value":"192.0.2.7"}]})"));
  EXPECT_EQ(FinalizePayload("MIIB"), R"({"csr":"MIIB"})");
}

TEST(DescribeProblem, DropsTheUrnPrefix) {
  EXPECT_EQ(DescribeProblem(Problem{"urn:ietf:params:acme:error:rateLimited", "too many", 429}),
            "rateLimited: too many");
  EXPECT_EQ(DescribeProblem(Problem{"", "", 0}), "problem");
}

}  // namespace
}  // namespace derpkit::acme
