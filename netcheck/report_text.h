// The human form of a Report, laid out like `tailscale netcheck` (tools-reference.md §4.2) so that
// people recognise it, with derpkit's extras after the reference lines:
//
//   (empty line)
//   Report:
//   	* Time: 2026-11-30T05:12:01.123456789Z
//   	* UDP: true
//   	* IPv4: yes, 127.0.0.1:41641
//   	* IPv6: no, but OS has support
//   	* MappingVariesByDestIP: false
//   	* PortMapping: not checked
//   	* Nearest DERP: derpkit one
//   	* DERP latency:
//   		- one: 0.3ms   (derpkit one)
//   	* HairPinning: true                  <- extra, only when measured
//   	* DERP connect:                      <- extra, only with --connect
//   		- one: ok, 1.2ms round trip via 901a (derp)
//
// Pure. Thread affinity: none.
#pragma once

#include <string>

#include "lib/derpmap/derpmap.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

struct TextOptions {
  bool verbose = false;         // latency lines name the region id ("derp900, "), as the reference
  long utc_offset_seconds = 0;  // the local zone's offset for the Time line
};

std::string RenderText(const Report& report, const derpmap::DerpMap& map,
                       const TextOptions& options);

// The PortMapping line's value: "not checked", or the protocols seen ("UPnP, NAT-PMP, PCP"; empty
// when checked and none answered).
std::string PortMappingSummary(const Report& report);

}  // namespace derpkit::netcheck
