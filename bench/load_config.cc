// derp-load's settings check (see load_config.h). Main thread, before any connection.
#include "bench/load_config.h"

#include "bench/load_flow.h"
#include "lib/derp/protocol.h"

namespace derpkit::bench {

namespace {
Unexpected<std::string> Bad(std::string message) { return Unexpected{std::move(message)}; }
}  // namespace

Expected<void, std::string> LoadConfig::Validate() const {
  if (url.empty()) return Bad("--url is required");
  if (pairs < 1 || pairs > 10000) return Bad("--pairs must be 1..10000");
  if (size_bytes < kStampSize || size_bytes > derp::kMaxPacketSize) {
    return Bad("--size must be " + std::to_string(kStampSize) + ".." +
               std::to_string(derp::kMaxPacketSize) + " bytes (each packet carries a " +
               std::to_string(kStampSize) + "-byte stamp)");
  }
  if (rate_mbps < 0 || background_mbps < 0) return Bad("rates must not be negative");
  if (threads < 1 || threads > 64) return Bad("--threads must be 1..64");
  if (duration <= 0s) return Bad("--duration must be positive");
  if (samples < 1 || samples > 10'000'000) return Bad("--samples must be 1..10000000");
  if (interval <= 0s) return Bad("--interval must be positive");
  if (sender == SenderKind::kBursty) {
    if (mode != LoadMode::kThroughput) return Bad("--sender bursty works with --mode throughput");
    // One thread per sender: a thousand threads is already far past what the rows need.
    if (pairs > 1000)
      return Bad("--sender bursty runs one thread per pair: --pairs must be 1..1000");
  }
  if (mode == LoadMode::kWsBurst) {
    if (tries < 1 || tries > 10000) return Bad("--tries must be 1..10000");
    if (burst_packets < 1 || burst_packets > 100000) {
      return Bad("--burst-packets must be 1..100000");
    }
    if (burst_wait <= 0s) return Bad("--burst-wait must be positive");
  }
  return {};
}

}  // namespace derpkit::bench
