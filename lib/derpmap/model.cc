// The DERP map model's small behaviours: defaults (Effective*), region lookup, error text, and
// Headscale's merge. Pure; no thread affinity.
#include <charconv>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/detail.h"
#include "lib/util/netaddr.h"

namespace derpkit::derpmap {
namespace {

Node::AddrUse AddrUseFor(const std::string& field, bool want_v4) {
  if (field.empty()) return Node::AddrUse::kDns;
  auto ip = netaddr::ParseIp(field);
  if (ip && ip->is_v4() == want_v4) return Node::AddrUse::kLiteral;
  // Tailscale's rule: any string that is not an address of this family turns the family off.
  return Node::AddrUse::kDisabled;
}

}  // namespace

std::uint16_t Node::EffectiveDerpPort() const {
  if (derp_port <= 0 || derp_port > 65535) return kDefaultDerpPort;
  return static_cast<std::uint16_t>(derp_port);
}

std::optional<std::uint16_t> Node::EffectiveStunPort() const {
  if (stun_port < 0) return std::nullopt;
  if (stun_port == 0 || stun_port > 65535) return kDefaultStunPort;
  return static_cast<std::uint16_t>(stun_port);
}

Node::AddrUse Node::Ipv4Use() const { return AddrUseFor(ipv4, /*want_v4=*/true); }
Node::AddrUse Node::Ipv6Use() const { return AddrUseFor(ipv6, /*want_v4=*/false); }

const Region* DerpMap::FindRegion(std::string_view code_or_id) const {
  for (const auto& [id, region] : regions) {
    if (region.region_code == code_or_id) return &region;
  }
  std::int64_t id = 0;
  const char* end = code_or_id.data() + code_or_id.size();
  auto [ptr, ec] = std::from_chars(code_or_id.data(), end, id);
  if (ec != std::errc() || ptr != end || code_or_id.empty()) return nullptr;
  auto it = regions.find(id);
  return it == regions.end() ? nullptr : &it->second;
}

std::string MapError::ToString() const {
  std::string out = source;
  if (!path.empty()) {
    if (!out.empty()) out += ": ";
    out += path;
  }
  if (!out.empty()) out += ": ";
  out += reason;
  return out;
}

void MergeInto(DerpMap& map, const MapDocument& doc) {
  for (const auto& [id, region] : doc.regions) {
    if (region) {
      map.regions.insert_or_assign(id, *region);
    } else {
      map.regions.erase(id);
    }
  }
  if (doc.home_params) map.home_params = doc.home_params;
  if (doc.omit_default_regions) map.omit_default_regions = true;
}

namespace detail {

std::string Spell(std::string_view json_name, Spelling spelling) {
  std::string out(json_name);
  if (spelling == Spelling::kYaml) {
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string Member(std::string_view path, std::string_view name) {
  std::string out(path);
  if (!out.empty()) out += '.';
  out += name;
  return out;
}

std::string Element(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

std::optional<std::int64_t> ParseRegionKey(std::string_view key) {
  if (!key.empty() && key.front() == '+') key.remove_prefix(1);
  if (key.empty() || key.front() == '+') return std::nullopt;
  std::int64_t id = 0;
  const char* end = key.data() + key.size();
  auto [ptr, ec] = std::from_chars(key.data(), end, id);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return id;
}

}  // namespace detail
}  // namespace derpkit::derpmap
