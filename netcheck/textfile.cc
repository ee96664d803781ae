// Prometheus textfile rendering and the atomic write (see textfile.h). Rendering is pure; the
// write runs on the caller's thread.
#include "netcheck/textfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

namespace derpkit::netcheck {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  Labels labels;
  double value = 0;
};

std::string FormatValue(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact form
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Exposition {
 public:
  // Appends a family; nothing at all when it has no samples.
  void Family(const std::string& name, const std::string& help,
              const std::vector<Sample>& samples) {
    if (samples.empty()) return;
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const Sample& s : samples) {
      out_ += name;
      if (!s.labels.empty()) {
        out_ += "{";
        for (std::size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out_ += ",";
          out_ += s.labels[i].first + "=\"" + EscapeLabelValue(s.labels[i].second) + "\"";
        }
        out_ += "}";
      }
      out_ += " " + FormatValue(s.value) + "\n";
    }
  }
  void Gauge(const std::string& name, const std::string& help, double v) {
    Family(name, help, {Sample{{}, v}});
  }
  void OptGauge(const std::string& name, const std::string& help, const std::optional<bool>& b) {
    if (b) Gauge(name, help, *b ? 1 : 0);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

double Seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

Labels RegionLabels(RegionId id, const derpmap::DerpMap& map) {
  auto it = map.regions.find(id);
  return {{"region_id", std::to_string(id)},
          {"region_code", it == map.regions.end() ? "" : it->second.region_code}};
}

}  // namespace

std::string RenderTextfile(const Report& r, const derpmap::DerpMap& map) {
  Exposition e;
  e.Gauge("netcheck_report_timestamp_seconds",
          "Unix time at which this netcheck report was started.",
          Seconds(std::chrono::duration_cast<std::chrono::nanoseconds>(r.now.time_since_epoch())));
  e.Gauge("netcheck_report_duration_seconds", "How long this netcheck report took.",
          Seconds(r.duration));
  e.Gauge("netcheck_report_full",
          "1 if this report probed every region (full), 0 if it re-probed the fastest few "
          "(incremental).",
          r.full ? 1 : 0);
  e.Gauge("netcheck_udp", "1 if a UDP STUN round trip to some DERP node completed.", r.udp);
  e.Gauge("netcheck_ipv4",
          "1 if an IPv4 STUN round trip completed (or, without UDP, HTTPS reached a node over "
          "IPv4).",
          r.ipv4);
  e.Gauge("netcheck_ipv6",
          "1 if an IPv6 STUN round trip completed (or, without UDP, HTTPS reached a node over "
          "IPv6).",
          r.ipv6);
  e.Gauge("netcheck_ipv4_can_send", "1 if an IPv4 STUN request could be sent.", r.ipv4_can_send);
  e.Gauge("netcheck_ipv6_can_send", "1 if an IPv6 STUN request could be sent.", r.ipv6_can_send);
  e.Gauge("netcheck_os_has_ipv6", "1 if the OS could bind a UDP socket to [::1].", r.os_has_ipv6);
  e.OptGauge("netcheck_mapping_varies_by_dest_ip",
             "1 if STUN servers at different IPv4 addresses saw different public endpoints (a "
             "hard NAT); absent until servers at two addresses have answered.",
             r.mapping_varies_by_dest_ip);
  e.OptGauge("netcheck_hairpinning",
             "1 if a packet sent to our own public IPv4 endpoint came back (the NAT hairpins); "
             "absent when not measured.",
             r.hair_pinning);
  std::vector<Sample> portmap;
  auto add_portmap = [&](const char* protocol, const std::optional<bool>& b) {
    if (b) portmap.push_back({{{"protocol", protocol}}, *b ? 1.0 : 0.0});
  };
  add_portmap("upnp", r.upnp);
  add_portmap("nat-pmp", r.pmp);
  add_portmap("pcp", r.pcp);
  e.Family("netcheck_portmap_available",
           "1 if the default gateway answered this port-mapping protocol; absent when not checked.",
           portmap);
  e.OptGauge("netcheck_captive_portal",
             "1 if plain HTTP to a DERP node was intercepted (captive portal); absent when not "
             "checked.",
             r.captive_portal);
  e.Gauge("netcheck_preferred_derp_region_id",
          "Region id of the preferred (home) DERP region; 0 when none could be chosen.",
          static_cast<double>(r.preferred_derp));
  if (r.preferred_derp != 0) {
    e.Family("netcheck_preferred_derp_region",
             "Always 1; the labels name the preferred (home) DERP region. Absent when none.",
             {Sample{RegionLabels(r.preferred_derp, map), 1}});
  }
  std::vector<Sample> latency;
  auto add_latency = [&](const LatencyMap& m, const char* family) {
    for (const auto& [id, d] : m) {
      Labels labels = RegionLabels(id, map);
      labels.emplace_back("family", family);
      latency.push_back({std::move(labels), Seconds(d)});
    }
  };
  add_latency(r.region_latency, "any");
  add_latency(r.region_v4_latency, "ipv4");
  add_latency(r.region_v6_latency, "ipv6");
  e.Family("netcheck_region_latency_seconds",
           "Best latency to the DERP region: family any (STUN or HTTPS), ipv4 or ipv6 (STUN). "
           "Absent for regions that were not measured.",
           latency);
  if (r.connect) {
    std::vector<Sample> ok, round_trip, ws_only, keys;
    for (const ConnectEntry& c : *r.connect) {
      const Labels labels = RegionLabels(c.region_id, map);
      ok.push_back({labels, c.ok ? 1.0 : 0.0});
      if (c.ok) round_trip.push_back({labels, Seconds(c.round_trip)});
      ws_only.push_back({labels, c.websocket_only ? 1.0 : 0.0});
      keys.push_back({labels, static_cast<double>(c.server_keys.size())});
    }
    e.Family("netcheck_connect_ok",
             "1 if a packet made the round trip through a real DERP connection to the region.", ok);
    e.Family("netcheck_connect_round_trip_seconds",
             "Round trip of one packet through the region's relay; absent when it failed.",
             round_trip);
    e.Family("netcheck_connect_websocket_only",
             "1 if the region's relay worked only over WebSocket (something strips Upgrade: "
             "DERP).",
             ws_only);
    e.Family("netcheck_connect_server_keys",
             "Distinct DERP server keys seen in the region; more than 1 suggests unmeshed relays "
             "behind one name.",
             keys);
  }
  return e.Take();
}

}  // namespace derpkit::netcheck
