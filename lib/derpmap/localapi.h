// A client for tailscaled's LocalAPI: one GET over its unix socket, the exchange tailscaled's own
// Go client (client/local) makes, in plain blocking POSIX I/O under one deadline. Shared by the
// "local" DERP map source (load_local.cc) and derp-relay's client verification (whois, status).
//
// tailscaled refuses (403 "invalid localapi request") any request whose Host is not
// "local-tailscaled.sock" or that carries Origin or Referer: that is its defence against browsers
// reaching a world-writable socket. It needs no other header; Go's client adds Tailscale-Cap
// (its capability version, informational) and basic auth only on macOS, neither of which we
// send. We ask for Connection: close, so the answer is the only thing on the connection.
//
// Blocking; any thread (each call has its own socket). Never call it from an event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit::localapi {

// tailscaled's LocalAPI socket on Linux.
inline constexpr const char* kDefaultSocket = "/var/run/tailscale/tailscaled.sock";

// How much of a non-200 answer's body is kept (enough to quote its first line).
inline constexpr std::size_t kErrorBodyBytes = 4096;

struct GetRequest {
  std::string socket_path = kDefaultSocket;
  // The request target, already percent-encoded: "/localapi/v0/derpmap".
  std::string target;
  // Bound on connect + request + the whole answer.
  std::chrono::milliseconds timeout{10000};
  // A 200 answer with a longer body is a failure; other answers are cut at kErrorBodyBytes.
  std::size_t max_body_bytes = 4 * 1024 * 1024;
};

// tailscaled's answer, whatever its status.
struct Answer {
  int status = 0;
  std::string reason;  // the reason phrase ("Not Found")
  std::string body;    // chunked coding removed; cut at kErrorBodyBytes unless status is 200
};

// GETs `request.target` from tailscaled. The error is one line phrased for the operator, e.g.
// "tailscaled's socket /x does not exist (is tailscaled running? use --socket)", "no answer from
// tailscaled within 200 ms", "tailscaled's answer is larger than the limit of 1000 bytes".
Expected<Answer, std::string> Get(const GetRequest& request);

// Describes a non-200 answer: "tailscaled answered 403 Forbidden: access denied" (status,
// reason phrase, and the first non-blank line of the body when there is one).
std::string DescribeAnswer(const Answer& answer);

// Percent-encodes `value` for a query string as Go's url.QueryEscape does ("nodekey:ab" ->
// "nodekey%3Aab"; a space becomes '+').
std::string QueryEscape(std::string_view value);

}  // namespace derpkit::localapi
