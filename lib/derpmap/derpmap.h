// lib/derpmap: one model of a DERP map (tailcfg.DERPMap, derp-protocol.md §12) for every derpkit
// tool, read from Tailscale's JSON or Headscale's YAML (§12.5), merged as Headscale merges maps,
// validated with errors that name the source, the field path and the reason.
//
// Pure: text in, values out, and back. No files, sockets or clocks here (lib/derpmap/source.h
// fetches). Thread affinity: none; values are plain structs, safe to copy between threads.
//
// Typical use:
//   auto doc = ParseJson(text, "derpmap.json");       // or ParseYaml / ParseAuto
//   if (!doc) die(doc.error().ToString());            // "derpmap.json:
//   Regions.900.Nodes[0].HostName: missing" DerpMap map; MergeInto(map, *doc); // later documents
//   replace regions by id if (auto err = Validate(map, "merged map")) die(err->ToString());
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/expected.h"

namespace derpkit::derpmap {

inline constexpr std::uint16_t kDefaultDerpPort = 443;
inline constexpr std::uint16_t kDefaultStunPort = 3478;
// Region ids are positive and fit a JSON number exactly (2^53 - 1).
inline constexpr std::int64_t kMaxRegionId = (std::int64_t{1} << 53) - 1;
// A document may hold at most this many nodes. Tailscale's own map has about a hundred; the bound
// matters for YAML, where one aliased node list can be repeated in every region.
inline constexpr std::size_t kMaxNodes = 10000;

// How a source spells field names, and so how its errors name fields: tailcfg JSON
// ("Regions.900.Nodes[1].DERPPort") or Headscale's YAML ("regions.900.nodes[1].derpport").
enum class Spelling { kJson, kYaml };

// tailcfg.DERPNode. Every field is kept as written; the Effective*() helpers apply the defaults.
struct Node {
  std::string name{};          // "Name": unique across the whole map ("900a")
  std::int64_t region_id = 0;  // "RegionID"
  std::string host_name{};     // "HostName": required; DNS name and TLS SNI
  std::string cert_name{};     // "CertName": name to verify instead, or "sha256-raw:<hex>"
  std::string ipv4{};          // "IPv4": literal, "" = use DNS, anything else (e.g. "none") = no v4
  std::string ipv6{};          // "IPv6": the same for IPv6
  int stun_port = 0;           // "STUNPort": 0 = 3478, -1 = no STUN
  bool stun_only = false;      // "STUNOnly"
  int derp_port = 0;           // "DERPPort": 0 = 443
  bool insecure_for_tests = false;  // "InsecureForTests"
  std::string stun_test_ip{};       // "STUNTestIP"
  bool can_port80 = false;          // "CanPort80"

  std::uint16_t EffectiveDerpPort() const;
  // nullopt when the node has no STUN (STUNPort < 0).
  std::optional<std::uint16_t> EffectiveStunPort() const;

  enum class AddrUse {
    kDns,      // field empty: resolve host_name for this family
    kLiteral,  // field is an address literal of this family
    kDisabled  // anything else ("none", an address of the other family): this family is off
  };
  AddrUse Ipv4Use() const;
  AddrUse Ipv6Use() const;

  friend bool operator==(const Node&, const Node&) = default;
};

// tailcfg.DERPHomeParams.
struct HomeParams {
  std::map<std::int64_t, double> region_score{};  // "RegionScore": region id -> latency multiplier
  friend bool operator==(const HomeParams&, const HomeParams&) = default;
};

// tailcfg.DERPRegion.
struct Region {
  std::int64_t region_id = 0;       // "RegionID"
  std::string region_code{};        // "RegionCode"
  std::string region_name{};        // "RegionName"
  double latitude = 0;              // "Latitude" (omitted when 0)
  double longitude = 0;             // "Longitude"
  bool avoid = false;               // "Avoid"
  bool no_measure_no_home = false;  // "NoMeasureNoHome"
  std::vector<Node> nodes{};        // "Nodes", in priority order

  friend bool operator==(const Region&, const Region&) = default;
};

// tailcfg.DERPMap.
struct DerpMap {
  std::optional<HomeParams> home_params{};   // "HomeParams"
  std::map<std::int64_t, Region> regions{};  // "Regions", keyed by region id
  bool omit_default_regions = false;         // "omitDefaultRegions"

  // Returns the region whose RegionCode equals `code_or_id`, or whose id is that decimal number.
  const Region* FindRegion(std::string_view code_or_id) const;

  friend bool operator==(const DerpMap&, const DerpMap&) = default;
};

// One parsed source before merging: a region value of nullopt is Headscale's `null`, which
// deletes that id from maps loaded earlier.
struct MapDocument {
  std::optional<HomeParams> home_params{};
  std::map<std::int64_t, std::optional<Region>> regions{};
  bool omit_default_regions = false;
  Spelling spelling = Spelling::kJson;  // which reader made it, for Validate's paths

  friend bool operator==(const MapDocument&, const MapDocument&) = default;
};

// Why a map was refused. ToString() is "<source>: <path>: <reason>", e.g.
// "headscale.yaml: regions.900.nodes[0]: unknown key \"HostName\" (Headscale's YAML spells it
// \"hostname\"; Headscale would silently ignore \"HostName\")".
struct MapError {
  std::string source{};  // file path, URL, "local", or a caller's label
  std::string path{};    // field path in the source's own spelling; "" for the whole document
  std::string reason{};
  std::string ToString() const;

  friend bool operator==(const MapError&, const MapError&) = default;
};

// Parses tailcfg JSON (Tailscale's spellings, as the derpmap URL and LocalAPI serve it). Keys
// match case-insensitively and unknown keys are ignored, as Go's encoding/json does, so newer
// maps still load; `null` leaves a field at its zero value and, for a region, deletes it (as in
// Headscale's merge). Wrong types, non-integers where Go has an int, bad region keys, a null
// node, more than kMaxNodes nodes and malformed JSON are errors.
Expected<MapDocument, MapError> ParseJson(std::string_view text, std::string_view source);

// Parses Headscale's YAML (lowercase Go field names; region ids as keys; `null` deletes). An
// unknown key is an error, and one that is a JSON spelling says so. Also refused: invalid UTF-8,
// a key given twice, quoted numbers, non-finite floats, more than kMaxNodes nodes (counting
// every use of an alias).
Expected<MapDocument, MapError> ParseYaml(std::string_view text, std::string_view source);

// ParseJson when the first non-space character is '{', else ParseYaml.
Expected<MapDocument, MapError> ParseAuto(std::string_view text, std::string_view source);

// Applies `doc` on top of `map` as Headscale does: each region replaces the one with its id (or
// deletes it when null); HomeParams and omitDefaultRegions, when set, replace the earlier ones.
void MergeInto(DerpMap& map, const MapDocument& doc);

// Checks what every tool relies on and returns the first problem: region key equals RegionID and
// is in 1..kMaxRegionId; every node has a Name unique across the map, a HostName, a RegionID equal
// to its region's; ports in range (DERPPort 0..65535, STUNPort -1..65535); IPv4/IPv6 are empty,
// a literal of their family or a disabling word of letters ("none") (Tailscale would silently turn
// the family off for a mistyped address or one of the other family: refused here); STUNTestIP is
// empty or an address; a sha256-raw CertName has 64 hex digits. Paths use `spelling` (JSON by
// default: "Regions.900.Nodes[1].DERPPort").
std::optional<MapError> Validate(const DerpMap& map, std::string_view source,
                                 Spelling spelling = Spelling::kJson);

// The same checks for one document before merging (null regions are skipped), with paths in the
// document's own spelling.
std::optional<MapError> Validate(const MapDocument& doc, std::string_view source);

// Serialises as tailcfg JSON, Go's field order, omitting what Go omits (omitempty fields at their
// zero value), indented with two spaces, no final newline. Map keys are sorted as Go sorts them
// (as strings: "1000" before "900"). ParseJson(ToJson(m)) == m.
std::string ToJson(const DerpMap& map);

}  // namespace derpkit::derpmap
