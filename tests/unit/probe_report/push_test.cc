// The Pushgateway client against a real Debian prometheus-pushgateway on 127.0.0.1 (a free port,
// no persistence file): the pushed series are scraped back from the gateway, a second push
// replaces the group (PUT: vanished probes and families disappear), label values that need it go
// base64url, a route prefix works, and every failure says the URL and what went wrong: HTTP
// status with the gateway's words, nothing listening, a gateway that never answers, an untrusted
// TLS certificate, bad options. Fails (does not skip) when the gateway is not installed.
#include "probe/push.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <asio.hpp>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "lib/http/url.h"
#include "tests/support/child_process.h"
#include "tests/unit/probe_report/snapshots.h"

namespace derpkit::probe {
namespace {

using namespace std::chrono_literals;
using derpkit::testing::ChildProcess;
using derpkit::testing::FindProgram;
using derpkit::testing::PickFreePort;
using derpkit::testing::ReadWholeFile;
using derpkit::testing::ScratchDir;
using fixtures::RichSnapshot;

constexpr auto kReadyTimeout = 15s;

// A prometheus-pushgateway of our own with `extra` flags, on a free port, without a persistence
// file (Debian's default would be /var/lib/prometheus); the process group ends with the object.
class Gateway {
 public:
  explicit Gateway(std::vector<std::string> extra = {}, std::string ready_path = "/-/ready")
      : extra_(std::move(extra)), ready_path_(std::move(ready_path)) {}

  // Starts it and polls ready_path until it answers 200 (bounded); a few ports are tried in case
  // another process took the one picked.
  ::testing::AssertionResult Start() {
    const std::string binary = FindProgram("prometheus-pushgateway");
    if (binary.empty()) {
      return ::testing::AssertionFailure()
             << "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)";
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = PickFreePort();
      std::vector<std::string> argv = {"/usr/bin/timeout", "120", binary,
                                       "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                       "--persistence.file="};
      argv.insert(argv.end(), extra_.begin(), extra_.end());
      child_ = std::make_unique<ChildProcess>(argv, log());
      const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
      while (std::chrono::steady_clock::now() < deadline && !child_->Exited()) {
        if (Get(ready_path_, 1s).has_value()) return ::testing::AssertionSuccess();
        std::this_thread::sleep_for(20ms);
      }
      child_.reset();
    }
    return ::testing::AssertionFailure() << "the pushgateway did not become ready:\n"
                                         << ReadWholeFile(log());
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // GET `path`: the body of a 200, else nullopt.
  std::optional<std::string> Get(const std::string& path,
                                 std::chrono::milliseconds timeout = 5s) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    auto res = client.Get(path);
    if (!res || res->status != 200) return std::nullopt;
    return res->body;
  }
  std::string Scrape(const std::string& path = "/metrics") const { return Get(path).value_or(""); }

  // Raw requests, to set up what PushMetrics must cope with; the HTTP status (0: no answer).
  int Put(const std::string& path, const std::string& body) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5s);
    auto res = client.Put(path, body, "text/plain; version=0.0.4");
    return res ? res->status : 0;
  }
  int Delete(const std::string& path) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5s);
    auto res = client.Delete(path);
    return res ? res->status : 0;
  }

 private:
  std::filesystem::path log() const { return dir_.path() / "pushgateway.log"; }

  std::vector<std::string> extra_;
  std::string ready_path_;
  ScratchDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> child_;
};

// The sample lines of `scrape` for `family` whose text contains every one of `needles`.
std::vector<std::string> Lines(const std::string& scrape, const std::string& family,
                               const std::vector<std::string>& needles) {
  std::vector<std::string> out;
  std::istringstream in(scrape);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with(family + "{") && !line.starts_with(family + " ")) continue;
    bool all = true;
    for (const auto& n : needles) all = all && line.find(n) != std::string::npos;
    if (all) out.push_back(line);
  }
  return out;
}

PushOptions Options(const Gateway& g, const std::string& instance) {
  PushOptions o;
  o.url = g.url();
  o.grouping_labels = {{"instance", instance}};
  o.timeout = 5000ms;
  return o;
}

TEST(Push, SeriesLandInTheGateway) {
  Gateway g;
  ASSERT_TRUE(g.Start());
  EXPECT_EQ(PushMetrics(Options(g, "probe-host"), RichSnapshot()), std::nullopt);
  const std::string scrape = g.Scrape();
  ASSERT_FALSE(scrape.empty());
  const std::vector<std::string> group = {"instance=\"probe-host\"", "job=\"derp-probe\""};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), group.begin(), group.end());
    return more;
  };
  const auto ok = Lines(scrape, "derpprobe_result", with({"name=\"derp/test-a/1a/tls\""}));
  ASSERT_EQ(ok.size(), 1u) << scrape;
  EXPECT_TRUE(ok[0].ends_with(" 1")) << ok[0];
  EXPECT_NE(ok[0].find("region=\"test-a\""), std::string::npos);
  const auto bad = Lines(scrape, "derpprobe_result", with({"name=\"derp/test-b/2a/udp\""}));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_TRUE(bad[0].ends_with(" 0")) << bad[0];
  // 23 probes minus the never-run mesh and the five qd runs still going.
  EXPECT_EQ(Lines(scrape, "derpprobe_result", group).size(), 17u);
  EXPECT_EQ(Lines(scrape, "derpprobe_derp_qd_probe_delays_seconds_bucket",
                  with({"name=\"derp/test-a/1a/1b/qd\"", "le=\"+Inf\""}))
                .size(),
            1u);
  EXPECT_EQ(Lines(scrape, "derpprobe_probes", with({})).size(), 1u);
  // The gateway's own record of the push.
  EXPECT_EQ(Lines(scrape, "push_time_seconds", group).size(), 1u);
  EXPECT_EQ(Lines(scrape, "push_failure_time_seconds", group).size(), 1u);
  EXPECT_TRUE(Lines(scrape, "push_failure_time_seconds", group)[0].ends_with(" 0"));
}

TEST(Push, ASecondPushReplacesTheGroup) {
  Gateway g;
  ASSERT_TRUE(g.Start());
  ASSERT_EQ(PushMetrics(Options(g, "replace"), RichSnapshot()), std::nullopt);
  // The map lost node 1b and bw probing was switched off.
  ProberSnapshot later = RichSnapshot();
  std::erase_if(later.probes, [](const ProbeSnapshot& p) {
    return p.spec.kind == ProbeKind::kBw || p.spec.name.find("/1b/") != std::string::npos;
  });
  ASSERT_EQ(PushMetrics(Options(g, "replace"), later), std::nullopt);
  const std::string scrape = g.Scrape();
  const std::vector<std::string> group = {"instance=\"replace\""};
  EXPECT_FALSE(Lines(scrape, "derpprobe_result", {"name=\"derp/test-a/1a/tls\""}).empty());
  EXPECT_TRUE(Lines(scrape, "derpprobe_result", {"name=\"derp/test-a/1b/tls\""}).empty())
      << "a probe that left the map kept its series";
  EXPECT_TRUE(Lines(scrape, "derpprobe_derp_bw_probe_size_bytes", group).empty())
      << "a family that is gone kept its series";
  EXPECT_EQ(Lines(scrape, "derpprobe_probes", group).size(), 1u);
}

TEST(Push, LabelValuesThatAreNotPlainWordsGoBase64) {
  Gateway g;
  ASSERT_TRUE(g.Start());
  PushOptions o = Options(g, "rack 4/host.example");
  o.grouping_labels.emplace_back("site", "");
  o.job = "derp probe/cron";
  ASSERT_EQ(PushMetrics(o, RichSnapshot()), std::nullopt);
  const auto lines = Lines(g.Scrape(), "derpprobe_probes",
                           {"instance=\"rack 4/host.example\"", "job=\"derp probe/cron\""});
  ASSERT_EQ(lines.size(), 1u) << g.Scrape();
  EXPECT_TRUE(lines[0].ends_with(" 23"));
}

TEST(Push, RoutePrefixAndItsAbsence) {
  Gateway g({"--web.route-prefix=/pgw"}, "/pgw/-/ready");
  ASSERT_TRUE(g.Start());
  PushOptions o = Options(g, "prefixed");
  o.url = g.url() + "/pgw/";
  EXPECT_EQ(PushMetrics(o, RichSnapshot()), std::nullopt);
  EXPECT_EQ(Lines(g.Scrape("/pgw/metrics"), "derpprobe_probes", {"instance=\"prefixed\""}).size(),
            1u);

  o.url = g.url();  // without the prefix: the gateway answers 404
  const auto error = PushMetrics(o, RichSnapshot());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(*error,
            "push to " + g.url() + " (job derp-probe): HTTP 404 Not Found: 404 page not found");
}

TEST(Push, HttpErrorQuotesTheGateway) {
  Gateway g;
  ASSERT_TRUE(g.Start());
  // Another job's derpprobe_probes as a counter: the gateway refuses ours (a gauge) with 400.
  ASSERT_EQ(g.Put("/metrics/job/other", "# TYPE derpprobe_probes counter\nderpprobe_probes 1\n"),
            200);
  const auto error = PushMetrics(Options(g, "h"), RichSnapshot());
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->starts_with("push to " + g.url() +
                                 " (job derp-probe): HTTP 400 Bad Request: pushed metrics are "
                                 "invalid or inconsistent with existing metrics"))
      << *error;
  EXPECT_EQ(error->find('\n'), std::string::npos);
  ASSERT_EQ(g.Delete("/metrics/job/other"), 202);
  EXPECT_EQ(PushMetrics(Options(g, "h"), RichSnapshot()), std::nullopt);
}

TEST(Push, NothingListening) {
  PushOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(PickFreePort());
  o.grouping_labels = {{"instance", "h"}};
  const auto error = PushMetrics(o, RichSnapshot());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(*error, "push to " + o.url + " (job derp-probe): could not connect to " +
                        o.url.substr(7) + " (refused, unreachable or no address)");
}

TEST(Push, AGatewayThatNeverAnswersTimesOut) {
  // Connections complete in the kernel's backlog but nobody reads or answers.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io,
                                 asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  PushOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  o.timeout = 300ms;
  const auto error = PushMetrics(o, RichSnapshot());
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->starts_with("push to " + o.url + " (job derp-probe): "));
  EXPECT_TRUE(error->find("no answer from") != std::string::npos ||
              error->find("sending the metrics") != std::string::npos)
      << *error;
  EXPECT_NE(error->find("300 ms"), std::string::npos) << *error;
}

TEST(Push, HttpsIsSpokenAndCertificatesAreChecked) {
  ScratchDir dir;
  const auto cert = dir.path() / "cert.pem", key = dir.path() / "key.pem";
  const std::string openssl =
      "timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(openssl.c_str()), 0);
  const auto config = dir.path() / "web.yml";
  std::ofstream(config) << "tls_server_config:\n  cert_file: " << cert.string()
                        << "\n  key_file: " << key.string() << "\n";
  // Gateway speaks plain HTTP to poll readiness; here a client that does not verify polls.
  const std::string binary = FindProgram("prometheus-pushgateway");
  ASSERT_FALSE(binary.empty()) << "prometheus-pushgateway is not installed";
  const std::uint16_t port = PickFreePort();
  ChildProcess child(
      {"/usr/bin/timeout", "120", binary, "--web.listen-address=127.0.0.1:" + std::to_string(port),
       "--persistence.file=", "--web.config.file=" + config.string()},
      dir.path() / "pushgateway.log");
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  bool ready = false;
  for (auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
       !ready && std::chrono::steady_clock::now() < deadline && !child.Exited();) {
    httplib::Client client(url);
    client.enable_server_certificate_verification(false);
    client.set_connection_timeout(1s);
    client.set_read_timeout(1s);
    auto res = client.Get("/-/ready");
    ready = res && res->status == 200;
    if (!ready) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(ready) << ReadWholeFile(dir.path() / "pushgateway.log");

  PushOptions o;
  o.url = url;
  o.grouping_labels = {{"instance", "h"}};
  const auto error = PushMetrics(o, RichSnapshot());
  ASSERT_TRUE(error.has_value());
  EXPECT_TRUE(error->starts_with("push to " + url +
                                 " (job derp-probe): the TLS certificate of 127.0.0.1:" +
                                 std::to_string(port) + " is not trusted: "))
      << *error;
}

TEST(Push, BadOptionsAreRefusedBeforeAnyRequest) {
  PushOptions o;
  o.url = "ftp://127.0.0.1:9091";
  EXPECT_EQ(PushMetrics(o, RichSnapshot()).value_or(""),
            "push to ftp://127.0.0.1:9091 (job derp-probe): not a usable URL: " +
                std::string(http::Describe(http::UrlError::kBadScheme)));
  o.url = "http://127.0.0.1:9091/?x=1";
  EXPECT_EQ(PushMetrics(o, RichSnapshot()).value_or(""),
            "push to http://127.0.0.1:9091/?x=1 (job derp-probe): the URL must not have a query "
            "(the job and labels make the path)");
  o.url = "http://127.0.0.1:9091";
  o.grouping_labels = {{"job", "x"}};
  EXPECT_EQ(PushMetrics(o, RichSnapshot()).value_or(""),
            "push to http://127.0.0.1:9091 (job derp-probe): \"job\" cannot be a grouping label "
            "name");
  o.grouping_labels = {{"0bad", "x"}};
  EXPECT_NE(PushMetrics(o, RichSnapshot()).value_or("").find("\"0bad\" cannot be"),
            std::string::npos);
  o.grouping_labels = {};
  o.job = "";
  EXPECT_EQ(PushMetrics(o, RichSnapshot()).value_or(""),
            "push to http://127.0.0.1:9091 (job ): the job name is empty");
}

}  // namespace
}  // namespace derpkit::probe
