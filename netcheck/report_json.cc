// JSON form of a Report (see report_json.h). Pure; no thread affinity.
#include "netcheck/report_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "lib/util/go_format.h"

namespace derpkit::netcheck {
namespace {

using Json = nlohmann::ordered_json;

Json OptBool(const std::optional<bool>& b) { return b ? Json(*b) : Json(nullptr); }

// Go sorts map keys by their text, even for integer keys.
template <typename Map, typename ToJson>
Json SortedObject(const Map& m, ToJson to_json) {
  std::vector<std::pair<std::string, Json>> entries;
  for (const auto& [k, v] : m) {
    if constexpr (std::is_same_v<std::decay_t<decltype(k)>, std::string>) {
      entries.emplace_back(k, to_json(v));
    } else {
      entries.emplace_back(std::to_string(k), to_json(v));
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Json out = Json::object();
  for (auto& [k, v] : entries) out[k] = std::move(v);
  return out;
}

Json Latencies(const LatencyMap& m) {
  return SortedObject(m, [](std::chrono::nanoseconds d) { return Json(d.count()); });
}

Json Counters(const std::map<std::string, int>& m) {
  if (m.empty()) return nullptr;  // a nil map in Go
  return SortedObject(m, [](int n) { return Json(n); });
}

Json StringArray(const std::vector<std::string>& v) {
  Json out = Json::array();
  for (const auto& s : v) out.push_back(s);
  return out;
}

Json ConnectJson(const ConnectEntry& e) {
  Json j = Json::object();
  j["RegionID"] = e.region_id;
  j["RegionCode"] = e.region_code;
  j["Node"] = e.node_name;
  j["OK"] = e.ok;
  j["Transport"] = e.transport;
  j["WebSocketOnly"] = e.websocket_only;
  j["RoundTrip"] = e.round_trip.count();
  j["ServerKeys"] = StringArray(e.server_keys);
  j["Error"] = e.error;
  j["Warnings"] = StringArray(e.warnings);
  return j;
}

// Go's encoder escapes these three everywhere in strings (HTML safety). Outside strings they
// cannot occur in JSON text, so replacing them in the whole document is exact.
std::string GoHtmlEscape(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (const char c : in) {
    switch (c) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string RenderJson(const Report& r, JsonStyle style) {
  Json j = Json::object();
  j["Now"] = GoRfc3339Nano(r.now, 0);
  j["UDP"] = r.udp;
  j["IPv6"] = r.ipv6;
  j["IPv4"] = r.ipv4;
  j["IPv6CanSend"] = r.ipv6_can_send;
  j["IPv4CanSend"] = r.ipv4_can_send;
  j["OSHasIPv6"] = r.os_has_ipv6;
  j["ICMPv4"] = r.icmpv4;
  j["MappingVariesByDestIP"] = OptBool(r.mapping_varies_by_dest_ip);
  j["HairPinning"] = OptBool(r.hair_pinning);
  j["UPnP"] = OptBool(r.upnp);
  j["PMP"] = OptBool(r.pmp);
  j["PCP"] = OptBool(r.pcp);
  j["PreferredDERP"] = r.preferred_derp;
  j["RegionLatency"] = Latencies(r.region_latency);
  j["RegionV4Latency"] = Latencies(r.region_v4_latency);
  j["RegionV6Latency"] = Latencies(r.region_v6_latency);
  j["GlobalV4Counters"] = Counters(r.global_v4_counters);
  j["GlobalV6Counters"] = Counters(r.global_v6_counters);
  j["GlobalV4"] = r.global_v4;
  j["GlobalV6"] = r.global_v6;
  j["CaptivePortal"] = OptBool(r.captive_portal);
  if (r.connect) {
    Json list = Json::array();
    for (const auto& e : *r.connect) list.push_back(ConnectJson(e));
    j["Connect"] = std::move(list);
  }
  // Invalid UTF-8 (a region name from a hand-written map) becomes U+FFFD instead of throwing.
  const std::string text = style == JsonStyle::kIndented
                               ? j.dump(1, '\t', false, Json::error_handler_t::replace)
                               : j.dump(-1, ' ', false, Json::error_handler_t::replace);
  return GoHtmlEscape(text);
}

}  // namespace derpkit::netcheck
