// derp-probe's HTTP surface (daemon mode), on cpp-httplib:
//   /                       status page (probe/status_page.h)
//   /healthz                "ok\n"
//   /metrics, /debug/varz   Prometheus text (probe/metrics.h)
//   /debug/probe-run?name=  run one probe now: the reference's JSON with Accept: application/json,
//                           else text; 200, 424 when it failed, 404 unknown or continuous probe
//   /debug/probe-all[?exclude=NAME...]  run all non-continuous probes now: JSON; 200 or 424
// /debug/ answers only loopback and Tailscale (tailnet) sources, and never a request carrying
// X-Forwarded-For (a proxy in front would make every request look local), as derper and tsweb do.
//
// Threads: cpp-httplib's listener thread and its worker pool; handlers only call Prober's
// thread-safe methods (Snapshot, RunNow, RunAll).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "probe/prober.h"

namespace httplib {
class Server;
}

namespace derpkit::probe {

class HttpServer {
 public:
  // Binds `listen` ("host:port", "[v6]:port" or ":port" for every address) now and serves on a
  // thread of its own. Throws std::runtime_error naming the address when it cannot bind.
  HttpServer(Prober& prober, const std::string& listen);
  ~HttpServer();  // stops and joins
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const { return port_; }
  void Stop();

 private:
  Prober& prober_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

// True when `remote_addr` (as cpp-httplib reports it) may read /debug/: loopback or Tailscale.
bool DebugAccessAllowed(const std::string& remote_addr, bool has_forwarded_for);

}  // namespace derpkit::probe
