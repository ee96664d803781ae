// RunConnection: owns a DERP connection (ClientConn) from the front door's hand-over to its end,
// running its coroutines on the shard that holds it, and carries it to another shard when it
// moves there (relay/client_conn.h, "Moving").
//
// Thread affinity: called on the connection's shard thread; a move continues on the new shard's.
#pragma once

#include <memory>

namespace derpkit::relay {

class ClientConn;

// Runs `conn` (ClientConn::Serve) on conn->shard(): a new connection, or one that has just
// arrived there.
void RunConnection(std::unique_ptr<ClientConn> conn);

}  // namespace derpkit::relay
