// derp-probe's configuration: one plain struct that main fills from flags (defaults are member
// initialisers, as derpprobe's flag defaults) and Validate checks as a whole.
//
// Plain values; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lib/derpmap/source.h"
#include "probe/model.h"

namespace derpkit::probe {

struct ProbeConfig {
  std::vector<std::string> derp_map_sources{};  // empty: local if tailscaled runs, else Tailscale's
  std::string socket_path = derpmap::kDefaultTailscaledSocket;
  std::string ca_file{};
  std::string listen = ":8030";
  bool once = false;
  bool json = false;
  std::string textfile{};
  std::string push_url{};
  std::string push_job = "derp-probe";
  std::vector<ProbeKind> fail_on{};  // empty = every kind
  std::chrono::milliseconds map_interval{15000};
  std::chrono::milliseconds tls_interval{15000};
  std::chrono::milliseconds stun_interval{15000};
  std::chrono::milliseconds mesh_interval{15000};
  std::chrono::milliseconds bw_interval{0};
  std::uint64_t bw_size_bytes = 1000000;
  int qd_packets_per_second = 0;
  std::chrono::milliseconds qd_packet_timeout{5000};
  // --once: how long each qd probe sends before it is judged (the reference's --once never ends
  // with qd on).
  std::chrono::milliseconds qd_once_duration{5000};
  std::vector<std::string> regions{};
  std::chrono::seconds tls_expiry_warning{7 * 24 * 3600};
  bool spread = true;
  int max_concurrent = 32;
  std::string key_file{};
  std::string mesh_psk_file{};
  bool dev = false;
  bool verbose = false;

  // Every problem, one line each ("--max-concurrent 0: must be at least 1"); empty when usable.
  std::vector<std::string> Validate() const;
};

// Parses --fail-on's comma list ("tls,mesh"); the error names the bad word and lists the good
// ones.
Expected<std::vector<ProbeKind>, std::string> ParseFailOn(const std::string& list);

// Splits a comma list, trimming spaces and dropping empty items ("a, b,,c" -> a b c).
std::vector<std::string> SplitCommaList(const std::string& list);

}  // namespace derpkit::probe
