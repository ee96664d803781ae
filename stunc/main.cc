// stunc: sends STUN Binding Requests to HOST [PORT] and prints the address the server saw, like
// Tailscale's cmd/stunc, plus ping-like --count, --json, -4/-6 and --rfc5389.
// flags -> StuncConfig -> Run (run.h) -> print (report.h). Single-threaded.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/util/go_flags.h"
#include "stunc/config.h"
#include "stunc/report.h"
#include "stunc/run.h"

namespace {

using namespace derpkit::stunc;

constexpr int kExitAnswered = 0;
constexpr int kExitUnanswered = 1;
constexpr int kExitUsage = 2;

constexpr const char* kDescription =
    "stunc: ask a STUN server which address and port it sees this host's UDP packets come from.\n"
    "Sends Tailscale's form of Binding Request (what derper answers) unless --rfc5389 is given.\n"
    "Without --count it prints what Tailscale's stunc prints; with --count it works like ping.";

constexpr const char* kExamples =
    "Examples:\n"
    "  stunc derp.example.com              one request to port 3478\n"
    "  stunc -6 derp.example.com 3478      over IPv6\n"
    "  stunc --count 5 --interval 200ms ::1 3478\n"
    "  stunc --rfc5389 --json 127.0.0.1 3478 | jq -r .stun_addr   (coturn, stund, ...)\n"
    "Exit status: 0 when answered (with --count: at least once), 1 when not, 2 for usage errors.";

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "stunc: %s (see --help)\n", message.c_str());
  std::exit(kExitUsage);
}

template <typename T>
T OrUsageError(derpkit::Expected<T, std::string> v) {
  if (!v) UsageError(v.error());
  return std::move(*v);
}

void Print(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{kDescription, "stunc"};
  app.footer(kExamples);
  std::string host_arg, port_arg, timeout = "3s", interval = "1s";
  int count = 0;
  bool ipv4 = false, ipv6 = false;
  StuncConfig config;
  app.add_option("HOST", host_arg, "STUN server: a name, an IPv4 address or an IPv6 address")
      ->required();
  app.add_option("PORT", port_arg, "UDP port (default 3478)");
  app.add_option("--timeout", timeout, "How long to wait for each answer (Go duration)")
      ->capture_default_str();
  CLI::Option* count_opt =
      app.add_option("-c,--count", count, "Send N requests, print a line per answer and a summary");
  app.add_option("-i,--interval", interval, "Time between requests with --count (Go duration)")
      ->capture_default_str();
  CLI::Option* v4_opt = app.add_flag("-4", ipv4, "Use the name's IPv4 address");
  CLI::Option* v6_opt = app.add_flag("-6", ipv6, "Use the name's IPv6 address");
  v4_opt->excludes(v6_opt);
  app.add_flag("--rfc5389", config.rfc5389,
               "Send a bare 20-byte RFC 5389 Binding Request (coturn, stund and other generic "
               "servers answer it; derper does not)");
  app.add_flag("--json", config.json, "Print one JSON object instead of text");
  try {
    // Go's flag package (the reference) takes -timeout as well as --timeout.
    const std::vector<std::string> args = derpkit::NormalizeGoFlags(argc, argv);
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
  } catch (const CLI::CallForHelp&) {
    Print(app.help());
    return kExitAnswered;
  } catch (const CLI::ParseError& e) {
    UsageError(e.what());
  }

  config.host = OrUsageError(ParseHostArg(host_arg));
  if (!port_arg.empty()) config.port = OrUsageError(ParsePortArg(port_arg));
  config.timeout = OrUsageError(ParseDurationArg("--timeout", timeout));
  config.interval = OrUsageError(ParseDurationArg("--interval", interval));
  if (*count_opt) config.count = count;
  config.family = ipv4 ? FamilyChoice::kIpv4 : ipv6 ? FamilyChoice::kIpv6 : FamilyChoice::kAny;
  if (auto ok = config.Validate(); !ok) UsageError(ok.error());

  RunCallbacks print;
  if (!config.json && config.count) {
    print.started = [&](const RunResult& r) { Print(StartLine(config, r)); };
    print.reply = [](const Reply& r) { Print(ReplyLine(r)); };
    print.miss = [](const Miss& m) { Print(MissLine(m)); };
  } else if (!config.json) {
    print.reply = [](const Reply& r) { Print(ReferenceLines(r)); };
  }
  const RunResult result = Run(config, print);

  if (config.json) Print(ToJson(config, result).dump(2) + "\n");
  if (!result.error.empty()) {
    std::fprintf(stderr, "stunc: %s\n", result.error.c_str());
    return kExitUnanswered;
  }
  if (config.count && !config.json) Print("\n" + SummaryLines(config, result));
  if (result.replies.empty()) {
    // Ping mode already printed a line per miss; the single-request forms get one line here.
    if (!config.count || config.json) {
      const std::string why = result.misses.empty() ? "interrupted before any answer"
                                                    : result.misses.front().failure.message;
      std::fprintf(stderr, "stunc: %s\n", why.c_str());
    }
    return kExitUnanswered;
  }
  return kExitAnswered;
}
