// The relay's /debug/ surface: who may see it (derp-protocol.md §3.10) and what it shows.
//
// Access: loopback, Tailscale addresses (100.64.0.0/10 minus 100.115.92.0/23,
// fd7a:115c:a1e0::/48; IPv4-mapped addresses unmapped first), the operator's
// --debug-trusted-cidrs, or a GET with ?debugkey= matching --debug-key-file. A request carrying
// X-Forwarded-For is refused (unless it has the key), as derper does: the address we check must be
// the one we saw, or the one a PROXY protocol header vouched for.
#pragma once

#include <asio.hpp>
#include <string>
#include <vector>

#include "lib/http/head.h"
#include "lib/util/netaddr.h"

namespace derpkit::relay {

class Server;

struct DebugAccess {
  std::vector<netaddr::Prefix> trusted_cidrs;
  std::string debug_key;  // empty: no key grants access
};

// Decides whether the caller at `peer` may read /debug/ with this request.
bool AllowDebugAccess(const http::RequestHead& req, const netaddr::IpAddress& peer,
                      const DebugAccess& access);

// The answer to a refused request: 403 "debug access denied".
http::Response DebugAccessDenied();

// Serves one /debug request of an allowed caller. Runs on a shard's thread; gathers per-client
// views from every shard (each on its own loop) before it returns.
asio::awaitable<http::Response> ServeDebug(const http::RequestHead& req, Server& server);

}  // namespace derpkit::relay
