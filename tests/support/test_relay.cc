#include "tests/support/test_relay.h"

#include <unistd.h>

#include <atomic>

namespace derpkit::testing {
namespace {
std::atomic<int> g_counter{0};
}

TestRelay::TestRelay(TestRelayOptions opts) : tls_(opts.tls) {
  dir_ = std::filesystem::temp_directory_path() /
         ("derpkit-test-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++));
  std::filesystem::create_directories(dir_);
  relay::RelayConfig config;
  config.addr = "127.0.0.1:0";
  config.http_port = -1;
  config.stun = opts.stun;
  config.stun_port = 0;
  config.key_file = (dir_ / "derper.key").string();
  config.workers = opts.workers;
  config.hostname = "localhost";
  if (opts.tls) {
    config.cert_mode = "selfsigned";
    config.cert_dir = (dir_ / "certs").string();
  }
  if (opts.tweak) opts.tweak(config);
  auto ok = config.Validate();
  if (!ok) throw std::runtime_error("test config: " + ok.error());
  server_ =
      std::make_unique<relay::Server>(config, opts.key.value_or(derp::PrivateKey::Generate()));
  server_->Start();
}

TestRelay::~TestRelay() {
  server_->Stop();
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestRelay::url() const {
  if (tls_) return "https://localhost:" + std::to_string(server_->port()) + "/derp";
  return "http://127.0.0.1:" + std::to_string(server_->port()) + "/derp";
}

derpclient::ClientOptions TestRelay::ClientOptionsFor() const {
  derpclient::ClientOptions o;
  o.url = url();
  if (tls_) {
    o.dial_host = "127.0.0.1";
    o.tls.ca_file = (dir_ / "certs" / "localhost.crt").string();
  }
  o.connect_timeout = std::chrono::milliseconds(5000);
  return o;
}

std::unique_ptr<derpclient::Client> ConnectClient(asio::io_context& io,
                                                  derpclient::ClientOptions opts) {
  auto c = std::make_unique<derpclient::Client>(io, std::move(opts));
  auto ok = Await(io, c->Connect());
  if (!ok) throw std::runtime_error("connect: " + ok.error());
  RecvUntil<derpclient::ServerInfoMessage>(io, *c);
  return c;
}

derp::PrivateKey TestKey(std::uint8_t seed) {
  std::array<std::byte, 32> raw;
  raw.fill(std::byte{seed});
  raw[0] &= std::byte{248};
  raw[31] = (raw[31] & std::byte{127}) | std::byte{64};
  return derp::PrivateKey::FromRaw(raw);
}

}  // namespace derpkit::testing
