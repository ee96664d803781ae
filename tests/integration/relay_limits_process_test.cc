// derp-relay as a real process, for issue #10's limits: the new flags (--help, a bad value exits
// 2 with one line), and SIGTERM with a DERP client connected: the client is sent the Restarting
// frame with the flag's values, and the process exits 0 by itself.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/test_relay.h"

extern char** environ;

namespace derpkit::testing {
namespace {

const std::string kRelay = std::string(DERPKIT_BINARY_DIR) + "/relay/derp-relay";

struct Scratch {
  Scratch() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "derpkit-limits-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A child process with its output in a file; killed (SIGKILL) if still running at the end.
class Child {
 public:
  Child(std::vector<std::string> argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int err = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) throw std::system_error(err, std::system_category(), "posix_spawn");
  }
  ~Child() {
    if (status_) return;
    ::kill(pid_, SIGKILL);
    int ignored = 0;
    ::waitpid(pid_, &ignored, 0);
  }
  void Signal(int signo) { ::kill(pid_, signo); }
  // The wait status once the process has ended, polling up to `timeout`.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout) {
    WaitUntil(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
          return status_.has_value();
        },
        timeout);
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs the relay to completion with `args`; returns its exit code and output.
std::pair<int, std::string> RunRelay(const Scratch& dir, std::vector<std::string> args) {
  args.insert(args.begin(), kRelay);
  Child child(args, dir.path / "run.log");
  const auto status = child.WaitExit(std::chrono::seconds(20));
  if (!status || !WIFEXITED(*status)) return {-1, ReadFile(dir.path / "run.log")};
  return {WEXITSTATUS(*status), ReadFile(dir.path / "run.log")};
}

TEST(RelayLimitsProcess, HelpListsTheFlagsAndABadValueExits2WithOneLine) {
  Scratch dir;
  auto [rc, help] = RunRelay(dir, {"--help"});
  EXPECT_EQ(rc, 0);
  for (const char* flag :
       {"--accept-connection-limit", "--accept-connection-burst", "--bootstrap-dns-names",
        "--unpublished-bootstrap-dns-names", "--restart-reconnect-in", "--restart-try-for",
        "--move-gather-below", "--move-spread-above"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--accept-connection-limit", "fast"},
        std::vector<std::string>{"--accept-connection-limit=-1", "(negative)"},
        std::vector<std::string>{"--accept-connection-burst=-5", "(negative)"},
        std::vector<std::string>{"--restart-try-for", "5"},
        std::vector<std::string>{"--unpublished-bootstrap-dns-names", "a.example/"},
        std::vector<std::string>{"--move-gather-below", "1.5"},
        std::vector<std::string>{"--move-gather-below", "nan"},
        std::vector<std::string>{"--move-spread-above", "0.2"}}) {
    std::vector<std::string> args = {"-c", (dir.path / "k").string(), "-a", "127.0.0.1:0"};
    args.push_back(bad[0]);
    if (bad[1] != "(negative)") args.push_back(bad[1]);
    auto [code, out] = RunRelay(dir, args);
    EXPECT_EQ(code, 2) << bad[0] << " " << bad[1] << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  }
  // The placement marks' line says which rule failed, with the values as typed.
  auto [code, out] = RunRelay(dir, {"-c", (dir.path / "k").string(), "-a", "127.0.0.1:0",
                                    "--move-gather-below", "0.6", "--move-spread-above", "0.4"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("--move-spread-above 0.4: must be a fraction of a core from "
                     "--move-gather-below (0.6) to 1"),
            std::string::npos)
      << out;
}

TEST(RelayLimitsProcess, SigtermSendsRestartingToClientsAndExitsCleanly) {
  Scratch dir;
  const auto log = dir.path / "relay.log";
  Child relay(
      {kRelay, "-a", "127.0.0.1:0", "-c", (dir.path / "derper.key").string(), "--stun=false",
       "--http-port=-1", "--restart-reconnect-in=300ms", "--restart-try-for=4s",
       "--accept-connection-limit=100", "--accept-connection-burst=10"},
      log);
  std::smatch m;
  const std::regex url_re("http://127\\.0\\.0\\.1:([0-9]+)/derp");
  std::string text;
  ASSERT_TRUE(WaitUntil([&] {
    text = ReadFile(log);
    return std::regex_search(text, m, url_re);
  })) << text;
  derpclient::ClientOptions opts;
  opts.url = m[0].str();
  opts.connect_timeout = std::chrono::milliseconds(5000);
  asio::io_context io;
  auto client = ConnectClient(io, opts);

  relay.Signal(SIGTERM);
  const auto r = RecvUntil<derpclient::RestartingMessage>(io, *client);
  EXPECT_EQ(r.restarting.reconnect_in_ms, 300u);
  EXPECT_EQ(r.restarting.try_for_ms, 4000u);
  EXPECT_FALSE(Await(io, client->Recv())) << "the relay hangs up after Restarting";
  client->Close();

  const auto status = relay.WaitExit(std::chrono::seconds(30));
  ASSERT_TRUE(status) << "still running 30 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(log);
  const std::string out = ReadFile(log);
  EXPECT_NE(out.find("told 1 connection(s) to reconnect in 300ms"), std::string::npos) << out;
  EXPECT_NE(out.find("derp-relay: stopped"), std::string::npos) << out;
}

}  // namespace
}  // namespace derpkit::testing
