// Routing of the relay's HTTP surface (derp-protocol.md §3): which endpoint a request head
// reaches and, for everything except the DERP upgrade and /debug, the complete response.
//
// Pure: no sockets, no clock, no access checks of its own. The caller decides from the TCP peer
// whether the request may see /debug (§3.10) and passes that in; the caller writes the response
// with http::AppendResponse(now) and closes when `close_after` says so.
//
// Responses reproduce current derper byte for byte (modulo the Date value), including Go's
// header order: handler headers sorted by name, then Date, Content-Length, Content-Type,
// Connection. Known, deliberate differences from derper:
// - The default home page is our own text (it says this is a derpkit DERP relay).
// - Paths are matched as sent. Go's ServeMux percent-decodes and 301-redirects unclean paths
//   ("//x", "/a/../b"); we give such paths the home page.
// - CONNECT gets 403 on every main listener; derper intercepts it on its TLS listener only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "lib/http/head.h"

namespace derpkit::relay {

struct RouteContext {
  // --home: "" for the default page, "blank", or an http:// or https:// URL to redirect to.
  // Config validation rejects anything else; here any other value behaves like "".
  std::string home;
  bool derp_enabled = true;  // --derp=false answers /derp with 404
  // Whether this caller may access /debug (decided by the caller from the source address, §3.10).
  // Used here only for the home page's /debug/ link and the port-80 redirect of '/'.
  bool debug_allowed = false;
  // The separate --http-port listener beside a TLS main listener (§3.11).
  bool is_plain_port80_listener = false;
  bool tls = true;
  std::string hostname;
  // Body of /bootstrap-dns (§3.7): the JSON map of configured names, empty when none are.
  // Aliases the caller's cache; only read during Route().
  std::string_view bootstrap_dns_json;
};

struct DerpUpgrade {
  bool fast_start = false;    // Derp-Fast-Start: 1: write no HTTP response at all (§3.2 step 5)
  bool websocket = false;     // Upgrade: websocket with "derp" in Sec-WebSocket-Protocol (§3.4)
  std::string websocket_key;  // Sec-WebSocket-Key, trimmed (validated)
  // The subprotocol named in the 101: the first offered token equal to "derp" ignoring case, as
  // the client spelled it, or empty. Unless it is exactly "derp", derper completes the
  // handshake and then closes with status 1008 (policy violation); the caller does the same.
  std::string websocket_subprotocol;
  bool not_ideal = false;  // Ideal-Node header non-empty (§3.2 step 6)
};

// What the request reached; one label value each for a requests-by-route metric.
enum class RouteId {
  kDerp,           // /derp: an upgrade, 426, or 404 when DERP is disabled
  kProbe,          // /derp/probe, /derp/latency-check
  kGenerate204,    // /generate_204
  kBootstrapDns,   // /bootstrap-dns
  kRobots,         // /robots.txt
  kHome,           // / and every path nothing else claims
  kDebug,          // /debug and /debug/...
  kHttpsRedirect,  // port-80 listener: 302 to https, or 400 "Use HTTPS"
  kConnect,        // CONNECT: 403
  kBadRequest,     // missing, repeated or malformed Host header: 400
  kAcmeChallenge,  // port-80 listener, letsencrypt mode: /.well-known/acme-challenge/ (HTTP-01)
};
inline constexpr std::size_t kRouteIdCount = 11;

// Returns the metric label for `id` ("derp", "probe", "generate_204", ...).
std::string_view RouteName(RouteId id);

struct RouteResult {
  enum class Kind {
    kResponse,     // write `response`, then close if close_after
    kDerpUpgrade,  // hand the connection (and the read-ahead after head_size) to DERP
    kDebug,        // the caller's /debug handler takes it (it also checks access)
  } kind = Kind::kResponse;
  RouteId route = RouteId::kHome;
  // kResponse: the response to write. kDerpUpgrade with upgrade.websocket: the complete 101 to
  // write. kDerpUpgrade otherwise: empty; write DerpSwitchingProtocols(key) unless fast_start.
  http::Response response;
  DerpUpgrade upgrade;
  // The connection ends after this response: the client asked (Connection: close, or HTTP/1.0),
  // the request carries a body we don't read, or the endpoint always closes (/bootstrap-dns).
  // response.close_connection is set to match.
  bool close_after = false;
};

// Routes one request head. Never fails: every request gets some answer.
RouteResult Route(const http::RequestHead& req, const RouteContext& ctx);

// Sets what the request decides about writing result.response: close after it (close_after and
// response.close_connection) and HEAD (response.head_only). Route() calls it; a caller that puts
// another response in place (a /debug/ page, a 403) calls it again before writing.
void ApplyRequestFraming(const http::RequestHead& req, RouteResult& result);

// Returns derper's 101 for a plain DERP upgrade (§3.2 step 5), in derper's header order:
// Upgrade: DERP, Connection: Upgrade, Derp-Version: 2, Derp-Public-Key: <64 lowercase hex>.
http::Response DerpSwitchingProtocols(std::string_view server_public_key_hex);

// Returns the WebSocket 101 (§3.4): Connection, Sec-Websocket-Accept, Sec-Websocket-Protocol
// (omitted when `subprotocol` is empty), Upgrade; names spelled as Go canonicalises them.
http::Response WebSocketSwitchingProtocols(std::string_view websocket_key,
                                           std::string_view subprotocol);

// Returns the path requests are routed by: the path of an absolute-form target
// ("http://host/derp" -> "/derp"), otherwise the target before '?'.
std::string_view RoutingPath(const http::RequestHead& req);

}  // namespace derpkit::relay
