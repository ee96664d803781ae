#include "relay/conn_runner.h"

#include <string>
#include <utility>

#include "lib/net/log.h"
#include "relay/client_conn.h"
#include "relay/server.h"
#include "relay/shard.h"

namespace derpkit::relay {

void RunConnection(std::unique_ptr<ClientConn> conn) {
  ClientConn& serving = *conn;
  asio::co_spawn(
      serving.shard().io(), serving.Serve(),
      [owned = std::move(conn)](std::exception_ptr e, CloseReason reason) mutable {
        if (!e && owned->leaving()) {
          // Serve() returned between reads with nothing in flight, off its old shard: the new
          // one takes it in and runs it on (Shard::PostArrival).
          Shard& to = owned->shard().server().shard(owned->move_target());
          to.PostArrival(std::move(owned));
          return;
        }
        if (e) {
          LOG_ERROR("%s: internal error in a DERP connection", owned->remote().c_str());
        } else if (reason != CloseReason::kPeerClosed && reason != CloseReason::kServerShutdown) {
          LOG_DEBUG("%s: DERP connection closed: %s", owned->remote().c_str(),
                    std::string(kCloseReasonLabel[static_cast<int>(reason)]).c_str());
        }
      });
}

}  // namespace derpkit::relay
