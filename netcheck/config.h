// netcheck's configuration: what main.cc's flags turn into, checked once by Validate() before
// anything runs (house rule: CLI11 → Config → Validate → the Runner).
//
// Thread affinity: none; a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lib/derpmap/source.h"

namespace derpkit::netcheck {

enum class OutputFormat { kText, kJson, kJsonLine };

struct Config {
  // DERP map sources, merged in order ("local", URLs, files). Empty: "local" when tailscaled's
  // socket exists, else Tailscale's public map.
  std::vector<std::string> derp_map_sources;
  std::string socket_path = derpmap::kDefaultTailscaledSocket;
  std::string format;                 // "" or "text", "json", "json-line"
  std::chrono::nanoseconds every{0};  // 0: one report; else a report every this long
  bool verbose = false;
  std::string bind_address;  // local IP of every probe socket; "" = any
  int bind_port = 0;         // local UDP port of the STUN sockets; 0 = ephemeral
  std::string textfile;      // Prometheus textfile to (re)write after each report; "" = none
  bool portmap = true;
  bool captive = true;
  int captive_port = 80;
  bool hairpin = true;
  bool connect = false;
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(5)};
  std::string ca_file;  // extra PEM trust anchors (map URLs, HTTPS fallback, --connect)

  // The first problem, as one line naming the flag; nullopt when the config is usable.
  std::optional<std::string> Validate() const;
  OutputFormat output_format() const;
};

}  // namespace derpkit::netcheck
