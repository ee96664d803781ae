// lib/derpmap internals shared by its readers, Validate and the loaders: field paths in a source's
// own spelling, and the checks that concern one region alone. Not for use outside lib/derpmap.
//
// Pure. Thread affinity: none.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "lib/derpmap/derpmap.h"
#include "lib/util/expected.h"

namespace derpkit::derpmap::detail {

// Returns `json_name` as `spelling` writes it: unchanged for JSON, lowercased for Headscale's
// YAML (which uses Go's field names lowercased: "DERPPort" -> "derpport").
std::string Spell(std::string_view json_name, Spelling spelling);

// "a.b" (or "b" when `path` is empty) and "a[3]".
std::string Member(std::string_view path, std::string_view name);
std::string Element(std::string_view path, std::size_t index);

// Parses a region id written as a map key: an optional sign and decimal digits that fit in 64
// bits (range checks are Validate's). Go's strconv.ParseInt accepts the same.
std::optional<std::int64_t> ParseRegionKey(std::string_view key);

// Where a node name was first seen: "Regions.900.Nodes[0]" in the spelling of its source.
using NamesSeen = std::map<std::string, std::string, std::less<>>;

// Checks the region stored under `key` and its nodes (everything Validate checks except that node
// names are unique across regions; names within the region are checked). Adds each node's name
// to `names` and reports a name that is already there. Paths use `spelling`.
std::optional<MapError> ValidateRegion(std::int64_t key, const Region& region,
                                       std::string_view source, Spelling spelling,
                                       NamesSeen& names);

}  // namespace derpkit::derpmap::detail
