// ProbeConfig::Validate, --fail-on and comma lists.
#include "probe/config.h"

namespace derpkit::probe {

std::vector<std::string> SplitCommaList(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

Expected<std::vector<ProbeKind>, std::string> ParseFailOn(const std::string& list) {
  std::vector<ProbeKind> kinds;
  for (const std::string& word : SplitCommaList(list)) {
    auto kind = ParseKindWord(word);
    if (!kind) {
      return Unexpected{"--fail-on: unknown probe kind \"" + word +
                        "\" (kinds: derpmap, tls, udp, udp6, mesh, bw, qd)"};
    }
    kinds.push_back(*kind);
  }
  return kinds;
}

std::vector<std::string> ProbeConfig::Validate() const {
  std::vector<std::string> problems;
  auto non_negative = [&](const char* flag, std::chrono::milliseconds d) {
    if (d.count() < 0) problems.push_back(std::string(flag) + ": must not be negative");
  };
  if (map_interval.count() <= 0) problems.push_back("--interval: must be positive");
  non_negative("--tls-interval", tls_interval);
  non_negative("--stun-interval", stun_interval);
  non_negative("--mesh-interval", mesh_interval);
  non_negative("--bw-interval", bw_interval);
  if (qd_packets_per_second < 0)
    problems.push_back("--qd-packets-per-second: must not be negative");
  if (qd_packets_per_second > 10000) {
    problems.push_back("--qd-packets-per-second: at most 10000 (a prober, not a load generator)");
  }
  if (qd_packet_timeout.count() <= 0) problems.push_back("--qd-packet-timeout: must be positive");
  if (bw_interval.count() > 0 && bw_size_bytes == 0) {
    problems.push_back("--bw-probe-size-bytes: must be positive when --bw-interval is set");
  }
  if (bw_size_bytes > 1000ull * 1000 * 1000) {
    problems.push_back("--bw-probe-size-bytes: at most 1000000000");
  }
  if (tls_expiry_warning.count() < 0)
    problems.push_back("--tls-expiry-warning: must not be negative");
  if (max_concurrent < 1) problems.push_back("--max-concurrent: must be at least 1");
  if (json && !once)
    problems.push_back("--json: only with --once (the daemon serves JSON at /debug/probe-all)");
  if (!push_url.empty() && !once) {
    problems.push_back("--push-url: only with --once (Prometheus scrapes the daemon's /metrics)");
  }
  if (!push_url.empty() && push_url.rfind("http://", 0) != 0 &&
      push_url.rfind("https://", 0) != 0) {
    problems.push_back("--push-url " + push_url + ": must start with http:// or https://");
  }
  if (once && qd_packets_per_second > 0 && qd_once_duration.count() <= 0) {
    problems.push_back("--qd-once-duration: must be positive");
  }
  if (dev && !mesh_psk_file.empty()) {
    problems.push_back(
        "--dev reads the mesh key from TAILSCALE_DERPER_MESH_KEY; do not also give "
        "--mesh-psk-file");
  }
  return problems;
}

}  // namespace derpkit::probe
