// LoadDocument and LoadMap against real things: files in a temporary directory, cpp-httplib
// servers on 127.0.0.1 port 0 (plain and TLS), and the LocalAPI stand-in on a unix socket.
#include "lib/derpmap/source.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "lib/http/head.h"
#include "lib/net/certs.h"
#include "tests/support/fake_localapi.h"
#include "tests/unit/derpmap/samples.h"

namespace derpkit::derpmap {
namespace {

using namespace std::chrono_literals;
using testing::FakeLocalApi;

constexpr const char* kSmallMap =
    R"({"Regions":{"900":{"RegionID":900,"RegionCode":"lo","RegionName":"Loopback","Nodes":[)"
    R"({"Name":"900a","RegionID":900,"HostName":"localhost","IPv4":"127.0.0.1","DERPPort":13443}]}}})";

// A scratch directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/derpkit-derpmap-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string Write(const std::string& name, std::string_view content) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A cpp-httplib server on 127.0.0.1, port 0, serving on its own thread until destroyed.
template <typename ServerT>
class Serving {
 public:
  template <typename... Args>
  explicit Serving(std::function<void(ServerT&)> routes, Args&&... args)
      : server_(std::forward<Args>(args)...) {
    routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("bind failed");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(10ms);
    if (!server_.is_running()) throw std::runtime_error("server did not start");
  }
  ~Serving() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  ServerT server_;
  int port_ = 0;
  std::thread thread_;
};

void MapRoutes(httplib::Server& s) {
  s.Get("/map", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kSmallMap, "application/json");
  });
  s.Get("/headscale.yaml", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(samples::kProtocolDocYaml, "text/yaml");
  });
  s.Get("/moved",
        [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/map"); });
  s.Get("/loop",
        [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/loop"); });
  s.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content("no map here\nsecond line", "text/plain");
  });
  s.Get("/big", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(2000, ' ') + kSmallMap, "application/json");
  });
  s.Get("/big-chunked", [](const httplib::Request&, httplib::Response& res) {
    // No Content-Length: the limit must stop the transfer while it streams.
    res.set_chunked_content_provider("application/json",
                                     [](std::size_t offset, httplib::DataSink& sink) {
                                       if (offset >= (1 << 20)) {
                                         sink.done();
                                         return true;
                                       }
                                       const std::string block(16384, ' ');
                                       return sink.write(block.data(), block.size());
                                     });
  });
}

std::string Url(int port, const std::string& path, const std::string& scheme = "http") {
  return scheme + "://127.0.0.1:" + std::to_string(port) + path;
}

std::string ErrorOf(const std::vector<std::string>& sources, const LoadOptions& options = {}) {
  auto map = LoadMap(sources, options);
  if (map) return "(loaded)";
  return map.error().ToString();
}

// --- files ---------------------------------------------------------------------------------

TEST(LoadFromFile, ReadsJsonAndYamlByContent) {
  TempDir dir;
  const std::string json = dir.Write("map.json", kSmallMap);
  const std::string yaml = dir.Write("headscale.yaml", samples::kProtocolDocYaml);
  auto map = LoadMap({json}, {});
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.at(900).nodes.at(0).derp_port, 13443);
  auto from_yaml = LoadDocument(yaml, {});
  ASSERT_TRUE(from_yaml) << from_yaml.error().ToString();
  EXPECT_EQ(from_yaml->spelling, Spelling::kYaml);
  auto from_url = LoadDocument("file://" + json, {});
  ASSERT_TRUE(from_url) << from_url.error().ToString();
}

TEST(LoadFromFile, ReadsTheCapturedTestdataMap) {
  const std::string file = std::string(DERPKIT_TESTDATA_DIR) + "/samples/derpmap-good.json";
  auto map = LoadMap({file}, {});
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_TRUE(map->regions.at(900).nodes.at(0).insecure_for_tests);
}

TEST(LoadFromFile, SaysWhatIsWrongWithTheFile) {
  TempDir dir;
  EXPECT_EQ(ErrorOf({dir.path() + "/nope.json"}), dir.path() + "/nope.json: no such file");
  EXPECT_EQ(ErrorOf({dir.path()}), dir.path() + ": is a directory, not a map file");
  EXPECT_EQ(ErrorOf({"file://relative/map.json"}),
            "file://relative/map.json: a file URL must be file:///absolute/path (no host)");
  EXPECT_EQ(ErrorOf({""}), "an empty DERP map source");
  EXPECT_EQ(ErrorOf({}), "no DERP map source given");
  LoadOptions small;
  small.max_bytes = 100;
  const std::string big = dir.Write("big.json", std::string(101, ' '));
  EXPECT_EQ(ErrorOf({big}, small), big + ": larger than the limit of 100 bytes");
}

TEST(LoadFromFile, RefusesABadMapWithTheSourceAndPath) {
  TempDir dir;
  const std::string yaml =
      dir.Write("bad.yaml",
                "regions:\n  900:\n    regionid: 900\n    nodes:\n      - name: a\n"
                "        regionid: 900\n        derpport: 70000\n        hostname: h\n");
  EXPECT_EQ(ErrorOf({yaml}),
            yaml + ": regions.900.nodes[0].derpport: 70000 is out of range 0..65535");
  const std::string json = dir.Write(
      "bad.json", R"({"Regions":{"900":{"RegionID":900,"Nodes":[{"Name":"a","RegionID":900}]}}})");
  EXPECT_EQ(ErrorOf({json}), json + ": Regions.900.Nodes[0].HostName: missing");
  const std::string headscale_mistake =
      dir.Write("mistake.yaml", "regions:\n  900:\n    RegionID: 900\n");
  EXPECT_EQ(ErrorOf({headscale_mistake}),
            headscale_mistake +
                ": regions.900: unknown key \"RegionID\" (Headscale's YAML spells it \"regionid\"; "
                "Headscale would silently ignore \"RegionID\")");
}

TEST(LoadMap, MergesInOrderWithNullDeletionAndReplacement) {
  TempDir dir;
  const std::string base = dir.Write("base.json", samples::kEveryFieldJson);
  const std::string over = dir.Write("over.yaml", R"(regions:
  900: null
  901:
    regionid: 901
    regioncode: replaced
    nodes:
      - {name: 901z, regionid: 901, hostname: z.example.net}
)");
  auto map = LoadMap({base, over}, {});
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.size(), 1u);
  EXPECT_EQ(map->regions.at(901).region_code, "replaced");
  EXPECT_EQ(map->regions.at(901).nodes.at(0).name, "901z");
  // The other order: the JSON map replaces what the YAML set.
  auto reversed = LoadMap({over, base}, {});
  ASSERT_TRUE(reversed) << reversed.error().ToString();
  EXPECT_EQ(reversed->regions.size(), 2u);
  EXPECT_EQ(reversed->regions.at(901).region_code, "away");
}

TEST(LoadMap, NamesBothSourcesOfADuplicateNodeName) {
  TempDir dir;
  const std::string a = dir.Write("a.json", kSmallMap);
  const std::string b =
      dir.Write("b.yaml",
                "regions:\n  901:\n    regionid: 901\n    nodes:\n      - {name: 900a, "
                "regionid: 901, hostname: h}\n");
  EXPECT_EQ(ErrorOf({a, b}), b +
                                 ": regions.901.nodes[0].name: \"900a\" is also the name of "
                                 "Regions.900.Nodes[0] in " +
                                 a + " (names are unique across the map)");
  // Replacing the region that had the name first resolves it.
  const std::string c = dir.Write("c.yaml", "regions:\n  900: null\n");
  auto map = LoadMap({a, b, c}, {});
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.count(900), 0u);
}

TEST(LoadMap, RefusesAMapLeftWithoutRegions) {
  TempDir dir;
  const std::string a = dir.Write("a.json", kSmallMap);
  const std::string b = dir.Write("b.yaml", "regions:\n  900: null\n");
  EXPECT_EQ(ErrorOf({a, b}), a + " + " + b + ": the DERP map has no regions");
}

// --- http(s) -------------------------------------------------------------------------------

TEST(LoadFromUrl, FetchesJsonAndYamlAndFollowsARedirect) {
  Serving<httplib::Server> server(MapRoutes);
  auto map = LoadMap({Url(server.port(), "/map")}, {});
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.at(900).region_code, "lo");
  auto yaml = LoadDocument(Url(server.port(), "/headscale.yaml"), {});
  ASSERT_TRUE(yaml) << yaml.error().ToString();
  EXPECT_EQ(yaml->regions.at(900)->region_code, "custom-east");
  auto moved = LoadMap({Url(server.port(), "/moved")}, {});
  ASSERT_TRUE(moved) << moved.error().ToString();
  EXPECT_EQ(moved->regions.at(900).region_code, "lo");
}

TEST(LoadFromUrl, ReportsStatusRedirectLoopsAndBadUrls) {
  Serving<httplib::Server> server(MapRoutes);
  EXPECT_EQ(ErrorOf({Url(server.port(), "/missing")}),
            Url(server.port(), "/missing") + ": HTTP 404 Not Found: no map here");
  EXPECT_EQ(ErrorOf({Url(server.port(), "/loop")}),
            Url(server.port(), "/loop") + ": more than 5 redirects");
  EXPECT_EQ(ErrorOf({"http://:80/x"}).rfind("http://:80/x: not a usable URL", 0), 0u);
}

TEST(LoadFromUrl, RefusesAnOversizedBody) {
  Serving<httplib::Server> server(MapRoutes);
  LoadOptions options;
  options.max_bytes = 1000;
  EXPECT_EQ(ErrorOf({Url(server.port(), "/big")}, options),
            Url(server.port(), "/big") + ": the response is larger than the limit of 1000 bytes");
  EXPECT_EQ(
      ErrorOf({Url(server.port(), "/big-chunked")}, options),
      Url(server.port(), "/big-chunked") + ": the response is larger than the limit of 1000 bytes");
}

TEST(LoadFromUrl, RefusesADeadPort) {
  // A port that was just ours and is closed now: nothing listens there.
  int port = 0;
  {
    Serving<httplib::Server> server([](httplib::Server&) {});
    port = server.port();
  }
  LoadOptions options;
  options.timeout = 2s;
  EXPECT_EQ(ErrorOf({Url(port, "/map")}, options),
            Url(port, "/map") + ": could not connect to 127.0.0.1:" + std::to_string(port) +
                " (refused, unreachable or no address)");
}

TEST(LoadFromUrl, GivesUpOnAServerThatNeverAnswers) {
  // The kernel completes the handshake from the listen backlog; nobody ever reads or answers.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  LoadOptions options;
  options.timeout = 300ms;
  const std::string error = ErrorOf({Url(port, "/map")}, options);
  ::close(fd);
  EXPECT_EQ(error, Url(port, "/map") + ": no answer from 127.0.0.1:" + std::to_string(port) +
                       " within 300 ms (it closed, or sent nothing)");
}

TEST(LoadFromUrl, VerifiesHttpsAgainstTheGivenCaFile) {
  TempDir dir;
  const net::SelfSignedCert cert = net::GenerateSelfSigned("localhost");
  const std::string cert_file = dir.Write("cert.pem", cert.cert_pem);
  const std::string key_file = dir.Write("key.pem", cert.key_pem);
  Serving<httplib::SSLServer> server(
      [](httplib::SSLServer& s) {
        s.Get("/map", [](const httplib::Request&, httplib::Response& res) {
          res.set_content(kSmallMap, "application/json");
        });
        s.Get("/downgrade", [](const httplib::Request&, httplib::Response& res) {
          res.set_redirect("http://127.0.0.1:1/map");
        });
      },
      cert_file.c_str(), key_file.c_str());
  const std::string url = Url(server.port(), "/map", "https");
  LoadOptions trusting;
  trusting.ca_file = cert_file;
  auto map = LoadMap({url}, trusting);
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.at(900).region_code, "lo");
  const std::string downgrade = Url(server.port(), "/downgrade", "https");
  EXPECT_EQ(ErrorOf({downgrade}, trusting),
            downgrade + ": refusing to follow a redirect from https to http://127.0.0.1:1/map");
  // The system's CAs don't know our self-signed certificate.
  EXPECT_EQ(ErrorOf({url}),
            url + ": the TLS certificate of 127.0.0.1:" + std::to_string(server.port()) +
                " is not trusted: self-signed certificate");
}

// --- local (tailscaled's LocalAPI) ---------------------------------------------------------

LoadOptions LocalOptions(const FakeLocalApi& api) {
  LoadOptions options;
  options.socket_path = api.socket_path();
  options.timeout = 5s;
  return options;
}

TEST(LoadFromLocal, ReadsAContentLengthAnswerAndSendsWhatTailscaledRequires) {
  FakeLocalApi api(kSmallMap);
  auto map = LoadMap({"local"}, LocalOptions(api));
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.at(900).nodes.at(0).name, "900a");
  EXPECT_EQ(api.derpmap_requests(), 1);
  auto request = api.last_request();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->method, "GET");
  EXPECT_EQ(request->target, "/localapi/v0/derpmap");
  ASSERT_NE(request->Find("Host"), nullptr);
  EXPECT_EQ(*request->Find("Host"), "local-tailscaled.sock");
  EXPECT_FALSE(request->Has("Origin"));
  EXPECT_FALSE(request->Has("Referer"));
}

TEST(LoadFromLocal, ReadsAChunkedAnswer) {
  // tailscaled's real map is tab-indented JSON, chunked by Go's server.
  const std::string json = ToJson([] {
    DerpMap map;
    MergeInto(map, *ParseJson(samples::kEveryFieldJson, "x"));
    return map;
  }());
  FakeLocalApi api(json, FakeLocalApi::Framing::kChunked);
  api.SetDerpMap(json, FakeLocalApi::Framing::kChunked, /*chunk_bytes=*/7);
  auto map = LoadMap({"local"}, LocalOptions(api));
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(ToJson(*map), json);
}

TEST(LoadFromLocal, RefusesAnOversizedAnswerInEitherFraming) {
  FakeLocalApi api(std::string(3000, ' ') + kSmallMap, FakeLocalApi::Framing::kChunked);
  LoadOptions options = LocalOptions(api);
  options.max_bytes = 1000;
  EXPECT_EQ(ErrorOf({"local"}, options),
            "local: tailscaled's answer is larger than the limit of 1000 bytes");
  api.SetDerpMap(std::string(3000, ' ') + kSmallMap);
  EXPECT_EQ(ErrorOf({"local"}, options),
            "local: tailscaled's answer is larger than the limit of 1000 bytes");
}

TEST(LoadFromLocal, ReportsARefusalWithItsStatusAndBody) {
  FakeLocalApi api;
  api.SetAnswer({.status = 403, .body = "access denied\nmore detail\n"});
  EXPECT_EQ(ErrorOf({"local"}, LocalOptions(api)),
            "local: tailscaled answered 403 Forbidden: access denied");
}

TEST(LoadFromLocal, SaysWhenTailscaledHasNoMapYet) {
  FakeLocalApi api("null\n");
  EXPECT_EQ(ErrorOf({"local"}, LocalOptions(api)),
            "local: tailscaled has no DERP map yet (is it logged in and connected?)");
}

TEST(LoadFromLocal, SaysWhenTheSocketIsMissing) {
  TempDir dir;
  LoadOptions options;
  options.socket_path = dir.path() + "/tailscaled.sock";
  EXPECT_EQ(ErrorOf({"local"}, options),
            "local: tailscaled's socket " + options.socket_path +
                " does not exist (is tailscaled running? use --socket)");
}

TEST(LoadFromLocal, GivesUpOnADaemonThatNeverAnswers) {
  TempDir dir;
  const std::string path = dir.path() + "/silent.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  LoadOptions options;
  options.socket_path = path;
  options.timeout = 200ms;
  const std::string error = ErrorOf({"local"}, options);
  ::close(fd);
  EXPECT_EQ(error, "local: no answer from tailscaled within 200 ms");
}

// A peer on a unix socket that answers one request with fixed bytes and closes: for answers the
// stand-in (a well-behaved tailscaled) never gives.
class RawUnixServer {
 public:
  RawUnixServer(const std::string& path, std::string answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 4) != 0) {
      throw std::runtime_error("RawUnixServer: cannot listen on " + path);
    }
    thread_ = std::thread([this] { ServeOne(); });
  }
  ~RawUnixServer() {
    thread_.join();
    ::close(fd_);
  }

 private:
  void ServeOne() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return;
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos) {
      pollfd c{conn, POLLIN, 0};
      if (::poll(&c, 1, 5000) != 1) break;
      const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    (void)!::send(conn, answer_.data(), answer_.size(), MSG_NOSIGNAL);
    ::close(conn);
  }

  std::string answer_;
  int fd_ = -1;
  std::thread thread_;
};

TEST(LoadFromLocal, SaysWhatIsWrongWithAMalformedAnswer) {
  const std::string ok = "HTTP/1.1 200 OK\r\n";
  const std::pair<std::string, std::string> cases[] = {
      {"", "local: tailscaled closed the connection without answering"},
      {"garbage\r\n\r\n", "local: tailscaled's answer is not HTTP: " +
                              std::string(http::Describe(http::ParseError::kBadStatusLine))},
      {ok + "Content-Length: 12x\r\n\r\n",
       "local: tailscaled's answer has a malformed Content-Length: 12x"},
      {ok + "Transfer-Encoding: gzip\r\n\r\n",
       "local: tailscaled's answer uses Transfer-Encoding gzip, which we can't read"},
      {ok + "Content-Length: 100\r\n\r\n{\"Regions\"",
       "local: tailscaled closed the connection in the middle of its answer"},
      {ok + "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"Reg",
       "local: tailscaled closed the connection in the middle of its answer"},
      {ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
       "local: tailscaled's chunked answer is malformed: malformed chunk size"},
      {"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"error\":\"no backend\"}",
       "local: tailscaled answered 500 Internal Server Error: {\"error\":\"no backend\"}"},
      // No framing at all: the body ends with the connection, and that is a complete answer.
      {ok + "\r\n" + kSmallMap, "(loaded)"},
  };
  for (const auto& [answer, want] : cases) {
    TempDir dir;
    LoadOptions options;
    options.socket_path = dir.path() + "/raw.sock";
    options.timeout = 5s;
    RawUnixServer server(options.socket_path, answer);
    EXPECT_EQ(ErrorOf({"local"}, options), want) << answer;
  }
}

// Sends `request` to the unix socket at `path` and returns everything the peer answers.
std::string RawExchange(const std::string& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  std::string answer;
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) break;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<std::size_t>(n));
    }
  }
  if (fd >= 0) ::close(fd);
  return answer.substr(0, answer.find("\r\n"));
}

// The stand-in must refuse what tailscaled refuses, or the tests above would prove nothing about
// the Host header we send.
TEST(FakeLocalApi, RefusesWhatTailscaledRefuses) {
  FakeLocalApi api(kSmallMap);
  const std::string path = api.socket_path();
  EXPECT_EQ(RawExchange(path, "GET /localapi/v0/derpmap HTTP/1.1\r\nHost: evil\r\n\r\n"),
            "HTTP/1.1 403 Forbidden");
  EXPECT_EQ(RawExchange(path,
                        "GET /localapi/v0/derpmap HTTP/1.1\r\nHost: local-tailscaled.sock"
                        "\r\nOrigin: http://evil\r\n\r\n"),
            "HTTP/1.1 403 Forbidden");
  EXPECT_EQ(RawExchange(path,
                        "POST /localapi/v0/derpmap HTTP/1.1\r\nHost: local-tailscaled.sock"
                        "\r\n\r\n"),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(RawExchange(path,
                        "GET /localapi/v0/status HTTP/1.1\r\nHost: local-tailscaled.sock"
                        "\r\n\r\n"),
            "HTTP/1.1 404 Not Found");
  EXPECT_EQ(RawExchange(path,
                        "GET /localapi/v0/derpmap HTTP/1.1\r\nHost: local-tailscaled.sock"
                        "\r\n\r\n"),
            "HTTP/1.1 200 OK");
  EXPECT_EQ(api.requests(), 5);
  EXPECT_EQ(api.derpmap_requests(), 2);  // the POST reached the handler; 403s and 404s did not
}

TEST(LoadFromLocal, MergesWithFiles) {
  TempDir dir;
  FakeLocalApi api(kSmallMap, FakeLocalApi::Framing::kChunked);
  const std::string extra = dir.Write("extra.yaml", samples::kProtocolDocYaml);
  // The YAML replaces region 900 from tailscaled's map.
  auto map = LoadMap({"local", extra}, LocalOptions(api));
  ASSERT_TRUE(map) << map.error().ToString();
  EXPECT_EQ(map->regions.at(900).region_code, "custom-east");
}

}  // namespace
}  // namespace derpkit::derpmap
