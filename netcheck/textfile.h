// The report as Prometheus metrics for node_exporter's textfile collector (or any scraper of the
// text exposition format), written atomically so the collector never reads half a file:
//
//   netcheck --every 5m --textfile /var/lib/node_exporter/textfile/netcheck.prom
//
// Families (all gauges, each with HELP; a value that is unknown in the report has no sample, and
// a family without samples is left out):
//   netcheck_report_timestamp_seconds, netcheck_report_duration_seconds, netcheck_report_full,
//   netcheck_udp, netcheck_ipv4, netcheck_ipv6, netcheck_ipv4_can_send, netcheck_ipv6_can_send,
//   netcheck_os_has_ipv6, netcheck_mapping_varies_by_dest_ip, netcheck_hairpinning,
//   netcheck_portmap_available{protocol="upnp"|"nat-pmp"|"pcp"}, netcheck_captive_portal,
//   netcheck_preferred_derp_region_id, netcheck_preferred_derp_region{region_id,region_code},
//   netcheck_region_latency_seconds{region_id,region_code,family="any"|"ipv4"|"ipv6"},
//   netcheck_connect_ok{region_id,region_code}, netcheck_connect_round_trip_seconds{…},
//   netcheck_connect_websocket_only{…}, netcheck_connect_server_keys{…}
//
// RenderTextfile is pure; main writes it with lib/net/atomic_file.h.
#pragma once

#include <optional>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "netcheck/report.h"

namespace derpkit::netcheck {

// The exposition text (ends with a newline). Label values are escaped per the format.
std::string RenderTextfile(const Report& report, const derpmap::DerpMap& map);

}  // namespace derpkit::netcheck
