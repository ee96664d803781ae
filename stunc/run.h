// Runs stunc's requests: resolves the server, opens one StunSocket of its family, sends one
// request (or --count of them, --interval apart, overlapping like ping's) and collects the
// outcomes. Printing is the caller's (report.h), through the callbacks, so lines appear as
// answers arrive.
//
// Thread affinity: Run() owns an io_context and runs it on the calling thread; the callbacks run
// on that thread. SIGINT/SIGTERM during Run() stop sending and end it early, like ping.
#pragma once

#include <asio/ip/udp.hpp>
#include <functional>
#include <string>
#include <vector>

#include "lib/net/stun_client.h"
#include "stunc/config.h"

namespace derpkit::stunc {

struct Reply {
  int seq = 0;  // 1-based, in sending order
  net::StunAnswer answer;
};

struct Miss {
  int seq = 0;
  net::StunFailure failure;
};

struct RunResult {
  // Set when no request could be sent at all (resolution, socket): the one line to print.
  std::string error;
  asio::ip::udp::endpoint server;  // the resolved address the requests go to
  // The socket's port with the source address the kernel routes to `server` from (the socket is
  // bound to the wildcard, so this is what the server should see on a path without NAT).
  asio::ip::udp::endpoint local;
  int sent = 0;
  bool interrupted = false;    // a signal ended the run
  std::vector<Reply> replies;  // in arrival order
  std::vector<Miss> misses;    // in the order they were decided
};

struct RunCallbacks {
  std::function<void(const RunResult&)> started;  // after resolving and opening the socket
  std::function<void(const Reply&)> reply;
  std::function<void(const Miss&)> miss;
};

RunResult Run(const StuncConfig& config, const RunCallbacks& callbacks);

}  // namespace derpkit::stunc
