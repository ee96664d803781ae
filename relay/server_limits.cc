// The parts of Server that belong to issue #10's limits: the main listener's accept rate limit
// (AcceptLoop calls AdmitByAcceptLimit on shard 0's thread) and the Restarting frame sent to
// every DERP connection when the relay stops (Stop() calls SendRestartingToAll on the
// controlling thread; the frames are queued on each shard's own thread).
#include <atomic>
#include <memory>
#include <thread>

#include "lib/derp/messages.h"
#include "lib/net/log.h"
#include "lib/util/go_format.h"
#include "lib/util/netaddr.h"
#include "relay/client_conn.h"
#include "relay/server.h"

namespace derpkit::relay {

bool Server::AdmitByAcceptLimit(asio::ip::tcp::socket& socket) {
  std::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  const std::string source = ec ? std::string("an unknown address")
                                : netaddr::JoinHostPort(peer.address().to_string(), peer.port());
  if (accept_limiter_.Admit(std::chrono::steady_clock::now(), source)) return true;
  // Accepted and closed at once, as derper: the client learns the relay is busy and backs off.
  socket.close(ec);
  return false;
}

void Server::SendRestartingToAll(std::chrono::steady_clock::time_point give_up) {
  if (config_.restart_try_for.count() == 0) return;
  const derp::Restarting frame{static_cast<std::uint32_t>(config_.restart_reconnect_in.count()),
                               static_cast<std::uint32_t>(config_.restart_try_for.count())};
  auto told = std::make_shared<std::atomic<std::size_t>>(0);
  for (auto& s : shards_) {
    asio::post(s->io(), [&s = *s, frame, told] {
      s.ForEachConn([&](ClientConn& conn) {
        if (conn.QueueRestarting(frame)) told->fetch_add(1);
      });
    });
  }
  // Each connection sends FIN after its frame; well-behaved clients hang up at once. Whoever is
  // still connected at half the grace is closed by the caller's CloseAll.
  const auto now = std::chrono::steady_clock::now();
  const auto wait_until = give_up > now ? now + (give_up - now) / 2 : now;
  while (std::chrono::steady_clock::now() < wait_until && Snapshot().current_connections > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::size_t sent = told->load();
  if (sent == 0) return;
  LOG_INFO(
      "derp-relay: told %zu connection(s) to reconnect in %s (Restarting frame); %lld "
      "still connected",
      sent, GoDurationString(config_.restart_reconnect_in).c_str(),
      static_cast<long long>(Snapshot().current_connections));
}

}  // namespace derpkit::relay
