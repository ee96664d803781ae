// Real programs as children of a test (nginx, HAProxy, ...): finding them on PATH or in the sbin
// directories, a scratch directory for their config and logs, and a child process that leads its
// own process group so that teardown ends every worker it forked, also when the test fails.
//
// Thread affinity: the test's main thread. Blocking calls only (start-up and teardown).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace derpkit::testing {

// Returns the full path of `name`, searching PATH and then the sbin directories (Debian puts
// haproxy and nginx in /usr/sbin, which a non-root PATH lacks); empty when it is not installed.
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
    std::string tmpl = (std::filesystem::temp_directory_path() / "derpkit-test-XXXXXX").string();
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
  // Starts argv[0] with stdout and stderr appended to `log`; throws when it cannot be spawned.
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
    using namespace std::chrono_literals;
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

  // True once the process has ended (and been reaped: its pid is never signalled again).
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

// Returns a TCP port that was free on `address` a moment ago, for a child that must be told its
// port (pebble, a relay pebble validates). Chosen below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range): an ephemeral port, once released, can be taken by any outgoing
// connection on the machine before the child binds it (a CI run lost acme_pebble_test to
// "Address already in use" that way, beside other tests' loopback connections); a port below
// the range is taken only by an explicit bind. Falls back to an ephemeral one when none is free.
inline std::uint16_t PickFreePort(
    const asio::ip::address& address = asio::ip::make_address("127.0.0.1")) {
  asio::io_context io;
  unsigned ephemeral_low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> ephemeral_low;
  if (ephemeral_low > 10024) {
    // A different start per process, so that tests running side by side rarely try the same
    // ports; then onwards, so that one process never gets a port it was given before.
    static unsigned next =
        10000 + static_cast<unsigned>(::getpid()) * 7919u % (ephemeral_low - 10024);
    for (int attempt = 0; attempt < 200; ++attempt) {
      next = next + 1 >= ephemeral_low ? 10000 : next + 1;
      std::error_code ec;
      asio::ip::tcp::acceptor probe(io);
      probe.open(address.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6(), ec);
      if (!ec) probe.bind(asio::ip::tcp::endpoint(address, static_cast<std::uint16_t>(next)), ec);
      if (!ec) return static_cast<std::uint16_t>(next);
    }
  }
  asio::ip::tcp::acceptor probe(io, asio::ip::tcp::endpoint(address, 0));
  return probe.local_endpoint().port();
}

}  // namespace derpkit::testing
