#include "relay/http_routes.h"

#include <chrono>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "lib/http/head.h"
#include "tests/unit/http/test_files.h"

namespace derpkit::relay {
namespace {

using http::testing::BlankDate;
using http::testing::ReadTestdata;
using Kind = RouteResult::Kind;

// Browser security headers (derp-protocol.md §3.9) as current derper writes them. v1.36.2, which
// recorded the captures, did not send them: every test adding them marks a documented difference.
constexpr std::string_view kCsp =
    "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'self'; block-all-mixed-content; object-src 'none'\r\n";
constexpr std::string_view kHsts =
    "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n";
constexpr std::string_view kNosniff = "X-Content-Type-Options: nosniff\r\n";
constexpr std::string_view kFrameDeny = "X-Frame-Options: DENY\r\n";
constexpr std::string_view kCacheControl =
    "Cache-Control: no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n";

std::chrono::system_clock::time_point Now() {
  using namespace std::chrono;
  return sys_days(year(2026) / November / 21) + hours(23);
}

http::RequestHead Parse(std::string_view bytes) {
  auto head = http::ParseRequestHead(AsBytes(bytes));
  EXPECT_TRUE(head.has_value()) << bytes;
  return head.has_value() ? *head : http::RequestHead{};
}

http::RequestHead CaptureRequest(std::string_view name) {
  return Parse(ReadTestdata("http/" + std::string(name) + ".req"));
}

std::string Write(const http::Response& response) {
  std::string out;
  http::AppendResponse(out, response, Now());
  return out;
}

// The plain derper of the captures: -a 127.0.0.1:13340, asked from loopback.
RouteContext PlainDerper() {
  RouteContext ctx;
  ctx.tls = false;
  ctx.debug_allowed = true;
  return ctx;
}

// The tls derper's --http-port listener, asked from loopback.
RouteContext Port80Listener() {
  RouteContext ctx;
  ctx.tls = true;
  ctx.is_plain_port80_listener = true;
  ctx.debug_allowed = true;
  ctx.hostname = "localhost";
  return ctx;
}

// Inserts `lines` right after the line `after` (given without CRLF) in `text`.
std::string InsertAfter(std::string text, std::string_view after, std::string_view lines) {
  const std::size_t at = text.find(std::string(after) + "\r\n");
  EXPECT_NE(at, std::string::npos) << after;
  if (at != std::string::npos) text.insert(at + after.size() + 2, lines);
  return text;
}

std::string Body(const std::string& response) {
  return response.substr(response.find("\r\n\r\n") + 4);
}

// Routes capture NAME with `ctx` and returns the written response with the Date blanked.
std::string RouteCapture(std::string_view name, const RouteContext& ctx) {
  const RouteResult result = Route(CaptureRequest(name), ctx);
  EXPECT_EQ(result.kind, Kind::kResponse) << name;
  return BlankDate(Write(result.response));
}

std::string Capture(std::string_view name) {
  return BlankDate(ReadTestdata("http/" + std::string(name) + ".resp"));
}

// --- Captured exchanges, byte for byte --------------------------------------------------------

TEST(RouteCaptured, DerpWithoutUpgradeIs426) {
  EXPECT_EQ(RouteCapture("derp-no-upgrade", PlainDerper()), Capture("derp-no-upgrade"));
  EXPECT_TRUE(Route(CaptureRequest("derp-no-upgrade"), PlainDerper()).close_after);
}

TEST(RouteCaptured, ProbeGet) {
  EXPECT_EQ(RouteCapture("derp-probe-get", PlainDerper()), Capture("derp-probe-get"));
}

TEST(RouteCaptured, ProbeHeadHasNoContentLength) {
  EXPECT_EQ(RouteCapture("derp-probe-head", PlainDerper()), Capture("derp-probe-head"));
}

TEST(RouteCaptured, ProbePostIs405) {
  EXPECT_EQ(RouteCapture("derp-probe-post", PlainDerper()), Capture("derp-probe-post"));
}

TEST(RouteCaptured, LatencyCheckIsAProbeNowNotTheHomePage) {
  // Documented difference: v1.36.2 had no /derp/latency-check handler and served the home page.
  EXPECT_NE(Capture("derp-latency-check").find("<h1>DERP</h1>"), std::string::npos);
  const RouteResult result = Route(CaptureRequest("derp-latency-check"), PlainDerper());
  EXPECT_EQ(result.route, RouteId::kProbe);
  EXPECT_EQ(BlankDate(Write(result.response)), Capture("derp-probe-get"));
}

TEST(RouteCaptured, Generate204WithChallengeAddsCacheControl) {
  // Documented difference: current derper adds Cache-Control (sorted before X-Tailscale-Response).
  EXPECT_EQ(
      RouteCapture("generate-204-challenge", PlainDerper()),
      InsertAfter(Capture("generate-204-challenge"), "HTTP/1.1 204 No Content", kCacheControl));
}

TEST(RouteCaptured, Generate204AcceptsColonInChallenge) {
  // Documented difference: v1.36.2 refused ':' in the challenge; current derper answers it.
  EXPECT_EQ(Capture("generate-204-colon").find("X-Tailscale-Response"), std::string::npos);
  EXPECT_EQ(RouteCapture("generate-204-colon", PlainDerper()),
            InsertAfter(Capture("generate-204-colon"), "HTTP/1.1 204 No Content",
                        std::string(kCacheControl) + "X-Tailscale-Response: response ts_a:b\r\n"));
}

TEST(RouteCaptured, Generate204WithoutChallenge) {
  EXPECT_EQ(RouteCapture("generate-204-none", PlainDerper()),
            InsertAfter(Capture("generate-204-none"), "HTTP/1.1 204 No Content", kCacheControl));
}

TEST(RouteCaptured, RobotsGetsBrowserHeaders) {
  // Documented difference: the security headers (handler headers, so before Date).
  EXPECT_EQ(RouteCapture("robots", PlainDerper()),
            InsertAfter(Capture("robots"), "HTTP/1.1 200 OK",
                        std::string(kCsp) + std::string(kHsts) + std::string(kNosniff) +
                            std::string(kFrameDeny)));
}

TEST(RouteCaptured, BootstrapDnsGetsBrowserHeaders) {
  RouteContext ctx = PlainDerper();
  const std::string capture = Capture("bootstrap-dns");
  const std::string json = Body(capture);  // derper ran with -bootstrap-dns-names localhost
  ctx.bootstrap_dns_json = json;
  std::string expected = InsertAfter(capture, "Connection: close", kCsp);
  expected = InsertAfter(expected, "Content-Type: application/json",
                         std::string(kHsts) + std::string(kNosniff) + std::string(kFrameDeny));
  EXPECT_EQ(RouteCapture("bootstrap-dns", ctx), expected);
  EXPECT_TRUE(Route(CaptureRequest("bootstrap-dns"), ctx).close_after);
}

TEST(RouteCaptured, HomePageHasCapturedHeadAndOurOwnText) {
  for (const std::string_view name : {"home", "home-other-path"}) {
    SCOPED_TRACE(name);
    const RouteResult result = Route(CaptureRequest(name), PlainDerper());
    EXPECT_EQ(result.route, RouteId::kHome);
    const std::string ours = BlankDate(Write(result.response));
    const std::string body = Body(ours);
    // Same head as derper apart from the security headers and our page's length.
    std::string expected = InsertAfter(Capture(name), "HTTP/1.1 200 OK", kCsp);
    expected = InsertAfter(expected, "Content-Type: text/html; charset=utf-8",
                           std::string(kHsts) + std::string(kNosniff) + std::string(kFrameDeny));
    expected = expected.substr(0, expected.find("Content-Length: ")) +
               "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    EXPECT_EQ(ours.substr(0, ours.size() - body.size()), expected);
    // Our words: a DERP relay running derpkit, and the debug link for a loopback caller.
    EXPECT_NE(body.find("DERP relay"), std::string::npos);
    EXPECT_NE(body.find("derpkit"), std::string::npos);
    EXPECT_NE(body.find("<a href='/debug/'>/debug/</a>"), std::string::npos);
    EXPECT_EQ(body.find("Status:"), std::string::npos);
  }
}

TEST(RouteCaptured, DebugPathsGoToTheDebugHandler) {
  for (const std::string_view name : {"debug-index", "debug-check", "debug-xff-denied"}) {
    SCOPED_TRACE(name);
    const RouteResult result = Route(CaptureRequest(name), PlainDerper());
    EXPECT_EQ(result.kind, Kind::kDebug);
    EXPECT_EQ(result.route, RouteId::kDebug);
    EXPECT_TRUE(result.close_after);
  }
}

TEST(RouteCaptured, DerpUpgradeWritesDerpersSwitchingProtocols) {
  const RouteResult result = Route(CaptureRequest("derp-upgrade-then-eof"), PlainDerper());
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_FALSE(result.upgrade.fast_start);
  EXPECT_FALSE(result.upgrade.websocket);
  EXPECT_FALSE(result.upgrade.not_ideal);
  std::string key = ReadTestdata("keys/derper.pub.txt");
  key = key.substr(key.find(':') + 1, 64);
  const std::string capture = ReadTestdata("http/derp-upgrade-then-eof.resp");
  EXPECT_EQ(Write(DerpSwitchingProtocols(key)), capture.substr(0, 172));
}

TEST(RouteCaptured, Port80RedirectsDerpToHttps) {
  EXPECT_EQ(RouteCapture("tlsderper-port80-derp", Port80Listener()),
            Capture("tlsderper-port80-derp"));
}

TEST(RouteCaptured, Port80RedirectsRootToDebugForLoopback) {
  EXPECT_EQ(RouteCapture("tlsderper-port80-home", Port80Listener()),
            Capture("tlsderper-port80-home"));
}

TEST(RouteCaptured, Port80ServesGenerate204) {
  EXPECT_EQ(RouteCapture("tlsderper-port80-generate-204", Port80Listener()),
            InsertAfter(Capture("tlsderper-port80-generate-204"), "HTTP/1.1 204 No Content",
                        kCacheControl));
}

// --- Captured DERP clients -------------------------------------------------------------------

TEST(RouteDerp, CapturedPlainClientUpgrades) {
  const RouteResult result = Route(Parse(ReadTestdata("derp/plain/A.c2s.bin")), PlainDerper());
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_EQ(result.route, RouteId::kDerp);
  EXPECT_FALSE(result.upgrade.fast_start);
  EXPECT_FALSE(result.close_after);
}

TEST(RouteDerp, CapturedFastStartClientUpgradesWithoutResponse) {
  const RouteResult result = Route(Parse(ReadTestdata("derp/faststart/F.c2s.bin")), RouteContext{});
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_TRUE(result.upgrade.fast_start);
  EXPECT_FALSE(result.upgrade.websocket);
}

TEST(RouteDerp, CapturedWebSocketClientGetsCapturedSwitchingProtocols) {
  const RouteResult result = Route(Parse(ReadTestdata("derp/websocket/W.c2s.bin")), PlainDerper());
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_TRUE(result.upgrade.websocket);
  EXPECT_EQ(result.upgrade.websocket_key, "5/dUm2Fi2KDkTBeHdvrgUg==");
  EXPECT_EQ(result.upgrade.websocket_subprotocol, "derp");
  EXPECT_EQ(Write(result.response), ReadTestdata("derp/websocket/W.s2c.bin").substr(0, 159));
}

// --- /derp rules ----------------------------------------------------------------------------

TEST(RouteDerp, UpgradeTokenIsCaseInsensitiveAndMethodIsNotChecked) {
  const RouteResult result =
      Route(Parse("POST /derp HTTP/1.1\r\nHost: h\r\nUpgrade: dErP\r\n\r\n"), RouteContext{});
  EXPECT_EQ(result.kind, Kind::kDerpUpgrade);
}

TEST(RouteDerp, QueryStringStillReachesDerp) {
  EXPECT_EQ(
      Route(Parse("GET /derp?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n"), RouteContext{})
          .kind,
      Kind::kDerpUpgrade);
}

TEST(RouteDerp, TrailingSlashFallsThroughToHomePage) {
  const RouteResult result =
      Route(Parse("GET /derp/ HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n"), RouteContext{});
  EXPECT_EQ(result.kind, Kind::kResponse);
  EXPECT_EQ(result.route, RouteId::kHome);
}

TEST(RouteDerp, FastStartNeedsExactlyOne) {
  const auto route = [](std::string_view value) {
    return Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\nDerp-Fast-Start: " +
                       std::string(value) + "\r\n\r\n"),
                 RouteContext{});
  };
  EXPECT_TRUE(route("1").upgrade.fast_start);
  EXPECT_FALSE(route("true").upgrade.fast_start);
  EXPECT_FALSE(route("").upgrade.fast_start);
}

TEST(RouteDerp, NonEmptyIdealNodeMarksNotIdeal) {
  EXPECT_TRUE(
      Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\nIdeal-Node: 1a\r\n\r\n"),
            RouteContext{})
          .upgrade.not_ideal);
  EXPECT_FALSE(Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\nIdeal-Node:\r\n\r\n"),
                     RouteContext{})
                   .upgrade.not_ideal);
}

TEST(RouteDerp, OtherUpgradeIs426) {
  const RouteResult result =
      Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n"), RouteContext{});
  EXPECT_EQ(result.kind, Kind::kResponse);
  EXPECT_EQ(result.response.status, 426);
  EXPECT_EQ(result.response.body, "DERP requires connection upgrade\n");
  EXPECT_FALSE(result.close_after);  // keep-alive: nothing asked to close
}

TEST(RouteDerp, DisabledDerpIs404ButProbesStillWork) {
  RouteContext ctx;
  ctx.derp_enabled = false;
  const RouteResult derp =
      Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n"), ctx);
  EXPECT_EQ(derp.kind, Kind::kResponse);
  EXPECT_EQ(BlankDate(Write(derp.response)),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "X-Content-Type-Options: nosniff\r\nDate: <date>\r\nContent-Length: 21\r\n\r\n"
            "derp server disabled\n");
  const RouteResult probe = Route(Parse("GET /derp/probe HTTP/1.1\r\nHost: h\r\n\r\n"), ctx);
  EXPECT_EQ(probe.response.status, 200);
}

TEST(RouteDerp, WebSocketWithoutDerpSubprotocolIsPlainDerp) {
  // Very old clients said "Upgrade: WebSocket" but spoke raw DERP.
  const RouteResult result =
      Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\n"), RouteContext{});
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_FALSE(result.upgrade.websocket);
}

std::string WebSocketRequest(std::string_view method, std::string_view extra_headers) {
  return std::string(method) +
         " /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: derp\r\n" +
         std::string(extra_headers) + "\r\n";
}

constexpr std::string_view kGoodWebSocketHeaders =
    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

TEST(RouteDerp, WebSocketHandshakeProducesRfc6455Accept) {
  const RouteResult result = Route(Parse(WebSocketRequest("GET", kGoodWebSocketHeaders)), {});
  ASSERT_EQ(result.kind, Kind::kDerpUpgrade);
  EXPECT_TRUE(result.upgrade.websocket);
  EXPECT_EQ(Write(result.response),
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            "Sec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-Websocket-Protocol: derp\r\nUpgrade: websocket\r\n\r\n");
}

TEST(RouteDerp, WebSocketSubprotocolOtherThanDerpIsLeftForCallerToClose) {
  // "derpish" contains "derp" (so WebSocket is chosen) but no offered token is "derp".
  const std::string headers = std::string(kGoodWebSocketHeaders);
  const RouteResult other = Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                        "Sec-WebSocket-Protocol: derpish, chat\r\n" +
                                        headers + "\r\n"),
                                  {});
  ASSERT_EQ(other.kind, Kind::kDerpUpgrade);
  EXPECT_TRUE(other.upgrade.websocket);
  EXPECT_EQ(other.upgrade.websocket_subprotocol, "");
  EXPECT_EQ(Write(other.response).find("Sec-Websocket-Protocol"), std::string::npos);
  const RouteResult upper = Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                                        "Sec-WebSocket-Protocol: derpish, DERP\r\n" +
                                        headers + "\r\n"),
                                  {});
  EXPECT_EQ(upper.upgrade.websocket_subprotocol, "DERP");
}

TEST(RouteDerp, WebSocketHandshakeErrors) {
  const auto status = [](std::string_view method, std::string_view headers) {
    const RouteResult r = Route(Parse(WebSocketRequest(method, headers)), RouteContext{});
    EXPECT_EQ(r.kind, Kind::kResponse);
    return r.response.status;
  };
  EXPECT_EQ(
      status("GET", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
      426);
  EXPECT_EQ(status("POST", kGoodWebSocketHeaders), 405);
  EXPECT_EQ(status("GET",
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
            400);
  EXPECT_EQ(status("GET", "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"), 400);
  EXPECT_EQ(status("GET",
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: short==\r\n"),
            400);
  EXPECT_EQ(status("GET", std::string(kGoodWebSocketHeaders) +
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
            400);
  const RouteResult missing = Route(
      Parse(WebSocketRequest("GET", "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")), {});
  EXPECT_EQ(missing.response.body, "WebSocket protocol violation: missing Sec-WebSocket-Key\n");
}

// --- Other endpoints ------------------------------------------------------------------------

TEST(RouteGenerate204, ChallengeLimitsAndAnyMethod) {
  const auto response_header = [](std::string_view challenge) {
    const RouteResult r = Route(Parse("PUT /generate_204?t=1 HTTP/1.1\r\nHost: h\r\n"
                                      "X-Tailscale-Challenge: " +
                                      std::string(challenge) + "\r\n\r\n"),
                                RouteContext{});
    EXPECT_EQ(r.response.status, 204);
    const std::string* v = http::FindHeader(r.response.headers, "X-Tailscale-Response");
    return v ? *v : std::string("<none>");
  };
  EXPECT_EQ(response_header(std::string(64, 'a')), "response " + std::string(64, 'a'));
  EXPECT_EQ(response_header(std::string(65, 'a')), "<none>");
  EXPECT_EQ(response_header("Az09._:-"), "response Az09._:-");
  EXPECT_EQ(response_header("a b"), "<none>");
  EXPECT_EQ(response_header("a/b"), "<none>");
  EXPECT_EQ(response_header(""), "<none>");
}

TEST(RouteHome, DefaultPageWithoutDebugAccessHasNoDebugLink) {
  const RouteResult r = Route(Parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), RouteContext{});
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body.find("/debug/"), std::string::npos);
  EXPECT_FALSE(r.close_after);
}

TEST(RouteHome, DisabledDerpSaysSo) {
  RouteContext ctx;
  ctx.derp_enabled = false;
  const RouteResult r = Route(Parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), ctx);
  EXPECT_NE(r.response.body.find("Status: <b>disabled</b>"), std::string::npos);
}

TEST(RouteHome, BlankIsEmptyHtmlWithBrowserHeaders) {
  RouteContext ctx;
  ctx.home = "blank";
  const RouteResult r =
      Route(Parse("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), ctx);
  EXPECT_EQ(BlankDate(Write(r.response)),
            "HTTP/1.1 200 OK\r\n" + std::string(kCsp) +
                "Content-Type: text/html; charset=utf-8\r\n" + std::string(kHsts) +
                std::string(kNosniff) + std::string(kFrameDeny) +
                "Date: <date>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(RouteHome, UrlRedirectsWithBrowserHeaders) {
  RouteContext ctx;
  ctx.home = "https://example.com/a?b=1&c=2";
  const RouteResult r = Route(Parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), ctx);
  EXPECT_EQ(BlankDate(Write(r.response)),
            "HTTP/1.1 302 Found\r\n" + std::string(kCsp) +
                "Content-Type: text/html; charset=utf-8\r\n"
                "Location: https://example.com/a?b=1&c=2\r\n" +
                std::string(kHsts) + std::string(kNosniff) + std::string(kFrameDeny) +
                "Date: <date>\r\nContent-Length: 56\r\n\r\n"
                "<a href=\"https://example.com/a?b=1&amp;c=2\">Found</a>.\n\n");
  // http.Redirect gives other methods neither a Content-Type nor a body.
  const RouteResult post = Route(Parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n"), ctx);
  EXPECT_EQ(post.response.status, 302);
  EXPECT_EQ(http::FindHeader(post.response.headers, "Content-Type"), nullptr);
  EXPECT_EQ(post.response.body, "");
}

TEST(RouteHome, HeadGetsLengthButNoBody) {
  const RouteResult r = Route(Parse("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), RouteContext{});
  EXPECT_TRUE(r.response.head_only);
  const std::string out = Write(r.response);
  EXPECT_NE(out.find("Content-Length: " + std::to_string(r.response.body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(Body(out), "");
}

TEST(RouteHome, AbsoluteFormTargetRoutesByItsPath) {
  EXPECT_EQ(Route(Parse("GET http://h/derp/probe HTTP/1.1\r\nHost: h\r\n\r\n"), {}).route,
            RouteId::kProbe);
  EXPECT_EQ(RoutingPath(Parse("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n")), "/");
  EXPECT_EQ(RoutingPath(Parse("GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n")), "/a");
}

TEST(RouteDebug, DebugWithoutSlashAndSubpagesGoToDebugHandler) {
  EXPECT_EQ(Route(Parse("GET /debug HTTP/1.1\r\nHost: h\r\n\r\n"), {}).kind, Kind::kDebug);
  EXPECT_EQ(Route(Parse("GET /debug/varz HTTP/1.1\r\nHost: h\r\n\r\n"), {}).kind, Kind::kDebug);
  EXPECT_EQ(Route(Parse("GET /debugger HTTP/1.1\r\nHost: h\r\n\r\n"), {}).route, RouteId::kHome);
}

TEST(RouteConnect, ConnectIsRefused) {
  const RouteResult r = Route(Parse("CONNECT login.tailscale.com:443 HTTP/1.1\r\n\r\n"), {});
  EXPECT_EQ(r.route, RouteId::kConnect);
  EXPECT_EQ(BlankDate(Write(r.response)),
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "X-Content-Type-Options: nosniff\r\nDate: <date>\r\nContent-Length: 20\r\n\r\n"
            "CONNECT not enabled\n");
}

// --- Port-80 listener -----------------------------------------------------------------------

TEST(RoutePort80, OtherMethodsAreTold400UseHttps) {
  const RouteResult r = Route(Parse("POST /derp HTTP/1.1\r\nHost: h\r\n\r\n"), Port80Listener());
  EXPECT_EQ(r.route, RouteId::kHttpsRedirect);
  EXPECT_EQ(r.response.status, 400);
  EXPECT_EQ(r.response.body, "Use HTTPS\n");
  EXPECT_EQ(Route(Parse("CONNECT h:443 HTTP/1.1\r\n\r\n"), Port80Listener()).response.status, 400);
}

TEST(RoutePort80, DebugGoesToMainMuxEvenForPost) {
  EXPECT_EQ(Route(Parse("POST /debug/x HTTP/1.1\r\nHost: h\r\n\r\n"), Port80Listener()).kind,
            Kind::kDebug);
  // Port80Handler compares the raw request-URI prefix; the main mux then serves the home page.
  EXPECT_EQ(Route(Parse("GET /debugger HTTP/1.1\r\nHost: h\r\n\r\n"), Port80Listener()).route,
            RouteId::kHome);
}

TEST(RoutePort80, RootRedirectsToRootWithoutDebugAccess) {
  RouteContext ctx = Port80Listener();
  ctx.debug_allowed = false;
  const RouteResult r = Route(Parse("GET / HTTP/1.1\r\nHost: derp.example:80\r\n\r\n"), ctx);
  EXPECT_EQ(*http::FindHeader(r.response.headers, "Location"), "https://derp.example:80/");
}

TEST(RoutePort80, HeadRedirectHasTypeButNoBodyOrLength) {
  const RouteResult r = Route(Parse("HEAD /x?y HTTP/1.1\r\nHost: h\r\n\r\n"), Port80Listener());
  EXPECT_EQ(BlankDate(Write(r.response)),
            "HTTP/1.1 302 Found\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Location: https://h/x?y\r\nDate: <date>\r\n\r\n");
}

TEST(RoutePort80, DerpIsNotServed) {
  const RouteResult r =
      Route(Parse("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n"), Port80Listener());
  EXPECT_EQ(r.kind, Kind::kResponse);
  EXPECT_EQ(r.response.status, 302);
}

// --- Connection handling and Host -----------------------------------------------------------

TEST(RouteConnection, Http10ClosesWithoutSayingSo) {
  const RouteResult r = Route(Parse("GET /robots.txt HTTP/1.0\r\n\r\n"), {});
  EXPECT_EQ(r.route, RouteId::kRobots);
  EXPECT_TRUE(r.close_after);
  EXPECT_EQ(Write(r.response).find("Connection:"), std::string::npos);
}

TEST(RouteConnection, UnreadBodyClosesTheConnection) {
  EXPECT_TRUE(Route(Parse("POST /derp/probe HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"), {})
                  .close_after);
  EXPECT_TRUE(Route(Parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"), {})
                  .close_after);
  EXPECT_FALSE(Route(Parse("POST /derp/probe HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), {})
                   .close_after);
}

TEST(RouteConnection, BadHostHeadersAre400AndClose) {
  const auto route = [](std::string_view head) { return Route(Parse(head), RouteContext{}); };
  const RouteResult missing = route("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(missing.route, RouteId::kBadRequest);
  EXPECT_EQ(missing.response.status, 400);
  EXPECT_EQ(missing.response.body, "missing required Host header\n");
  EXPECT_TRUE(missing.close_after);
  EXPECT_EQ(route("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").route, RouteId::kBadRequest);
  EXPECT_EQ(route("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").route, RouteId::kBadRequest);
  EXPECT_EQ(route("GET / HTTP/1.1\r\nHost: [::1]:443\r\n\r\n").route, RouteId::kHome);
  EXPECT_EQ(route("GET / HTTP/1.0\r\n\r\n").route, RouteId::kHome);
}

TEST(RouteName, EveryRouteHasADistinctLabel) {
  std::set<std::string_view> labels;
  for (std::size_t i = 0; i < kRouteIdCount; ++i) {
    const std::string_view label = RouteName(static_cast<RouteId>(i));
    EXPECT_NE(label, "unknown");
    EXPECT_TRUE(labels.insert(label).second) << label;
  }
  EXPECT_EQ(RouteName(RouteId::kGenerate204), "generate_204");
}

}  // namespace
}  // namespace derpkit::relay
