// An in-process derp-relay on 127.0.0.1 port 0 (real sockets, real TLS) for integration tests,
// and helpers to connect derpclient::Clients to it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lib/derpclient/client.h"
#include "relay/config.h"
#include "relay/server.h"
#include "tests/support/run.h"

namespace derpkit::testing {

struct TestRelayOptions {
  bool tls = false;
  int workers = 1;
  bool stun = false;
  // Applied to the config after the defaults below.
  std::function<void(relay::RelayConfig&)> tweak;
  // The server key; a fresh one when unset.
  std::optional<derp::PrivateKey> key = std::nullopt;
};

class TestRelay {
 public:
  explicit TestRelay(TestRelayOptions opts = {});
  ~TestRelay();

  relay::Server& server() { return *server_; }
  relay::StatsSnapshot stats() const { return server_->Snapshot(); }
  // http://127.0.0.1:<port>/derp or https://localhost:<port>/derp
  std::string url() const;
  std::uint16_t port() const { return server_->port(); }
  const std::filesystem::path& dir() const { return dir_; }
  // Client options that reach this relay (CA file for TLS).
  derpclient::ClientOptions ClientOptionsFor() const;

 private:
  std::filesystem::path dir_;
  bool tls_;
  std::unique_ptr<relay::Server> server_;
};

// A connected client that has read its ServerInfo.
std::unique_ptr<derpclient::Client> ConnectClient(asio::io_context& io,
                                                  derpclient::ClientOptions opts);

// Receives messages until one of type M arrives (skipping KeepAlive/others); fails on error.
template <typename M>
M RecvUntil(asio::io_context& io, derpclient::Client& c,
            std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("no message of the wanted type in time");
    auto m = Await(io, c.Recv(), left);
    if (!m) throw std::runtime_error("recv failed: " + m.error());
    if (auto* want = std::get_if<M>(&*m)) return *want;
  }
}

// A private key with every byte = `seed` (clamped), so tests have stable, distinct keys.
derp::PrivateKey TestKey(std::uint8_t seed);

}  // namespace derpkit::testing
