// LoadDocument and LoadMap: which loader a source string means, then parse, check and merge.
// Blocking; any thread.
#include "lib/derpmap/source.h"

#include <string>

#include "lib/derpmap/detail.h"
#include "lib/derpmap/loaders.h"

namespace derpkit::derpmap {
namespace {

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string_view Trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

Expected<std::string, MapError> Fetch(const std::string& source, const LoadOptions& options) {
  if (source.empty()) return Unexpected(MapError{"", "", "an empty DERP map source"});
  if (source == "local") return detail::FetchLocalMap(options);
  if (StartsWithIgnoreCase(source, "http://") || StartsWithIgnoreCase(source, "https://")) {
    return detail::FetchMapUrl(source, options);
  }
  if (StartsWithIgnoreCase(source, "file://")) {
    const std::string path = source.substr(7);
    if (!path.starts_with("/")) {
      return Unexpected(MapError{source, "", "a file URL must be file:///absolute/path (no host)"});
    }
    return detail::ReadMapFile(path, source, options);
  }
  return detail::ReadMapFile(source, source, options);
}

}  // namespace

Expected<MapDocument, MapError> LoadDocument(const std::string& source,
                                             const LoadOptions& options) {
  auto text = Fetch(source, options);
  if (!text) return Unexpected(text.error());
  if (source == "local" && Trimmed(*text) == "null") {
    // tailscaled serves `null` until control has sent it a map.
    return Unexpected(
        MapError{source, "", "tailscaled has no DERP map yet (is it logged in and connected?)"});
  }
  auto doc = ParseAuto(*text, source);
  if (!doc) return doc;
  // Each region on its own, so errors name this source in its spelling. Names unique across
  // regions are LoadMap's to check, after later sources may have replaced some regions.
  for (const auto& [id, region] : doc->regions) {
    if (!region) continue;
    detail::NamesSeen names;
    if (auto err = detail::ValidateRegion(id, *region, source, doc->spelling, names)) {
      return Unexpected(std::move(*err));
    }
  }
  return doc;
}

Expected<DerpMap, MapError> LoadMap(const std::vector<std::string>& sources,
                                    const LoadOptions& options) {
  if (sources.empty()) return Unexpected(MapError{"", "", "no DERP map source given"});
  DerpMap map;
  struct Origin {
    const std::string* source;
    Spelling spelling;
  };
  std::map<std::int64_t, Origin> origin;  // which source each merged region came from
  for (const std::string& source : sources) {
    auto doc = LoadDocument(source, options);
    if (!doc) return Unexpected(doc.error());
    MergeInto(map, *doc);
    for (const auto& [id, region] : doc->regions) {
      if (region) {
        origin.insert_or_assign(id, Origin{&source, doc->spelling});
      } else {
        origin.erase(id);
      }
    }
  }

  // Node names must be unique across the merged map; say which source holds each of the pair.
  std::map<std::string, std::pair<std::string, const std::string*>, std::less<>> seen;
  for (const auto& [id, region] : map.regions) {
    const Origin& from = origin.at(id);
    const std::string nodes_path =
        detail::Member(detail::Member(detail::Spell("Regions", from.spelling), std::to_string(id)),
                       detail::Spell("Nodes", from.spelling));
    for (std::size_t i = 0; i < region.nodes.size(); ++i) {
      const std::string node_path = detail::Element(nodes_path, i);
      auto [it, fresh] = seen.try_emplace(region.nodes[i].name, node_path, from.source);
      if (fresh) continue;
      const auto& [other_path, other_source] = it->second;
      std::string reason = "\"" + region.nodes[i].name + "\" is also the name of " + other_path;
      if (*other_source != *from.source) reason += " in " + *other_source;
      reason += " (names are unique across the map)";
      return Unexpected(MapError{*from.source,
                                 detail::Member(node_path, detail::Spell("Name", from.spelling)),
                                 std::move(reason)});
    }
  }

  std::string label;
  for (const std::string& source : sources) label += (label.empty() ? "" : " + ") + source;
  if (auto err = Validate(map, label)) return Unexpected(std::move(*err));
  if (map.regions.empty()) {
    return Unexpected(MapError{label, "", "the DERP map has no regions"});
  }
  return map;
}

}  // namespace derpkit::derpmap
