// Validate: what every derpkit tool relies on in a DERP map, checked once where the map is loaded,
// so that the probes never meet a node without a host or a port out of range. Pure; no thread
// affinity.
#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/detail.h"
#include "lib/util/netaddr.h"

namespace derpkit::derpmap {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool IsWord(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

bool IsHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

// IPv4/IPv6: empty (use DNS), a literal of the family, or a word such as "none" (family off).
// Tailscale turns the family off for any other string too, which hides typos: an address that
// doesn't parse, or one of the other family, is refused here.
std::optional<std::string> CheckAddressField(const std::string& value, bool want_v4) {
  if (value.empty() || IsWord(value)) return std::nullopt;
  const char* family = want_v4 ? "IPv4" : "IPv6";
  auto ip = netaddr::ParseIp(value);
  if (!ip) {
    return Quote(value) + " is not an " + family + " address (write \"none\" to turn " + family +
           " off for this node)";
  }
  if (ip->is_v4() != want_v4) {
    return Quote(value) + " is an " + (want_v4 ? "IPv6" : "IPv4") + " address; put it in " +
           (want_v4 ? "IPv6" : "IPv4") + " (or write \"none\" to turn " + family + " off)";
  }
  return std::nullopt;
}

std::optional<std::string> CheckPort(int port, int min_port) {
  if (port >= min_port && port <= 65535) return std::nullopt;
  return std::to_string(port) + " is out of range " + std::to_string(min_port) + "..65535";
}

class Checker {
 public:
  Checker(std::string_view source, Spelling spelling) : source_(source), spelling_(spelling) {}

  std::optional<MapError> Fail(const std::string& path, std::string reason) const {
    return MapError{std::string(source_), path, std::move(reason)};
  }
  std::string Field(std::string_view path, std::string_view json_name) const {
    return detail::Member(path, detail::Spell(json_name, spelling_));
  }

  std::optional<MapError> Region(std::int64_t key, const derpmap::Region& region,
                                 detail::NamesSeen& names) const {
    const std::string path = detail::Member(Field("", "Regions"), std::to_string(key));
    if (key < 1 || key > kMaxRegionId) {
      return Fail(path, "region id " + std::to_string(key) + " is out of range 1.." +
                            std::to_string(kMaxRegionId));
    }
    if (region.region_id == 0) {
      return Fail(Field(path, "RegionID"),
                  "missing (must equal the region's key " + std::to_string(key) + ")");
    }
    if (region.region_id != key) {
      return Fail(Field(path, "RegionID"), std::to_string(region.region_id) +
                                               " does not match the region's key " +
                                               std::to_string(key));
    }
    const std::string nodes_path = Field(path, "Nodes");
    for (std::size_t i = 0; i < region.nodes.size(); ++i) {
      const std::string node_path = detail::Element(nodes_path, i);
      if (auto err = Node(key, region.nodes[i], node_path, names)) return err;
    }
    return std::nullopt;
  }

  std::optional<MapError> Node(std::int64_t region_id, const derpmap::Node& node,
                               const std::string& path, detail::NamesSeen& names) const {
    if (node.name.empty()) return Fail(Field(path, "Name"), "missing");
    if (auto [it, fresh] = names.emplace(node.name, path); !fresh) {
      return Fail(Field(path, "Name"), Quote(node.name) + " is also the name of " + it->second +
                                           " (names are unique "
                                           "across the map)");
    }
    if (node.region_id == 0) {
      return Fail(Field(path, "RegionID"),
                  "missing (must equal its region's id " + std::to_string(region_id) + ")");
    }
    if (node.region_id != region_id) {
      return Fail(Field(path, "RegionID"), std::to_string(node.region_id) +
                                               " does not match its region's id " +
                                               std::to_string(region_id));
    }
    if (node.host_name.empty()) return Fail(Field(path, "HostName"), "missing");
    static constexpr std::string_view kPin = "sha256-raw:";
    if (node.cert_name.starts_with(kPin)) {
      const std::string_view hex = std::string_view(node.cert_name).substr(kPin.size());
      if (hex.size() != 64 || !IsHex(hex)) {
        return Fail(Field(path, "CertName"),
                    "a sha256-raw pin needs 64 hex digits (the SHA-256 of the certificate's "
                    "DER), got " +
                        std::to_string(hex.size()) + " characters");
      }
    }
    if (auto why = CheckAddressField(node.ipv4, /*want_v4=*/true)) {
      return Fail(Field(path, "IPv4"), *why);
    }
    if (auto why = CheckAddressField(node.ipv6, /*want_v4=*/false)) {
      return Fail(Field(path, "IPv6"), *why);
    }
    if (auto why = CheckPort(node.stun_port, -1)) return Fail(Field(path, "STUNPort"), *why);
    if (auto why = CheckPort(node.derp_port, 0)) return Fail(Field(path, "DERPPort"), *why);
    if (!node.stun_test_ip.empty() && !netaddr::ParseIp(node.stun_test_ip)) {
      return Fail(Field(path, "STUNTestIP"), Quote(node.stun_test_ip) + " is not an IP address");
    }
    return std::nullopt;
  }

 private:
  std::string_view source_;
  Spelling spelling_;
};

}  // namespace

namespace detail {

std::optional<MapError> ValidateRegion(std::int64_t key, const Region& region,
                                       std::string_view source, Spelling spelling,
                                       NamesSeen& names) {
  return Checker(source, spelling).Region(key, region, names);
}

}  // namespace detail

std::optional<MapError> Validate(const DerpMap& map, std::string_view source, Spelling spelling) {
  detail::NamesSeen names;
  for (const auto& [id, region] : map.regions) {
    if (auto err = detail::ValidateRegion(id, region, source, spelling, names)) return err;
  }
  return std::nullopt;
}

std::optional<MapError> Validate(const MapDocument& doc, std::string_view source) {
  detail::NamesSeen names;
  for (const auto& [id, region] : doc.regions) {
    if (!region) continue;
    if (auto err = detail::ValidateRegion(id, *region, source, doc.spelling, names)) return err;
  }
  return std::nullopt;
}

}  // namespace derpkit::derpmap
