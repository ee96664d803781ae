#include "relay/debug.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string>

#include "lib/http/body_text.h"
#include "lib/net/stream.h"
#include "lib/util/go_format.h"
#include "relay/client_conn.h"
#include "relay/http_routes.h"
#include "relay/metrics.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {
namespace {

// Headers derper's tsweb puts on debug pages (§3.9, with inline styles allowed).
void AddDebugPageHeaders(http::Response& r) {
  r.headers.push_back({"Content-Security-Policy",
                       "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                       "base-uri 'self'; block-all-mixed-content; object-src 'none'; "
                       "style-src 'self' 'unsafe-inline'"});
  r.headers.push_back({"Strict-Transport-Security", "max-age=63072000; includeSubDomains"});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  r.headers.push_back({"X-Frame-Options", "DENY"});
}

http::Response Text(int status, std::string body, std::string content_type) {
  http::Response r;
  r.status = status;
  r.headers.push_back({"Content-Type", std::move(content_type)});
  r.body = std::move(body);
  return r;
}

std::string QueryValue(const std::string& query, std::string_view name) {
  std::size_t at = 0;
  while (at <= query.size()) {
    const std::size_t amp = std::min(query.find('&', at), query.size());
    const std::string_view part = std::string_view(query).substr(at, amp - at);
    if (part.substr(0, part.find('=')) == name && part.find('=') != std::string_view::npos) {
      return std::string(part.substr(part.find('=') + 1));
    }
    at = amp + 1;
  }
  return {};
}

// derper's (tsweb's) /debug/ index in the same bytes, so that people and scripts that read
// derper's page read ours (tests/integration/capture_replay_test.cc compares it with the capture):
// key/value items, then a link per page, labels verbatim ("Metrics (Go)" is derper's name for the
// expvar-style JSON at /debug/vars). derper also links pprof, goroutine dumps and /debug/gc, which
// this relay does not have, so those links are left out.
http::Response Index(Server& server) {
  const auto uptime = std::chrono::round<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                               server.start_time());
  std::string html = "<html><body><h1>derp-relay debug</h1><ul>";
  const auto item = [&html](std::string_view key, std::string_view value) {
    html.append("<li><b>")
        .append(key)
        .append(":</b> ")
        .append(http::HtmlEscape(value))
        .append("</li>");
  };
  const auto link = [&html](std::string_view url, std::string_view label) {
    html.append("<li><a href=\"").append(url).append("\">").append(url).append("</a> (");
    html.append(label).append(")</li>");
  };
  // Whole seconds in Go's time.Duration.String(), as derper prints it: "0s", "1m17s", "26h0m5s".
  item("Uptime", GoDurationString(uptime));
  item("Version", std::string("derpkit ") + kDerpkitVersion);
  std::array<char, 256> machine{};
  if (::gethostname(machine.data(), machine.size() - 1) == 0) item("Machine", machine.data());
  item("TLS hostname", server.config().hostname);
  item("Mesh key", server.mesh_key() ? "true" : "false");
  link("/debug/vars", "Metrics (Go)");
  link("/debug/varz", "Metrics (Prometheus)");
  link("/debug/check", "Consistency check");
  link("/debug/traffic", "Traffic check");

  http::Response r;
  r.status = 200;
  AddDebugPageHeaders(r);
  // Go sniffs this page's type after the handler has run, so its Content-Type follows Date and
  // Content-Length; written here in that order (AppendResponse adds none of the three again).
  r.headers.push_back({"Date", http::FormatHttpDate(std::chrono::system_clock::now())});
  r.headers.push_back({"Content-Length", std::to_string(html.size())});
  r.headers.push_back({"Content-Type", "text/html; charset=utf-8"});
  r.body = std::move(html);
  return r;
}

// One line per DERP connection, gathered on each shard's own loop.
asio::awaitable<std::string> Traffic(Server& server) {
  std::vector<std::string> lines;
  const auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < server.shard_count(); ++i) {
    Shard& shard = server.shard(i);
    auto part = co_await asio::co_spawn(
        shard.io(),
        [&shard, now]() -> asio::awaitable<std::vector<std::string>> {
          std::vector<std::string> out;
          shard.ForEachConn([&](const ClientConn& c) {
            char line[512];
            std::snprintf(
                line, sizeof line, "%-10s %-47s shard=%d %s age=%llds rx=%llu/%llu tx=%llu/%llu",
                c.key().ShortString().c_str(), c.remote().c_str(), shard.index(),
                c.is_mesh() ? "mesh" : "client",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::seconds>(now - c.connected_at())
                        .count()),
                static_cast<unsigned long long>(c.traffic().packets_in),
                static_cast<unsigned long long>(c.traffic().bytes_in),
                static_cast<unsigned long long>(c.traffic().packets_out),
                static_cast<unsigned long long>(c.traffic().bytes_out));
            out.emplace_back(line);
          });
          co_return out;
        },
        asio::use_awaitable);
    lines.insert(lines.end(), part.begin(), part.end());
  }
  std::sort(lines.begin(), lines.end());
  std::string body = "# key remote shard kind age rx=packets/bytes tx=packets/bytes\n";
  for (const auto& l : lines) body += l + "\n";
  co_return body;
}

}  // namespace

bool AllowDebugAccess(const http::RequestHead& req, const netaddr::IpAddress& peer,
                      const DebugAccess& access) {
  if (!access.debug_key.empty() && req.method == "GET" &&
      QueryValue(req.query, "debugkey") == access.debug_key) {
    return true;
  }
  if (req.Has("X-Forwarded-For")) return false;
  const netaddr::IpAddress ip = peer.Unmap();
  if (ip.IsLoopback() || netaddr::IsTailscaleIp(ip)) return true;
  return std::any_of(access.trusted_cidrs.begin(), access.trusted_cidrs.end(),
                     [&](const netaddr::Prefix& p) { return p.Contains(ip); });
}

// Go's http.Error, as derper answers: the type, nosniff, then the standard fields.
http::Response DebugAccessDenied() {
  http::Response r = Text(403, "debug access denied\n", "text/plain; charset=utf-8");
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  return r;
}

asio::awaitable<http::Response> ServeDebug(const http::RequestHead& req, Server& server) {
  const std::string_view path = RoutingPath(req);
  if (path == "/debug") {
    http::Response r;
    r.status = 301;
    r.headers.push_back({"Location", "/debug/"});
    co_return r;
  }
  if (path == "/debug/") co_return Index(server);
  if (path == "/debug/varz" || path == "/debug/metrics") {
    co_return Text(200, RenderPrometheus(server), "text/plain; version=0.0.4; charset=utf-8");
  }
  if (path == "/debug/vars") co_return Text(200, RenderVarsJson(server), "application/json");
  if (path == "/debug/check") {
    std::string problems;
    const bool consistent = server.registry().CheckConsistency(&problems);
    // As derper: with client verification on, this relay's own node must pass it too.
    const derp::PublicKey relay_key = server.public_key();
    const std::string verification = co_await server.admission().SelfCheck(relay_key);
    if (consistent && verification.empty()) {
      std::string body = "derp.Server ConsistencyCheck okay";
      if (server.admission().enabled()) body += "\nclient verification okay";
      co_return Text(200, std::move(body), "text/plain; charset=utf-8");
    }
    if (!verification.empty()) problems += (problems.empty() ? "" : ", ") + verification;
    co_return Text(500, problems, "text/plain; charset=utf-8");
  }
  if (path == "/debug/traffic") {
    std::string body = co_await Traffic(server);  // not inside a call: see front.cc on GCC 12
    co_return Text(200, std::move(body), "text/plain; charset=utf-8");
  }
  co_return Text(404, "404 page not found\n", "text/plain; charset=utf-8");
}

}  // namespace derpkit::relay
