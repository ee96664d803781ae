// The front door: one accepted TCP connection, from TLS (when the listener has it) through the
// strict HTTP head parser to either an HTTP response or a DERP upgrade handed to ClientConn.
#pragma once

#include <asio.hpp>

namespace derpkit::relay {

class Shard;

enum class ListenerKind {
  kMain,      // -a: TLS or plain, serves /derp
  kHttpPort,  // --http-port beside a TLS main listener: captive-portal checks and redirects
  kDebug,     // --debug-addr: /debug/ only, plain HTTP
};

// Serves one connection on `shard` until it closes. Never throws for network errors.
asio::awaitable<void> ServeConnection(Shard& shard, asio::ip::tcp::socket socket,
                                      ListenerKind kind);

}  // namespace derpkit::relay
