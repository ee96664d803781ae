// The questions derp-relay's admission asks about a client, and what the answers mean
// (derp-protocol.md §10). Each Ask* call is one blocking request with its own deadline: call it
// only from an admission worker thread (relay/admission.h), never from a shard's event loop.
//
//   tailscaled (--verify-clients):  GET /localapi/v0/whois?addr=nodekey%3A<hex> on its socket
//       200 (a WhoIsResponse object) -> admit; 404 -> refuse (not in the tailnet); anything
//       else, a 200 that is not a JSON object included -> refuse (fail closed, as derper)
//   admission controller (--verify-client-url):  POST
//   {"NodePublic":"nodekey:<hex>","Source":"<ip>"}
//       200 {"Allow": true} -> admit; Allow false -> refuse; another status or a body that is not
//       that JSON (first 4 KiB) -> refuse; no response at all (refused, timeout, DNS, TLS) ->
//       admit or refuse as --verify-client-url-fail-open says
//
// Thread affinity: free functions without shared state; any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"
#include "lib/util/expected.h"

namespace derpkit::relay {

// Why a client was refused: the `reason` label of derp_admission_refusals_total.
enum class Refusal : std::uint8_t {
  kNotInAllowKeysFile,  // only --allow-keys-file is configured, and the key is not in it
  kNotInTailnet,        // tailscaled's whois answered 404
  kTailscaledError,     // tailscaled could not be asked, or answered something else
  kUrlDenied,           // the admission controller answered {"Allow": false}
  kUrlBadAnswer,        // the admission controller answered, but not 200 {"Allow": bool}
  kUrlUnreachable,      // no response from the admission controller, and fail-open is off
  kOverloaded,          // too many verifications in flight (or queued too long)
};
inline constexpr std::size_t kRefusalCount = 7;
inline constexpr std::array<std::string_view, kRefusalCount> kRefusalLabel = {
    "not_in_allow_keys_file", "not_in_tailnet",  "tailscaled_error", "url_denied",
    "url_bad_answer",         "url_unreachable", "overloaded"};

// How a client came to be admitted: the `via` label of derp_admission_admitted_total.
enum class AdmitVia : std::uint8_t {
  kAllowKeysFile,  // listed in --allow-keys-file
  kCache,          // a recent decision for the same key and source
  kVerifier,       // tailscaled and/or the admission controller said yes
  kFailOpen,       // the admission controller was unreachable and fail-open is on
};
inline constexpr std::size_t kAdmitViaCount = 4;
inline constexpr std::array<std::string_view, kAdmitViaCount> kAdmitViaLabel = {
    "allow_keys_file", "cache", "verifier", "fail_open"};

// One decision about one client.
struct Verdict {
  bool admit = false;
  AdmitVia via = AdmitVia::kVerifier;           // when admit
  Refusal refusal = Refusal::kTailscaledError;  // when !admit
  // The relay is stopping: neither counted nor cached.
  bool shutdown = false;
  // Answered from the decision cache (an admission then has via == kCache).
  bool cached = false;
  // What the verifier said, for the log line: "not found in local tailscaled".
  std::string detail;
};

// Asks tailscaled (LocalAPI on `socket_path`) whether `key` is a node it knows.
Verdict AskTailscaled(const std::string& socket_path, const derp::PublicKey& key,
                      std::chrono::milliseconds timeout);

// Asks the admission controller at `url` (validated at start-up) about `key` connecting from
// `source_ip` ("" when unknown).
Verdict AskAdmissionUrl(const std::string& url, const derp::PublicKey& key,
                        const std::string& source_ip, bool fail_open,
                        std::chrono::milliseconds timeout);

// tailscaled's own node key, from GET /localapi/v0/status?peers=false (for /debug/check).
Expected<derp::PublicKey, std::string> TailscaledSelfKey(const std::string& socket_path,
                                                         std::chrono::milliseconds timeout);

// The request body derper sends: {"NodePublic":"nodekey:<hex>","Source":"<ip>"}.
std::string AdmitRequestJson(const derp::PublicKey& key, const std::string& source_ip);

// Reads an admission controller's 200 body as Go's decoder into {Allow bool} would: a JSON
// object whose "Allow" member (name matched ignoring case) is true or false; a missing member or
// a top-level null is false. As Go's json.Decoder, it reads the first JSON value and ignores
// whatever follows it. The error says what is wrong.
Expected<bool, std::string> ParseAdmitResponse(std::string_view body);

// The most of an admission controller's body that is read (derper: 4 KiB).
inline constexpr std::size_t kAdmitResponseMaxBytes = 4096;

}  // namespace derpkit::relay
