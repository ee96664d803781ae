// ToJson: a DERP map as tailcfg JSON, field for field what Go's encoding/json writes for
// tailcfg.DERPMap (order, omitempty, map keys sorted as strings), so the output can be served as
// a derpmap URL or pasted into a policy file. Pure; no thread affinity.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lib/derpmap/derpmap.h"

namespace derpkit::derpmap {
namespace {

using Json = nlohmann::ordered_json;

// Go writes the keys of a map[int]... in the order of their decimal strings.
template <typename V>
std::vector<std::pair<std::string, const V*>> SortedAsGo(const std::map<std::int64_t, V>& m) {
  std::vector<std::pair<std::string, const V*>> out;
  out.reserve(m.size());
  for (const auto& [key, value] : m) out.emplace_back(std::to_string(key), &value);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Json NodeJson(const Node& n) {
  Json j = Json::object();
  j["Name"] = n.name;
  j["RegionID"] = n.region_id;
  j["HostName"] = n.host_name;
  if (!n.cert_name.empty()) j["CertName"] = n.cert_name;
  if (!n.ipv4.empty()) j["IPv4"] = n.ipv4;
  if (!n.ipv6.empty()) j["IPv6"] = n.ipv6;
  if (n.stun_port != 0) j["STUNPort"] = n.stun_port;
  if (n.stun_only) j["STUNOnly"] = true;
  if (n.derp_port != 0) j["DERPPort"] = n.derp_port;
  if (n.insecure_for_tests) j["InsecureForTests"] = true;
  if (!n.stun_test_ip.empty()) j["STUNTestIP"] = n.stun_test_ip;
  if (n.can_port80) j["CanPort80"] = true;
  return j;
}

Json RegionJson(const Region& r) {
  Json j = Json::object();
  j["RegionID"] = r.region_id;
  j["RegionCode"] = r.region_code;
  j["RegionName"] = r.region_name;
  if (r.latitude != 0) j["Latitude"] = r.latitude;
  if (r.longitude != 0) j["Longitude"] = r.longitude;
  if (r.avoid) j["Avoid"] = true;
  if (r.no_measure_no_home) j["NoMeasureNoHome"] = true;
  Json nodes = Json::array();
  for (const Node& n : r.nodes) nodes.push_back(NodeJson(n));
  j["Nodes"] = std::move(nodes);
  return j;
}

}  // namespace

std::string ToJson(const DerpMap& map) {
  Json root = Json::object();
  if (map.home_params) {
    Json params = Json::object();
    if (!map.home_params->region_score.empty()) {
      Json scores = Json::object();
      for (const auto& [key, score] : SortedAsGo(map.home_params->region_score)) {
        scores[key] = *score;
      }
      params["RegionScore"] = std::move(scores);
    }
    root["HomeParams"] = std::move(params);
  }
  Json regions = Json::object();
  for (const auto& [key, region] : SortedAsGo(map.regions)) regions[key] = RegionJson(*region);
  root["Regions"] = std::move(regions);
  if (map.omit_default_regions) root["omitDefaultRegions"] = true;
  // Strings from ParseYaml are checked UTF-8 and those from ParseJson are UTF-8 by construction;
  // a map built in code might not be, and Go would write U+FFFD for the bad bytes too.
  return root.dump(2, ' ', false, Json::error_handler_t::replace);
}

}  // namespace derpkit::derpmap
