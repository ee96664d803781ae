// The JSON form of a Report with Tailscale's keys and meanings (tools-reference.md §4.3), so tools
// written against `tailscale netcheck --format json` read ours:
//
//   Now, UDP, IPv6, IPv4, IPv6CanSend, IPv4CanSend, OSHasIPv6, ICMPv4, MappingVariesByDestIP,
//   HairPinning, UPnP, PMP, PCP, PreferredDERP, RegionLatency, RegionV4Latency, RegionV6Latency,
//   GlobalV4Counters, GlobalV6Counters, GlobalV4, GlobalV6, CaptivePortal[, Connect]
//
// Encoded as Go's encoding/json would: latencies in nanoseconds, unknown optional booleans as
// null, map keys sorted as strings ("10" before "9"), empty counters as null (Go's nil map),
// '<', '>' and '&' escaped as \u003c, \u003e, \u0026. HairPinning (dropped by Tailscale in v1.68)
// is null when not measured; Connect is present only with --connect.
//
// Pure. Thread affinity: none.
#pragma once

#include <string>

#include "netcheck/report.h"

namespace derpkit::netcheck {

enum class JsonStyle {
  kIndented,  // --format json: Go's json.MarshalIndent(r, "", "\t")
  kLine,      // --format json-line: json.Marshal(r), one line
};

// The encoded report, without a trailing newline.
std::string RenderJson(const Report& report, JsonStyle style);

}  // namespace derpkit::netcheck
