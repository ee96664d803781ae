// The netcheck Report: what one run found out about this host's network, with the meaning of each
// field taken from Tailscale's net/netcheck Report (tools-reference.md §4.3), plus derpkit's
// extras (HairPinning where measurable, --connect results, how the report was made).
//
// Pure data. Built by ReportBuilder (report_builder.h) from probe answers, printed by
// report_text.h / report_json.h / textfile.h. Thread affinity: none; safe to copy.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace derpkit::netcheck {

using RegionId = std::int64_t;
// Region id -> best latency measured for it. Keys are region ids from the DERP map.
using LatencyMap = std::map<RegionId, std::chrono::nanoseconds>;

// One region's result of `netcheck --connect` (a real DERP round trip; see connect_check.h). A
// copy of connect_check's result so that the report and its printers stay free of Asio.
struct ConnectEntry {
  RegionId region_id = 0;
  std::string region_code;
  std::string node_name;        // the node that worked, or the last one tried
  bool ok = false;              // a packet made the round trip through the relay
  std::string transport;        // "derp" or "websocket"
  bool websocket_only = false;  // the DERP upgrade failed but WebSocket worked
  std::chrono::nanoseconds round_trip{0};
  std::vector<std::string> server_keys;  // distinct server keys seen, "nodekey:…"
  std::string error;                     // why it failed, when !ok
  std::vector<std::string> warnings;
};

struct Report {
  // When the report was started (JSON "Now"; the text form shows it in local time).
  std::chrono::system_clock::time_point now{};

  bool udp = false;   // a UDP STUN round trip completed
  bool ipv6 = false;  // an IPv6 STUN round trip completed (or HTTPS reached a node over IPv6)
  bool ipv4 = false;  // an IPv4 STUN round trip completed (or HTTPS reached a node over IPv4)
  bool ipv6_can_send = false;  // an IPv6 STUN request could be sent
  bool ipv4_can_send = false;  // an IPv4 STUN request could be sent
  bool os_has_ipv6 = false;    // a UDP socket could be bound to [::1]:0
  bool icmpv4 = false;         // an ICMPv4 echo round trip completed (derpkit sends no ICMP: false)

  // Whether different IPv4 STUN servers saw us at different public endpoints (a "hard",
  // endpoint-dependent NAT). nullopt until two servers (ip:port) have answered over IPv4.
  std::optional<bool> mapping_varies_by_dest_ip;
  // Whether a packet sent to our own public IPv4 endpoint came back to us (the NAT "hairpins").
  // Tailscale removed this in v1.68; derpkit keeps it. nullopt when not measured (no GlobalV4).
  std::optional<bool> hair_pinning;

  // Port-mapping protocols the default gateway answered; nullopt = not checked.
  std::optional<bool> upnp;
  std::optional<bool> pmp;
  std::optional<bool> pcp;

  RegionId preferred_derp = 0;   // the home region chosen (home.h); 0 = none
  LatencyMap region_latency;     // best over both families and HTTPS
  LatencyMap region_v4_latency;  // best IPv4 STUN latency
  LatencyMap region_v6_latency;  // best IPv6 STUN latency

  // How often each public endpoint ("ip:port", "[ip]:port") was seen in STUN answers.
  std::map<std::string, int> global_v4_counters;
  std::map<std::string, int> global_v6_counters;
  std::string global_v4;  // public endpoint from the first IPv4 answer; "" when none
  std::string global_v6;  // public endpoint from the last IPv6 answer; "" when none

  std::optional<bool>
      captive_portal;  // nullopt = not checked (incremental reports, --captive=false)

  // derpkit extras, not in Tailscale's JSON unless noted in report_json.h.
  std::optional<std::vector<ConnectEntry>> connect;  // with --connect
  bool full = false;                                 // a full (not incremental) report
  std::chrono::nanoseconds duration{0};              // how long the report took

  // True when any of UPnP, NAT-PMP and PCP was checked (Tailscale's AnyPortMappingChecked).
  bool AnyPortMappingChecked() const { return upnp || pmp || pcp; }
};

}  // namespace derpkit::netcheck
