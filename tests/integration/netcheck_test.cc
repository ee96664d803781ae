// netcheck with `local` DERP maps: the real binary against a stand-in tailscaled LocalAPI
// (tests/support/fake_localapi.h) whose map points at an in-process derp-relay with STUN on
// 127.0.0.1. Covers the default source (local when the socket exists), an explicit
// `--derp-map local`, merging local with a file, and a LocalAPI that refuses.
// (netcheck_test.sh covers the rest of the binary.) Never reaches beyond loopback: every run has
// a socket that exists or a --derp-map, so the public-map fallback is never taken.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/fake_localapi.h"
#include "tests/support/test_relay.h"

namespace derpkit::testing {
namespace {

struct Result {
  int status = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the netcheck binary (bounded by timeout(1)) with --portmap=false and `args`.
Result RunNetcheck(const std::string& args) {
  char err_path[] = "/tmp/netcheck-test-stderr-XXXXXX";
  const int fd = ::mkstemp(err_path);
  if (fd >= 0) ::close(fd);
  const std::string command = "timeout 30 " DERPKIT_BINARY_DIR
                              "/netcheck/netcheck --portmap=false " +
                              args + " 2>" + err_path;
  Result r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = ReadFile(err_path);
  ::unlink(err_path);
  return r;
}

std::string RegionJson(int id, const std::string& code, int stun_port) {
  const std::string sid = std::to_string(id);
  return "\"" + sid + "\": {\"RegionID\": " + sid + ", \"RegionCode\": \"" + code +
         "\", \"RegionName\": \"Region " + code + "\", \"Nodes\": [{\"Name\": \"" + sid +
         "a\", \"RegionID\": " + sid +
         ", \"HostName\": \"localhost\", \"IPv4\": \"127.0.0.1\", \"IPv6\": \"none\", "
         "\"STUNPort\": " +
         std::to_string(stun_port) + "}]}";
}

TestRelayOptions WithStun() {
  TestRelayOptions options;
  options.stun = true;
  return options;
}

class NetcheckLocal : public ::testing::Test {
 protected:
  NetcheckLocal()
      : relay_(WithStun()),
        api_("{\"Regions\": {" + RegionJson(900, "lo", relay_.server().stun_port()) + "}}\n") {}

  TestRelay relay_;
  FakeLocalApi api_;
};

TEST_F(NetcheckLocal, DefaultSourceIsTailscaledWhenItsSocketExists) {
  const Result r = RunNetcheck("--format json --socket " + api_.socket_path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("DERP map from tailscaled (local, " + api_.socket_path() + "): 1 region"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(api_.derpmap_requests(), 1);
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["UDP"], true);
  EXPECT_TRUE(report["RegionLatency"].contains("900")) << r.out;
  EXPECT_EQ(report["PreferredDERP"], 900);
  EXPECT_EQ(report["GlobalV4"].get<std::string>().rfind("127.0.0.1:", 0), 0u) << r.out;
}

TEST_F(NetcheckLocal, ExplicitLocalMergesWithAFile) {
  // A second region from a file; its STUN port is the in-process relay's too, so both answer.
  char dir_template[] = "/tmp/netcheck-test-map-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const std::string file = dir + "/extra.json";
  std::ofstream(file) << "{\"Regions\": {" << RegionJson(901, "xtr", relay_.server().stun_port())
                      << "}}\n";
  const Result r = RunNetcheck("--format json --derp-map local --derp-map " + file + " --socket " +
                               api_.socket_path());
  std::remove(file.c_str());
  ::rmdir(dir.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("DERP map from local, " + file + ": 2 regions"), std::string::npos) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_TRUE(report["RegionLatency"].contains("900")) << r.out;
  EXPECT_TRUE(report["RegionLatency"].contains("901")) << r.out;
}

TEST_F(NetcheckLocal, RefusingLocalApiIsAnInputError) {
  FakeLocalApi::Answer refused;
  refused.status = 403;
  refused.body = "access denied\n";
  api_.SetAnswer(refused);
  const Result r = RunNetcheck("--derp-map local --socket " + api_.socket_path());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("netcheck: cannot use the DERP map: local"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("403"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace derpkit::testing
