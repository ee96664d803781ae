// The walk from a parsed tree (JSON or YAML) to a MapDocument, written once for both formats.
// Internal to lib/derpmap: json_reader.cc and yaml_reader.cc instantiate it with an adapter.
//
// An adapter `A` says how its format looks and how it reads scalars:
//   using Value = ...;                          cheap to copy (a pointer or a handle)
//   static constexpr Spelling kSpelling;        kJson: keys match case-insensitively, unknown keys
//                                               are ignored (Go's encoding/json); kYaml: keys match
//                                               exactly, unknown keys are errors
//   static constexpr const char* kObject;       "an object" / "a mapping"
//   static constexpr const char* kArray;        "an array" / "a sequence"
//   static bool IsNull(Value), IsObject(Value), IsArray(Value);
//   static std::string KindName(Value);          what was found instead, for "expected X, got Y"
//   static Expected<std::vector<std::pair<std::string, Value>>, Reason> Members(Value);
//   static std::vector<Value> Elements(Value);
//   static Expected<std::string, Reason> String(Value);  and Bool, Int (int64), Double
// Null values leave a field at its zero value, as both Go decoders do; the walker never calls the
// scalar readers with a null.
//
// Pure; no thread affinity.
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/detail.h"
#include "lib/util/expected.h"

namespace derpkit::derpmap::detail {

// Why one value was refused; the walker adds the source and the path.
struct Reason {
  std::string text;
};

inline bool EqualsFolded(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

template <typename A>
class DocumentReader {
 public:
  using Value = typename A::Value;

  explicit DocumentReader(std::string_view source) : source_(source) {}

  Expected<MapDocument, MapError> Read(Value root) {
    MapDocument doc;
    doc.spelling = A::kSpelling;
    if (auto err = ReadTop(root, doc)) return Unexpected(std::move(*err));
    return doc;
  }

 private:
  using Error = std::optional<MapError>;

  Error Fail(std::string path, std::string reason) const {
    return MapError{std::string(source_), std::move(path), std::move(reason)};
  }
  Error Expect(const std::string& path, const char* what, Value n) const {
    return Fail(path, std::string("expected ") + what + ", got " + A::KindName(n));
  }

  // Returns the index in `fields` (JSON spellings) that `key` names, nullopt for a key to ignore,
  // or the reason the key is refused.
  template <std::size_t N>
  Expected<std::optional<std::size_t>, Reason> Match(
      const std::string& key, const std::array<std::string_view, N>& fields) const {
    for (std::size_t i = 0; i < N; ++i) {
      const std::string spelled = Spell(fields[i], A::kSpelling);
      if (key == spelled) return std::optional<std::size_t>(i);
    }
    for (std::size_t i = 0; i < N; ++i) {
      if (!EqualsFolded(key, fields[i])) continue;
      if (A::kSpelling == Spelling::kJson) return std::optional<std::size_t>(i);
      const std::string spelled = Spell(fields[i], A::kSpelling);
      return Unexpected(Reason{"unknown key \"" + key + "\" (Headscale's YAML spells it \"" +
                               spelled + "\"; Headscale would silently ignore \"" + key + "\")"});
    }
    if (A::kSpelling == Spelling::kJson) return std::optional<std::size_t>();
    return Unexpected(
        Reason{"unknown key \"" + key +
               "\" (Headscale would silently ignore it; known keys: " + KnownKeys(fields) + ")"});
  }

  template <std::size_t N>
  static std::string KnownKeys(const std::array<std::string_view, N>& fields) {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
      if (i > 0) out += ", ";
      out += Spell(fields[i], A::kSpelling);
    }
    return out;
  }

  // Calls on_field(index, path, value) for every member of the object `n` at `path` that names
  // one of `fields`; nulls are skipped (zero value).
  template <std::size_t N, typename F>
  Error ForFields(Value n, const std::string& path, const std::array<std::string_view, N>& fields,
                  F&& on_field) {
    if (!A::IsObject(n)) return Expect(path, A::kObject, n);
    auto members = A::Members(n);
    if (!members) return Fail(path, members.error().text);
    for (const auto& [key, value] : *members) {
      const std::string member_path = Member(path, key);
      auto field = Match(key, fields);
      if (!field) return Fail(path, field.error().text);  // the mapping that has the bad key
      if (!*field || A::IsNull(value)) continue;
      if (auto err = on_field(**field, member_path, value)) return err;
    }
    return std::nullopt;
  }

  Error ReadString(Value n, const std::string& path, std::string& out) const {
    auto v = A::String(n);
    if (!v) return Fail(path, v.error().text);
    out = std::move(*v);
    return std::nullopt;
  }

  Error ReadBool(Value n, const std::string& path, bool& out) const {
    auto v = A::Bool(n);
    if (!v) return Fail(path, v.error().text);
    out = *v;
    return std::nullopt;
  }

  Error ReadInt64(Value n, const std::string& path, std::int64_t& out) const {
    auto v = A::Int(n);
    if (!v) return Fail(path, v.error().text);
    out = *v;
    return std::nullopt;
  }

  // A port is an int in Go; values that don't fit ours are refused here with the range Validate
  // would name, the rest are Validate's to judge.
  Error ReadPort(Value n, const std::string& path, int min_port, int& out) const {
    auto v = A::Int(n);
    if (!v) return Fail(path, v.error().text);
    if (*v < INT_MIN || *v > INT_MAX) {
      return Fail(path,
                  std::to_string(*v) + " is out of range " + std::to_string(min_port) + "..65535");
    }
    out = static_cast<int>(*v);
    return std::nullopt;
  }

  Error ReadDouble(Value n, const std::string& path, double& out) const {
    auto v = A::Double(n);
    if (!v) return Fail(path, v.error().text);
    out = *v;
    return std::nullopt;
  }

  Error ReadTop(Value root, MapDocument& doc) {
    if (A::IsNull(root)) return std::nullopt;  // an empty document adds nothing
    static constexpr std::array<std::string_view, 3> kFields = {"HomeParams", "Regions",
                                                                "omitDefaultRegions"};
    return ForFields(root, "", kFields, [&](std::size_t field, const std::string& path, Value v) {
      switch (field) {
        case 0:
          return ReadHomeParams(v, path, doc.home_params.emplace());
        case 1:
          return ReadRegions(v, path, doc);
        default:
          return ReadBool(v, path, doc.omit_default_regions);
      }
    });
  }

  Error ReadHomeParams(Value n, const std::string& path, HomeParams& out) {
    static constexpr std::array<std::string_view, 1> kFields = {"RegionScore"};
    return ForFields(n, path, kFields, [&](std::size_t, const std::string& scores_path, Value v) {
      out.region_score.clear();
      if (!A::IsObject(v)) return Expect(scores_path, A::kObject, v);
      auto members = A::Members(v);
      if (!members) return Fail(scores_path, members.error().text);
      for (const auto& [key, score] : *members) {
        const std::string score_path = Member(scores_path, key);
        auto id = ParseRegionKey(key);
        if (!id) return Fail(score_path, "\"" + key + "\" is not a region id");
        double value = 0;
        if (!A::IsNull(score)) {
          if (auto err = ReadDouble(score, score_path, value)) return err;
        }
        out.region_score[*id] = value;
      }
      return Error();
    });
  }

  Error ReadRegions(Value n, const std::string& path, MapDocument& doc) {
    if (!A::IsObject(n)) return Expect(path, A::kObject, n);
    auto members = A::Members(n);
    if (!members) return Fail(path, members.error().text);
    for (const auto& [key, value] : *members) {
      const std::string region_path = Member(path, key);
      auto id = ParseRegionKey(key);
      if (!id) return Fail(region_path, "\"" + key + "\" is not a region id (a decimal number)");
      if (A::IsNull(value)) {
        doc.regions[*id] = std::nullopt;  // Headscale: null deletes the region
        continue;
      }
      Region region;
      if (auto err = ReadRegion(value, region_path, region)) return err;
      doc.regions[*id] = std::move(region);
    }
    return std::nullopt;
  }

  Error ReadRegion(Value n, const std::string& path, Region& region) {
    static constexpr std::array<std::string_view, 8> kFields = {
        "RegionID",  "RegionCode", "RegionName",      "Latitude",
        "Longitude", "Avoid",      "NoMeasureNoHome", "Nodes"};
    return ForFields(n, path, kFields, [&](std::size_t field, const std::string& p, Value v) {
      switch (field) {
        case 0:
          return ReadInt64(v, p, region.region_id);
        case 1:
          return ReadString(v, p, region.region_code);
        case 2:
          return ReadString(v, p, region.region_name);
        case 3:
          return ReadDouble(v, p, region.latitude);
        case 4:
          return ReadDouble(v, p, region.longitude);
        case 5:
          return ReadBool(v, p, region.avoid);
        case 6:
          return ReadBool(v, p, region.no_measure_no_home);
        default:
          return ReadNodes(v, p, region.nodes);
      }
    });
  }

  Error ReadNodes(Value n, const std::string& path, std::vector<derpmap::Node>& out) {
    if (!A::IsArray(n)) return Expect(path, A::kArray, n);
    out.clear();
    const std::vector<Value> elements = A::Elements(n);
    for (std::size_t i = 0; i < elements.size(); ++i) {
      const std::string node_path = Element(path, i);
      if (A::IsNull(elements[i])) return Fail(node_path, "a node can't be null");
      if (++nodes_read_ > kMaxNodes) {
        return Fail(node_path, "more than " + std::to_string(kMaxNodes) + " nodes in one map");
      }
      derpmap::Node node;
      if (auto err = ReadNode(elements[i], node_path, node)) return err;
      out.push_back(std::move(node));
    }
    return std::nullopt;
  }

  Error ReadNode(Value n, const std::string& path, derpmap::Node& node) {
    static constexpr std::array<std::string_view, 12> kFields = {
        "Name",     "RegionID", "HostName", "CertName",         "IPv4",       "IPv6",
        "STUNPort", "STUNOnly", "DERPPort", "InsecureForTests", "STUNTestIP", "CanPort80"};
    return ForFields(n, path, kFields, [&](std::size_t field, const std::string& p, Value v) {
      switch (field) {
        case 0:
          return ReadString(v, p, node.name);
        case 1:
          return ReadInt64(v, p, node.region_id);
        case 2:
          return ReadString(v, p, node.host_name);
        case 3:
          return ReadString(v, p, node.cert_name);
        case 4:
          return ReadString(v, p, node.ipv4);
        case 5:
          return ReadString(v, p, node.ipv6);
        case 6:
          return ReadPort(v, p, -1, node.stun_port);
        case 7:
          return ReadBool(v, p, node.stun_only);
        case 8:
          return ReadPort(v, p, 0, node.derp_port);
        case 9:
          return ReadBool(v, p, node.insecure_for_tests);
        case 10:
          return ReadString(v, p, node.stun_test_ip);
        default:
          return ReadBool(v, p, node.can_port80);
      }
    });
  }

  std::string_view source_;
  std::size_t nodes_read_ = 0;
};

}  // namespace derpkit::derpmap::detail
