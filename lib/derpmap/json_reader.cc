// ParseJson and ParseAuto: tailcfg JSON, read the way Go's encoding/json reads it into
// tailcfg.DERPMap (keys case-insensitive, unknown keys ignored, null = zero value, integers must
// be integers). Pure; no thread affinity.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/document_reader.h"

namespace derpkit::derpmap {
namespace {

// ordered_json keeps members in document order, so that of two keys naming one field the later
// wins, as in Go.
using Json = nlohmann::ordered_json;
using detail::Reason;

struct JsonAdapter {
  using Value = const Json*;
  static constexpr Spelling kSpelling = Spelling::kJson;
  static constexpr const char* kObject = "an object";
  static constexpr const char* kArray = "an array";

  static bool IsNull(Value v) { return v->is_null(); }
  static bool IsObject(Value v) { return v->is_object(); }
  static bool IsArray(Value v) { return v->is_array(); }

  static std::string KindName(Value v) {
    switch (v->type()) {
      case Json::value_t::string:
        return "string";
      case Json::value_t::boolean:
        return "boolean";
      case Json::value_t::object:
        return "object";
      case Json::value_t::array:
        return "array";
      case Json::value_t::null:
        return "null";
      default:
        return "number";
    }
  }

  static Expected<std::vector<std::pair<std::string, Value>>, Reason> Members(Value v) {
    std::vector<std::pair<std::string, Value>> out;
    for (const auto& [key, value] : v->items()) out.emplace_back(key, &value);
    return out;
  }

  static std::vector<Value> Elements(Value v) {
    std::vector<Value> out;
    for (const auto& element : *v) out.push_back(&element);
    return out;
  }

  static Expected<std::string, Reason> String(Value v) {
    if (!v->is_string()) return Unexpected(Reason{"expected a string, got " + KindName(v)});
    return v->get<std::string>();
  }

  static Expected<bool, Reason> Bool(Value v) {
    if (!v->is_boolean()) return Unexpected(Reason{"expected a boolean, got " + KindName(v)});
    return v->get<bool>();
  }

  static Expected<std::int64_t, Reason> Int(Value v) {
    if (v->is_number_integer() && !v->is_number_unsigned()) return v->get<std::int64_t>();
    if (v->is_number_unsigned()) {
      const auto u = v->get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(u);
      }
      return Unexpected(Reason{std::to_string(u) + " is out of range for a Go int"});
    }
    if (v->is_number_float()) {
      return Unexpected(Reason{"expected an integer, got " + v->dump()});
    }
    return Unexpected(Reason{"expected a number, got " + KindName(v)});
  }

  static Expected<double, Reason> Double(Value v) {
    if (!v->is_number()) return Unexpected(Reason{"expected a number, got " + KindName(v)});
    return v->get<double>();
  }
};

}  // namespace

Expected<MapDocument, MapError> ParseJson(std::string_view text, std::string_view source) {
  Json root;
  try {
    root = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    // nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is useful.
    std::string what = e.what();
    if (auto close = what.find("] "); what.starts_with("[json.") && close != std::string::npos) {
      what.erase(0, close + 2);
    }
    return Unexpected(MapError{std::string(source), "", "not valid JSON: " + what});
  }
  if (!root.is_object()) {
    return Unexpected(
        MapError{std::string(source), "",
                 "expected a JSON object (a DERP map), got " + JsonAdapter::KindName(&root)});
  }
  return detail::DocumentReader<JsonAdapter>(source).Read(&root);
}

Expected<MapDocument, MapError> ParseAuto(std::string_view text, std::string_view source) {
  std::string_view rest = text;
  if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);  // a UTF-8 byte order mark
  const auto first = rest.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && rest[first] == '{') return ParseJson(text, source);
  return ParseYaml(text, source);
}

}  // namespace derpkit::derpmap
