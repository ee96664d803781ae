// stunc's output formats (see report.h). Pure.
#include "stunc/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "lib/util/netaddr.h"

namespace derpkit::stunc {
namespace {

double Milliseconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

// Round-trip times in JSON: milliseconds to the microsecond, not 17 digits of noise.
double RoundToMicroseconds(double ms) { return std::round(ms * 1000.0) / 1000.0; }

std::string Format3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// "localhost (127.0.0.1:3478)" for names, just "127.0.0.1:3478" for literals.
std::string TargetText(const StuncConfig& config, const RunResult& result) {
  const std::string addr = EndpointText(result.server);
  if (netaddr::ParseIp(config.host)) return addr;
  return config.host + " (" + addr + ")";
}

const char* FailureKindName(net::StunFailure::Kind kind) {
  switch (kind) {
    case net::StunFailure::Kind::kTimeout:
      return "timeout";
    case net::StunFailure::Kind::kSendFailed:
      return "send_failed";
    case net::StunFailure::Kind::kRefused:
      return "refused";
    case net::StunFailure::Kind::kBadAnswer:
      return "bad_answer";
    case net::StunFailure::Kind::kClosed:
      return "closed";
  }
  return "unknown";
}

}  // namespace

RttStats ComputeRttStats(const std::vector<Reply>& replies) {
  RttStats s;
  if (replies.empty()) return s;
  double sum = 0, sum_squares = 0;
  s.min_ms = Milliseconds(replies.front().answer.rtt);
  s.max_ms = s.min_ms;
  for (const Reply& r : replies) {
    const double ms = Milliseconds(r.answer.rtt);
    s.min_ms = std::min(s.min_ms, ms);
    s.max_ms = std::max(s.max_ms, ms);
    sum += ms;
    sum_squares += ms * ms;
  }
  const double n = static_cast<double>(replies.size());
  s.avg_ms = sum / n;
  s.stddev_ms = std::sqrt(std::max(0.0, sum_squares / n - s.avg_ms * s.avg_ms));
  return s;
}

std::string EndpointText(const asio::ip::udp::endpoint& ep) {
  return netaddr::JoinHostPort(ep.address().to_string(), ep.port());
}

std::string StunAddrText(const net::StunAnswer& answer) {
  return netaddr::JoinHostPort(answer.mapped_ip.ToString(), answer.mapped_port);
}

std::string ReferenceLines(const Reply& reply) {
  return "sent addr: " + EndpointText(reply.answer.sent_to) + "\n" +
         "from addr: " + EndpointText(reply.answer.from) + "\n" +
         "stun addr: " + StunAddrText(reply.answer) + "\n";
}

std::string StartLine(const StuncConfig& config, const RunResult& result) {
  const char* form = config.rfc5389 ? "RFC 5389 binding requests (20 bytes)"
                                    : "Tailscale binding requests (40 bytes)";
  return "STUN " + TargetText(config, result) + " from " + EndpointText(result.local) + ": " +
         form + "\n";
}

std::string ReplyLine(const Reply& reply) {
  return std::to_string(reply.answer.response_bytes) + " bytes from " +
         EndpointText(reply.answer.from) + ": seq=" + std::to_string(reply.seq) +
         " stun addr=" + StunAddrText(reply.answer) +
         " time=" + Format3(Milliseconds(reply.answer.rtt)) + " ms\n";
}

std::string MissLine(const Miss& miss) {
  return "seq=" + std::to_string(miss.seq) + ": " + miss.failure.message + "\n";
}

std::string LossText(int sent, int received) {
  if (sent <= 0) return "0%";
  const double loss = 100.0 * static_cast<double>(sent - received) / static_cast<double>(sent);
  char buf[32];
  if (loss == std::floor(loss)) {
    std::snprintf(buf, sizeof buf, "%.0f%%", loss);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%%", loss);
  }
  return buf;
}

std::string SummaryLines(const StuncConfig& config, const RunResult& result) {
  const int received = static_cast<int>(result.replies.size());
  std::string out = "--- " + TargetText(config, result) + " stunc statistics ---\n";
  out += std::to_string(result.sent) + " sent, " + std::to_string(received) + " received, " +
         LossText(result.sent, received) + " loss";
  if (received > 0) {
    const RttStats s = ComputeRttStats(result.replies);
    out += ", rtt min/avg/max/stddev = " + Format3(s.min_ms) + "/" + Format3(s.avg_ms) + "/" +
           Format3(s.max_ms) + "/" + Format3(s.stddev_ms) + " ms";
  }
  out += "\n";
  std::vector<std::string> distinct;
  for (const Reply& r : result.replies) {
    const std::string addr = StunAddrText(r.answer);
    if (std::find(distinct.begin(), distinct.end(), addr) == distinct.end()) {
      distinct.push_back(addr);
    }
  }
  if (distinct.size() > 1) {
    out += "stun addr changed between replies:";
    for (const std::string& a : distinct) out += " " + a;
    out += "\n";
  }
  return out;
}

nlohmann::ordered_json ToJson(const StuncConfig& config, const RunResult& result) {
  nlohmann::ordered_json j;
  j["host"] = config.host;
  j["port"] = config.port;
  j["request"] = config.rfc5389 ? "rfc5389" : "tailscale";
  if (!result.error.empty()) {
    j["error"] = result.error;
    return j;
  }
  j["server"] = EndpointText(result.server);
  j["local_addr"] = EndpointText(result.local);
  j["local_port"] = result.local.port();
  const int received = static_cast<int>(result.replies.size());
  if (received > 0) {
    // The first answer: what the reference's "stun addr:" line says.
    j["stun_addr"] = StunAddrText(result.replies.front().answer);
  } else if (!result.misses.empty()) {
    j["error"] = result.misses.front().failure.message;
  } else {
    j["error"] = "interrupted before any answer";
  }
  j["sent"] = result.sent;
  j["received"] = received;
  j["loss_percent"] =
      result.sent > 0 ? RoundToMicroseconds(100.0 * (result.sent - received) / result.sent) : 0.0;
  if (received > 0) {
    const RttStats s = ComputeRttStats(result.replies);
    j["rtt_ms"] = {{"min", RoundToMicroseconds(s.min_ms)},
                   {"avg", RoundToMicroseconds(s.avg_ms)},
                   {"max", RoundToMicroseconds(s.max_ms)},
                   {"stddev", RoundToMicroseconds(s.stddev_ms)}};
  }
  if (result.interrupted) j["interrupted"] = true;
  j["timeout_ms"] = config.timeout.count();
  if (config.count) j["interval_ms"] = config.interval.count();
  nlohmann::ordered_json replies = nlohmann::ordered_json::array();
  for (const Reply& r : result.replies) {
    replies.push_back({{"seq", r.seq},
                       {"from", EndpointText(r.answer.from)},
                       {"stun_addr", StunAddrText(r.answer)},
                       {"stun_ip", r.answer.mapped_ip.ToString()},
                       {"stun_port", r.answer.mapped_port},
                       {"rtt_ms", RoundToMicroseconds(Milliseconds(r.answer.rtt))},
                       {"bytes", r.answer.response_bytes},
                       {"txid", r.answer.txid.ToHex()}});
  }
  j["replies"] = replies;
  nlohmann::ordered_json misses = nlohmann::ordered_json::array();
  for (const Miss& m : result.misses) {
    misses.push_back(
        {{"seq", m.seq}, {"kind", FailureKindName(m.failure.kind)}, {"error", m.failure.message}});
  }
  j["failures"] = misses;
  return j;
}

}  // namespace derpkit::stunc
