// netcheck's Config checks (see config.h). Pure; no thread affinity.
#include "netcheck/config.h"

#include "lib/util/netaddr.h"

namespace derpkit::netcheck {

std::optional<std::string> Config::Validate() const {
  if (format != "" && format != "text" && format != "json" && format != "json-line") {
    return "--format " + format + ": want text, json or json-line";
  }
  if (every.count() < 0) return "--every must not be negative";
  if (!bind_address.empty() && !netaddr::ParseIp(bind_address)) {
    return "--bind-address " + bind_address + ": not an IP address";
  }
  if (bind_port < 0 || bind_port > 65535) {
    return "--bind-port " + std::to_string(bind_port) + ": want 0..65535";
  }
  if (captive_port < 1 || captive_port > 65535) {
    return "--captive-port " + std::to_string(captive_port) + ": want 1..65535";
  }
  if (connect_timeout.count() <= 0) return "--connect-timeout must be positive";
  for (const auto& source : derp_map_sources) {
    if (source.empty()) return "--derp-map: empty source";
  }
  return std::nullopt;
}

OutputFormat Config::output_format() const {
  if (format == "json") return OutputFormat::kJson;
  if (format == "json-line") return OutputFormat::kJsonLine;
  return OutputFormat::kText;
}

}  // namespace derpkit::netcheck
