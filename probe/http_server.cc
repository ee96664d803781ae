// HttpServer: routes, the /debug/ access rule, and the listener thread.
#include "probe/http_server.h"

#include <httplib.h>

#include <set>
#include <stdexcept>

#include "lib/util/netaddr.h"
#include "probe/metrics.h"
#include "probe/probe_info_json.h"
#include "probe/status_page.h"

namespace derpkit::probe {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr int kStatusFailedDependency = 424;

bool AnyFailed(const std::vector<ProbeSnapshot>& probes) {
  for (const ProbeSnapshot& p : probes) {
    if (p.status != ProbeSnapshot::Status::kSucceeded) return true;
  }
  return false;
}

}  // namespace

bool DebugAccessAllowed(const std::string& remote_addr, bool has_forwarded_for) {
  if (has_forwarded_for) return false;
  auto ip = netaddr::ParseIp(remote_addr);
  if (!ip) return false;
  const netaddr::IpAddress addr = ip->Unmap();
  return addr.IsLoopback() || netaddr::IsTailscaleIp(addr);
}

HttpServer::HttpServer(Prober& prober, const std::string& listen)
    : prober_(prober), server_(std::make_unique<httplib::Server>()) {
  auto hp = netaddr::ParseHostPort(listen);
  if (!hp) {
    throw std::runtime_error("--listen " + listen + ": " +
                             std::string(netaddr::Describe(hp.error())) +
                             " (want host:port, [v6]:port or :port)");
  }
  httplib::Server& s = *server_;

  auto guard = [](const httplib::Request& req, httplib::Response& res) {
    if (DebugAccessAllowed(req.remote_addr, req.has_header("X-Forwarded-For"))) return true;
    res.status = 403;
    res.set_content("forbidden: /debug/ answers loopback and tailnet addresses only\n",
                    "text/plain; charset=utf-8");
    return false;
  };

  s.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderStatusPage(prober_.Snapshot(), StatusPageOptions{}),
                    "text/html; charset=utf-8");
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetrics(prober_.Snapshot()), kMetricsContentType);
  });
  s.Get("/debug/varz", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res)) return;
    res.set_content(RenderMetrics(prober_.Snapshot()), kMetricsContentType);
  });
  s.Get("/debug/", [guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res)) return;
    res.set_content(
        "<!doctype html><title>derp-probe debug</title><ul>"
        "<li><a href=\"/debug/varz\">/debug/varz</a> (metrics)</li>"
        "<li><a href=\"/debug/probe-all\">/debug/probe-all</a> (run every probe now, JSON)</li>"
        "<li>/debug/probe-run?name=&lt;probe&gt; (run one probe now)</li></ul>\n",
        "text/html; charset=utf-8");
  });
  s.Get("/debug/probe-run", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res)) return;
    const std::string name = req.get_param_value("name");
    if (name.empty()) {
      res.status = 400;
      res.set_content("missing ?name=<probe>\n", "text/plain; charset=utf-8");
      return;
    }
    auto after = prober_.RunNow(name);
    if (!after) {
      res.status = 404;
      res.set_content("unknown or continuous probe \"" + name + "\"\n",
                      "text/plain; charset=utf-8");
      return;
    }
    res.status = after->status == ProbeSnapshot::Status::kSucceeded ? 200 : kStatusFailedDependency;
    if (req.get_header_value("Accept").find("application/json") != std::string::npos) {
      res.set_content(RenderProbeRunJson(*after), "application/json");
    } else {
      res.set_content(RenderProbeRunText(*after), "text/plain; charset=utf-8");
    }
  });
  s.Get("/debug/probe-all", [this, guard](const httplib::Request& req, httplib::Response& res) {
    if (!guard(req, res)) return;
    std::set<std::string> exclude;
    for (std::size_t i = 0; i < req.get_param_value_count("exclude"); ++i) {
      exclude.insert(req.get_param_value("exclude", i));
    }
    const std::vector<ProbeSnapshot> after = prober_.RunAll(exclude);
    res.status = AnyFailed(after) ? kStatusFailedDependency : 200;
    res.set_content(RenderProbeAllJson(after), "application/json");
  });

  const std::string host = hp->host.empty() ? "::" : hp->host;
  int port = s.bind_to_port(host, hp->port);
  if (port < 0 && hp->host.empty()) port = s.bind_to_port("0.0.0.0", hp->port);  // no IPv6 here
  if (port < 0) throw std::runtime_error("--listen " + listen + ": cannot bind (in use?)");
  port_ = static_cast<std::uint16_t>(port);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace derpkit::probe
