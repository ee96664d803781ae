#include "relay/http_routes.h"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "lib/http/body_text.h"
#include "lib/http/websocket_accept.h"

namespace derpkit::relay {
namespace {

using http::Header;
using http::RequestHead;
using http::Response;

constexpr std::string_view kTextPlain = "text/plain; charset=utf-8";
constexpr std::string_view kTextHtml = "text/html; charset=utf-8";

// tsweb.AddBrowserHeaders (§3.9), by name. Callers merge them into a sorted header list.
constexpr std::array<std::pair<std::string_view, std::string_view>, 4> kBrowserHeaders = {{
    {"Content-Security-Policy",
     "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
     "block-all-mixed-content; object-src 'none'"},
    {"Strict-Transport-Security", "max-age=63072000; includeSubDomains"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
}};

// Go's http.Header holds one entry per canonical name and writes them sorted. Handlers here set
// a handful of fields, so a sorted insert into a vector is all that needs.
class SortedHeaders {
 public:
  SortedHeaders& Set(std::string_view name, std::string_view value) {
    auto it = headers_.begin();
    while (it != headers_.end() && it->name < name) ++it;
    if (it != headers_.end() && it->name == name) {
      it->value = std::string(value);
    } else {
      headers_.insert(it, Header{std::string(name), std::string(value)});
    }
    return *this;
  }
  SortedHeaders& SetBrowserHeaders() {
    for (const auto& [name, value] : kBrowserHeaders) Set(name, value);
    return *this;
  }
  std::vector<Header> Take() { return std::move(headers_); }

 private:
  std::vector<Header> headers_;
};

bool IsGetOrHead(const RequestHead& req) { return req.method == "GET" || req.method == "HEAD"; }

// http.Error: text/plain, nosniff, and the message plus a newline (Go uses Fprintln).
Response ErrorResponse(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.headers = SortedHeaders()
                  .Set("Content-Type", kTextPlain)
                  .Set("X-Content-Type-Options", "nosniff")
                  .Take();
  r.body = std::string(message) + "\n";
  return r;
}

// Go's hexEscapeNonASCII for the Location value: bytes >= 0x80 become %XX.
std::string HexEscapeNonAscii(std::string_view s) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
  return out;
}

// http.Redirect for an absolute URL: Location, and for GET/HEAD a text/html Content-Type (unless
// already set) with a one-link body, which only GET gets.
Response Redirect(const RequestHead& req, std::string_view url, SortedHeaders headers) {
  Response r;
  r.status = 302;
  headers.Set("Location", HexEscapeNonAscii(url));
  if (IsGetOrHead(req)) headers.Set("Content-Type", kTextHtml);
  if (req.method == "GET") {
    r.body = "<a href=\"" + http::HtmlEscape(url) + "\">" + std::string(http::ReasonPhrase(302)) +
             "</a>.\n\n";
  }
  r.headers = headers.Take();
  return r;
}

// Go quotes offending values with %q in its error texts; this is close enough for printable
// ASCII, and escapes the rest.
std::string Quote(std::string_view s) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b >= 0x20 && b < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
  return out + "\"";
}

std::vector<std::string_view> HeaderValues(const RequestHead& req, std::string_view name) {
  std::vector<std::string_view> values;
  for (const Header& h : req.headers) {
    if (http::EqualsIgnoreCase(h.name, name)) values.push_back(h.value);
  }
  return values;
}

std::string_view HeaderOrEmpty(const RequestHead& req, std::string_view name) {
  const std::string* v = req.Find(name);
  return v ? std::string_view(*v) : std::string_view();
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// Go's httpguts.ValidHostHeader: the bytes a Host (host, IP literal, port) may contain.
bool IsValidHost(std::string_view host) {
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!$%&'()*+,-.:;=[]_~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// Why the connection has to close after the response, following Go's server: the client asked,
// HTTP/1.0 (we don't do 1.0 keep-alive), or a body follows that nobody will read.
bool MustClose(const RequestHead& req) {
  if (req.version_minor == 0) return true;
  if (const std::string* c = req.Find("Connection"); c && http::HasToken(*c, "close")) return true;
  if (req.Has("Transfer-Encoding")) return true;
  const std::string* length = req.Find("Content-Length");
  return length != nullptr && *length != "0";
}

RouteResult Respond(RouteId route, Response response) {
  RouteResult result;
  result.kind = RouteResult::Kind::kResponse;
  result.route = route;
  result.response = std::move(response);
  return result;
}

// §3.5: derpserver.ProbeHandler.
Response Probe(const RequestHead& req) {
  if (!IsGetOrHead(req)) return ErrorResponse(405, "bogus probe method");
  Response r;
  r.headers = SortedHeaders().Set("Access-Control-Allow-Origin", "*").Take();
  return r;
}

bool IsChallengeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == ':';
}

// §3.6: derpserver.ServeNoContent, any method.
Response NoContent(const RequestHead& req) {
  SortedHeaders headers;
  headers.Set("Cache-Control", "no-cache, no-store, must-revalidate, no-transform, max-age=0");
  if (const std::string* challenge = req.Find("X-Tailscale-Challenge");
      challenge && !challenge->empty() && challenge->size() <= 64 &&
      std::all_of(challenge->begin(), challenge->end(), IsChallengeChar)) {
    headers.Set("X-Tailscale-Response", "response " + *challenge);
  }
  Response r;
  r.status = 204;
  r.headers = headers.Take();
  return r;
}

// The default home page (§3.8), in our words. Static apart from two optional paragraphs.
std::string HomePage(const RouteContext& ctx) {
  std::string page =
      "<!DOCTYPE html>\n"
      "<html><head><title>DERP relay</title></head><body>\n"
      "<h1>DERP relay</h1>\n"
      "<p>\n"
      "  This server relays end-to-end encrypted traffic for\n"
      "  <a href=\"https://tailscale.com/\">Tailscale</a> clients that cannot reach each other\n"
      "  directly (DERP), and answers STUN so they can find their public address.\n"
      "  It runs derpkit, an independent implementation of the DERP protocol.\n"
      "</p>\n"
      "<p>\n"
      "  There is nothing to see here with a browser. See\n"
      "  <a href=\"https://tailscale.com/kb/1232/derp-servers\">About DERP servers</a>.\n"
      "</p>\n";
  if (!ctx.derp_enabled) page += "<p>Status: <b>disabled</b></p>\n";
  if (ctx.debug_allowed) page += "<p>Debug info at <a href='/debug/'>/debug/</a>.</p>\n";
  page += "</body></html>\n";
  return page;
}

// §3.8: the catch-all handler, browser headers first (derper adds them before --home's handler).
Response Home(const RequestHead& req, const RouteContext& ctx) {
  SortedHeaders headers;
  headers.SetBrowserHeaders();
  if (ctx.home.starts_with("http://") || ctx.home.starts_with("https://")) {
    return Redirect(req, ctx.home, std::move(headers));
  }
  Response r;
  r.headers = headers.Set("Content-Type", kTextHtml).Take();
  if (ctx.home != "blank") r.body = HomePage(ctx);
  return r;
}

Response Robots() {
  Response r;
  r.headers = SortedHeaders().SetBrowserHeaders().Take();
  r.body = "User-agent: *\nDisallow: /\n";
  return r;
}

// §3.7: handleBootstrapDNS. Always closes: clients ask once per region and move on.
Response BootstrapDns(const RouteContext& ctx) {
  Response r;
  r.headers = SortedHeaders()
                  .SetBrowserHeaders()
                  .Set("Content-Type", "application/json")
                  .Set("Connection", "close")
                  .Take();
  r.body = std::string(ctx.bootstrap_dns_json);
  return r;
}

// coder/websocket's verifyClientRequest, for a request already known to be Upgrade: websocket.
// Returns the error response, or nothing when the handshake may proceed.
std::optional<Response> CheckWebSocketHandshake(const RequestHead& req) {
  const auto upgrade_required = [](std::string message) {
    Response r = ErrorResponse(426, message);
    r.headers = SortedHeaders()
                    .Set("Connection", "Upgrade")
                    .Set("Content-Type", kTextPlain)
                    .Set("Upgrade", "websocket")
                    .Set("X-Content-Type-Options", "nosniff")
                    .Take();
    return r;
  };
  if (req.version_minor < 1) {
    return upgrade_required(
        "WebSocket protocol violation: handshake request must be at least HTTP/1.1: "
        "\"HTTP/1.0\"");
  }
  const std::vector<std::string_view> connection = HeaderValues(req, "Connection");
  if (!std::any_of(connection.begin(), connection.end(),
                   [](std::string_view v) { return http::HasToken(v, "upgrade"); })) {
    return upgrade_required("WebSocket protocol violation: Connection header " +
                            Quote(HeaderOrEmpty(req, "Connection")) + " does not contain Upgrade");
  }
  if (req.method != "GET") {
    return ErrorResponse(405,
                         "WebSocket protocol violation: handshake request method is not GET but " +
                             Quote(req.method));
  }
  if (HeaderOrEmpty(req, "Sec-WebSocket-Version") != "13") {
    Response r =
        ErrorResponse(400, "unsupported WebSocket protocol version (only 13 is supported): " +
                               Quote(HeaderOrEmpty(req, "Sec-WebSocket-Version")));
    r.headers = SortedHeaders()
                    .Set("Content-Type", kTextPlain)
                    .Set("Sec-Websocket-Version", "13")
                    .Set("X-Content-Type-Options", "nosniff")
                    .Take();
    return r;
  }
  const std::vector<std::string_view> keys = HeaderValues(req, "Sec-WebSocket-Key");
  if (keys.empty()) {
    return ErrorResponse(400, "WebSocket protocol violation: missing Sec-WebSocket-Key");
  }
  if (keys.size() > 1) {
    return ErrorResponse(400, "WebSocket protocol violation: multiple Sec-WebSocket-Key headers");
  }
  if (!http::IsValidWebSocketKey(keys[0])) {
    return ErrorResponse(400, "WebSocket protocol violation: invalid Sec-WebSocket-Key " +
                                  Quote(keys[0]) + ", must be a 16 byte base64 encoded string");
  }
  return std::nullopt;
}

// coder/websocket's selectSubprotocol with derper's single offer, "derp": the first token of
// any Sec-WebSocket-Protocol field equal to it ignoring case, returned as the client wrote it.
std::string SelectSubprotocol(const RequestHead& req) {
  for (std::string_view value : HeaderValues(req, "Sec-WebSocket-Protocol")) {
    while (!value.empty()) {
      const std::size_t comma = value.find(',');
      std::string_view token = value.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
        token.remove_prefix(1);
      }
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
        token.remove_suffix(1);
      }
      if (http::EqualsIgnoreCase(token, "derp")) return std::string(token);
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  return {};
}

// §3.2–3.4: /derp, with derper's WebSocket wrapper in front of derpserver.Handler.
RouteResult Derp(const RequestHead& req, const RouteContext& ctx) {
  if (!ctx.derp_enabled) return Respond(RouteId::kDerp, ErrorResponse(404, "derp server disabled"));

  const std::string upgrade = ToLower(HeaderOrEmpty(req, "Upgrade"));
  DerpUpgrade up;
  up.not_ideal = !HeaderOrEmpty(req, "Ideal-Node").empty();
  if (upgrade == "websocket" &&
      HeaderOrEmpty(req, "Sec-WebSocket-Protocol").find("derp") != std::string_view::npos) {
    if (auto error = CheckWebSocketHandshake(req)) return Respond(RouteId::kDerp, *error);
    up.websocket = true;
    up.websocket_key = std::string(HeaderOrEmpty(req, "Sec-WebSocket-Key"));
    up.websocket_subprotocol = SelectSubprotocol(req);
    RouteResult result;
    result.kind = RouteResult::Kind::kDerpUpgrade;
    result.route = RouteId::kDerp;
    result.response = WebSocketSwitchingProtocols(up.websocket_key, up.websocket_subprotocol);
    result.upgrade = std::move(up);
    return result;
  }
  // "websocket" without the derp subprotocol: very old clients said WebSocket but spoke raw DERP.
  if (upgrade != "derp" && upgrade != "websocket") {
    return Respond(RouteId::kDerp, ErrorResponse(426, "DERP requires connection upgrade"));
  }
  up.fast_start = HeaderOrEmpty(req, "Derp-Fast-Start") == "1";
  RouteResult result;
  result.kind = RouteResult::Kind::kDerpUpgrade;
  result.route = RouteId::kDerp;
  result.response = Response{};
  result.response.status = 101;
  result.upgrade = std::move(up);
  return result;
}

bool IsDebugPath(std::string_view path) { return path == "/debug" || path.starts_with("/debug/"); }

// derper's main ServeMux (everything but the CONNECT interception in front of it).
RouteResult RouteMux(const RequestHead& req, const RouteContext& ctx) {
  const std::string_view path = RoutingPath(req);
  if (path == "/derp") return Derp(req, ctx);
  if (path == "/derp/probe" || path == "/derp/latency-check") {
    return Respond(RouteId::kProbe, Probe(req));
  }
  if (path == "/generate_204") return Respond(RouteId::kGenerate204, NoContent(req));
  if (path == "/bootstrap-dns") return Respond(RouteId::kBootstrapDns, BootstrapDns(ctx));
  if (path == "/robots.txt") return Respond(RouteId::kRobots, Robots());
  if (IsDebugPath(path)) {
    RouteResult result;
    result.kind = RouteResult::Kind::kDebug;
    result.route = RouteId::kDebug;
    return result;
  }
  return Respond(RouteId::kHome, Home(req, ctx));
}

// §3.11: the plain listener beside a TLS main listener (derper's port80mux + Port80Handler).
RouteResult RoutePort80(const RequestHead& req, const RouteContext& ctx) {
  if (RoutingPath(req) == "/generate_204") return Respond(RouteId::kGenerate204, NoContent(req));
  // Port80Handler looks at the raw request-URI, so "/debugger" goes to the main mux too (and
  // gets the home page there).
  if (req.target.starts_with("/debug")) return RouteMux(req, ctx);
  if (!IsGetOrHead(req)) return Respond(RouteId::kHttpsRedirect, ErrorResponse(400, "Use HTTPS"));
  const std::string_view target =
      (req.target == "/" && ctx.debug_allowed) ? std::string_view("/debug/") : req.target;
  const std::string url =
      "https://" + std::string(HeaderOrEmpty(req, "Host")) + std::string(target);
  return Respond(RouteId::kHttpsRedirect, Redirect(req, url, SortedHeaders()));
}

}  // namespace

std::string_view RouteName(RouteId id) {
  switch (id) {
    case RouteId::kDerp:
      return "derp";
    case RouteId::kProbe:
      return "probe";
    case RouteId::kGenerate204:
      return "generate_204";
    case RouteId::kBootstrapDns:
      return "bootstrap_dns";
    case RouteId::kRobots:
      return "robots";
    case RouteId::kHome:
      return "home";
    case RouteId::kDebug:
      return "debug";
    case RouteId::kHttpsRedirect:
      return "https_redirect";
    case RouteId::kConnect:
      return "connect";
    case RouteId::kBadRequest:
      return "bad_request";
    case RouteId::kAcmeChallenge:
      return "acme_challenge";
  }
  return "unknown";
}

std::string_view RoutingPath(const RequestHead& req) {
  std::string_view path = req.path;
  for (const std::string_view scheme : {"http://", "https://"}) {
    if (path.size() >= scheme.size() &&
        http::EqualsIgnoreCase(path.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = path.find('/', scheme.size());
      return slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    }
  }
  return path;
}

RouteResult Route(const RequestHead& req, const RouteContext& ctx) {
  RouteResult result;
  const std::vector<std::string_view> hosts = HeaderValues(req, "Host");
  // Go's server refuses these before any handler runs; CONNECT needs no Host.
  if (req.version_minor >= 1 && hosts.empty() && req.method != "CONNECT") {
    result = Respond(RouteId::kBadRequest, ErrorResponse(400, "missing required Host header"));
  } else if (hosts.size() > 1) {
    result = Respond(RouteId::kBadRequest, ErrorResponse(400, "too many Host headers"));
  } else if (!hosts.empty() && !IsValidHost(hosts[0])) {
    result = Respond(RouteId::kBadRequest, ErrorResponse(400, "malformed Host header"));
  } else if (ctx.is_plain_port80_listener) {
    result = RoutePort80(req, ctx);
  } else if (req.method == "CONNECT") {
    result = Respond(RouteId::kConnect, ErrorResponse(403, "CONNECT not enabled"));
  } else {
    result = RouteMux(req, ctx);
  }

  ApplyRequestFraming(req, result);
  return result;
}

void ApplyRequestFraming(const http::RequestHead& req, RouteResult& result) {
  if (result.kind != RouteResult::Kind::kDerpUpgrade) {
    const std::string* connection = http::FindHeader(result.response.headers, "Connection");
    result.close_after = result.route == RouteId::kBadRequest || MustClose(req) ||
                         (connection != nullptr && http::HasToken(*connection, "close"));
    // HTTP/1.0 closes by default; Go announces it only to 1.1 clients.
    result.response.close_connection = result.close_after && req.version_minor >= 1;
  }
  result.response.head_only = req.method == "HEAD";
}

http::Response DerpSwitchingProtocols(std::string_view server_public_key_hex) {
  Response r;
  r.status = 101;
  r.headers = {{"Upgrade", "DERP"},
               {"Connection", "Upgrade"},
               {"Derp-Version", "2"},
               {"Derp-Public-Key", std::string(server_public_key_hex)}};
  return r;
}

http::Response WebSocketSwitchingProtocols(std::string_view websocket_key,
                                           std::string_view subprotocol) {
  SortedHeaders headers;
  headers.Set("Connection", "Upgrade")
      .Set("Sec-Websocket-Accept", http::WebSocketAccept(websocket_key))
      .Set("Upgrade", "websocket");
  if (!subprotocol.empty()) headers.Set("Sec-Websocket-Protocol", subprotocol);
  Response r;
  r.status = 101;
  r.headers = headers.Take();
  return r;
}

}  // namespace derpkit::relay
