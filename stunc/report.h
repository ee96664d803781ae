// stunc's output: the reference's three lines, ping-like lines and summary, and the JSON object.
// Pure formatting of run.h's results (no I/O), so its numbers and spellings are unit-tested.
//
// Addresses are written as Go writes them: "127.0.0.1:3478", "[::1]:3478", and as the socket
// reports them. run.cc opens a socket of the server's own family, so an IPv4 server's "from addr"
// is "127.0.0.1:3478" where Tailscale's dual-stack socket printed "[::ffff:127.0.0.1]:3478" (an
// IPv4-mapped peer, were one to arrive, would be printed in that form). The mapped ("stun")
// address is always unmapped, as Tailscale's client does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stunc/config.h"
#include "stunc/run.h"

namespace derpkit::stunc {

struct RttStats {
  double min_ms = 0, avg_ms = 0, max_ms = 0;
  double stddev_ms = 0;  // population standard deviation, like ping's mdev
};

// Returns the statistics of the replies' round-trip times; all zero when there are none.
RttStats ComputeRttStats(const std::vector<Reply>& replies);

// "127.0.0.1:3478", "[::1]:3478".
std::string EndpointText(const asio::ip::udp::endpoint& ep);
// The server's public view of us: "198.51.100.1:40000".
std::string StunAddrText(const net::StunAnswer& answer);

// The reference's output for one answer (three lines, each ending in '\n'):
//   sent addr: 127.0.0.1:3478
//   from addr: 127.0.0.1:3478
//   stun addr: 127.0.0.1:43741
std::string ReferenceLines(const Reply& reply);

// Ping mode, one line each (ending in '\n').
std::string StartLine(const StuncConfig& config, const RunResult& result);
std::string ReplyLine(const Reply& reply);
std::string MissLine(const Miss& miss);
// "--- <target> stunc statistics ---" and "N sent, M received, X% loss, rtt ... ms", plus a line
// listing the mapped addresses when they were not all the same.
std::string SummaryLines(const StuncConfig& config, const RunResult& result);

// "0%", "33.3%", "100%".
std::string LossText(int sent, int received);

// One JSON object describing the whole run, keys in a reading order (see the README).
nlohmann::ordered_json ToJson(const StuncConfig& config, const RunResult& result);

}  // namespace derpkit::stunc
