// Real proxies for netcheck's side-check tests: nginx and HAProxy as child processes
// (tests/support/child_process.h) with their config in a scratch directory, started on a free
// loopback port (retried when another process takes it first) and stopped with their whole process
// group.
//
// Thread affinity: the test's main thread. Blocking calls only (start-up and teardown).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/child_process.h"

namespace derpkit::testing {

using namespace std::chrono_literals;

enum class ProxyKind { kNginx, kHaproxy };

// A proxy child process listening on 127.0.0.1:{port0}, {port1}, ... ("{dir}" in the config is
// its scratch directory). Start() returns nullptr with the proxy's output in `failure` when it
// never accepted within 5 s on any of 5 attempts with fresh ports.
class RunningProxy {
 public:
  static std::unique_ptr<RunningProxy> Start(ProxyKind kind, const std::string& config_template,
                                             std::size_t frontends, std::string& failure) {
    const std::string program = FindProgram(kind == ProxyKind::kNginx ? "nginx" : "haproxy");
    if (program.empty()) {
      failure = std::string(kind == ProxyKind::kNginx ? "nginx" : "haproxy") +
                " is not installed: run scripts/install-deps.sh";
      return nullptr;
    }
    for (int attempt = 1; attempt <= 5; ++attempt) {
      auto proxy = std::unique_ptr<RunningProxy>(new RunningProxy());
      std::string config = config_template;
      Replace(config, "{dir}", proxy->dir_.path().string());
      for (std::size_t i = 0; i < frontends; ++i) {
        proxy->ports_.push_back(PickFreePort());
        Replace(config, "{port" + std::to_string(i) + "}", std::to_string(proxy->ports_.back()));
      }
      const auto config_path = proxy->dir_.path() / "proxy.conf";
      std::ofstream(config_path) << config;
      const auto log = proxy->dir_.path() / "output.log";
      std::vector<std::string> argv;
      if (kind == ProxyKind::kHaproxy) {
        argv = {program, "-f", config_path.string(), "-db"};
      } else {
        const std::string dir = proxy->dir_.path().string();
        argv = {program,
                "-c",
                config_path.string(),
                "-p",
                dir + "/",
                "-e",
                dir + "/error.log",
                "-g",
                "daemon off; pid " + dir + "/nginx.pid;"};
      }
      proxy->process_ = std::make_unique<ChildProcess>(argv, log);
      if (proxy->WaitUntilAccepting(std::chrono::steady_clock::now() + 5s)) return proxy;
      failure = "attempt " + std::to_string(attempt) + ": " + program +
                " did not accept within 5 s\n--- config:\n" + config + "\n--- output:\n" +
                ReadWholeFile(log) + ReadWholeFile(proxy->dir_.path() / "error.log");
    }
    return nullptr;
  }

  std::uint16_t port(std::size_t i) const { return ports_.at(i); }
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  RunningProxy() = default;

  static void Replace(std::string& text, const std::string& key, const std::string& value) {
    for (std::size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
      text.replace(at, key.size(), value);
      at += value.size();
    }
  }

  bool WaitUntilAccepting(std::chrono::steady_clock::time_point deadline) {
    asio::io_context io;
    for (std::uint16_t port : ports_) {
      for (;;) {
        if (std::chrono::steady_clock::now() >= deadline || process_->Exited()) return false;
        asio::ip::tcp::socket socket(io);
        asio::error_code ec;
        socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
        if (!ec) break;
        std::this_thread::sleep_for(20ms);
      }
    }
    return true;
  }

  ScratchDir dir_;
  std::vector<std::uint16_t> ports_;
  std::unique_ptr<ChildProcess> process_;  // declared last: stopped before dir_ is removed
};

}  // namespace derpkit::testing
