// Real proxies for netcheck's side-check tests: nginx and HAProxy as child processes with their
// config in a scratch directory, started on a free loopback port (retried when another process
// takes it first) and stopped with their whole process group.
//
// Thread affinity: the test's main thread. Blocking calls only (start-up and teardown).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace derpkit::testing {

using namespace std::chrono_literals;

// Returns the full path of `name` from PATH or the sbin directories (Debian keeps nginx and
// haproxy in /usr/sbin); empty when it is not installed.
inline std::string FindProgram(const std::string& name) {
  const char* path = ::getenv("PATH");
  std::string dirs = std::string(path != nullptr ? path : "") + ":/usr/local/sbin:/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

inline std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A scratch directory, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "derpkit-side-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child leading its own process group (nginx forks workers into it). The destructor ends the
// group: SIGTERM, up to 3 s for a clean exit, then SIGKILL.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    const int err = ::posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) {
      pid_ = -1;
      throw std::system_error(err, std::system_category(), "posix_spawn " + argv[0]);
    }
  }
  ~ChildProcess() {
    if (pid_ <= 0 || Exited()) return;
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (!Exited() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    if (!Exited()) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool Exited() {
    if (exited_) return true;
    int status = 0;
    exited_ = ::waitpid(pid_, &status, WNOHANG) == pid_;
    return exited_;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Returns a port that was free on 127.0.0.1 a moment ago.
inline std::uint16_t PickFreePort() {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io,
                                asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

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
