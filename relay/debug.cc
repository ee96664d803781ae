#include "relay/debug.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "lib/net/stream.h"
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

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

http::Response Index(Server& server) {
  const auto up = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - server.start_time())
                      .count();
  std::ostringstream html;
  html << "<html><head><title>derp-relay debug</title></head><body>\n"
       << "<h1>derp-relay debug</h1>\n<ul>\n"
       << "<li><b>Hostname:</b> " << HtmlEscape(server.config().hostname) << "</li>\n"
       << "<li><b>Uptime:</b> " << up << " s</li>\n"
       << "<li><b>Version:</b> derpkit " << HtmlEscape(kDerpkitVersion) << "</li>\n"
       << "<li><b>Server key:</b> " << server.public_key().ToText() << "</li>\n"
       << "<li><b>Mesh key:</b> " << (server.mesh_key() ? "set" : "not set") << "</li>\n"
       << "<li><b>Workers:</b> " << server.shard_count() << "</li>\n"
       << "</ul>\n<ul>\n"
       << "<li><a href=\"/debug/varz\">/debug/varz</a> Prometheus metrics</li>\n"
       << "<li><a href=\"/debug/vars\">/debug/vars</a> the same as JSON</li>\n"
       << "<li><a href=\"/debug/check\">/debug/check</a> consistency check</li>\n"
       << "<li><a href=\"/debug/traffic\">/debug/traffic</a> per-client traffic</li>\n"
       << "</ul>\n</body></html>\n";
  http::Response r = Text(200, html.str(), "text/html; charset=utf-8");
  AddDebugPageHeaders(r);
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

http::Response DebugAccessDenied() {
  return Text(403, "debug access denied\n", "text/plain; charset=utf-8");
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
    if (server.registry().CheckConsistency(&problems)) {
      co_return Text(200, "derp.Server ConsistencyCheck okay", "text/plain; charset=utf-8");
    }
    co_return Text(500, problems, "text/plain; charset=utf-8");
  }
  if (path == "/debug/traffic") {
    std::string body = co_await Traffic(server);  // not inside a call: see front.cc on GCC 12
    co_return Text(200, std::move(body), "text/plain; charset=utf-8");
  }
  co_return Text(404, "404 page not found\n", "text/plain; charset=utf-8");
}

}  // namespace derpkit::relay
