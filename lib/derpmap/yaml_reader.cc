// ParseYaml: Headscale's `derp.paths` files, read the way Headscale's YAML decoder (yaml.v3, no
// struct tags, so Go field names lowercased) reads them into tailcfg.DERPMap, except that what
// Headscale would silently ignore or mangle is refused here with the reason. Pure; no thread
// affinity.
#include <yaml-cpp/yaml.h>

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/document_reader.h"

namespace derpkit::derpmap {
namespace {

using detail::Reason;

// Go's YAML decoder refuses input that is not UTF-8; yaml-cpp passes bytes through.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;  // truncated sequence
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr std::array<std::uint32_t, 4> kMin = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// yaml-cpp marks a quoted (non-plain) scalar with the tag "!": such a scalar is always a string.
bool IsQuoted(const YAML::Node& n) { return n.Tag() == "!"; }

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

struct YamlAdapter {
  using Value = YAML::Node;
  static constexpr Spelling kSpelling = Spelling::kYaml;
  static constexpr const char* kObject = "a mapping";
  static constexpr const char* kArray = "a sequence";

  static bool IsNull(const Value& v) { return !v.IsDefined() || v.IsNull(); }
  static bool IsObject(const Value& v) { return v.IsMap(); }
  static bool IsArray(const Value& v) { return v.IsSequence(); }

  static std::string KindName(const Value& v) {
    if (v.IsMap()) return "a mapping";
    if (v.IsSequence()) return "a sequence";
    if (v.IsScalar()) return Quote(v.Scalar());
    return "null";
  }

  static Expected<std::vector<std::pair<std::string, Value>>, Reason> Members(const Value& v) {
    std::vector<std::pair<std::string, Value>> out;
    std::map<std::string, int> line_of;  // yaml.v3 refuses a key given twice; so do we
    // yaml-cpp's iterator hands out a temporary pair: keep it alive for the whole body (binding
    // to `it->first` would dangle once the statement ends).
    for (const auto& entry : v) {
      const YAML::Node key = entry.first;
      if (!key.IsScalar()) {
        return Unexpected(Reason{"a key must be a plain value, not " + KindName(key)});
      }
      const int line = key.Mark().line + 1;
      auto [seen, fresh] = line_of.emplace(key.Scalar(), line);
      if (!fresh) {
        return Unexpected(Reason{"key " + Quote(key.Scalar()) + " is given twice (lines " +
                                 std::to_string(seen->second) + " and " + std::to_string(line) +
                                 ")"});
      }
      out.emplace_back(key.Scalar(), entry.second);
    }
    return out;
  }

  static std::vector<Value> Elements(const Value& v) {
    std::vector<Value> out;
    for (const auto& element : v) out.push_back(element);
    return out;
  }

  static Expected<std::string, Reason> String(const Value& v) {
    // Like yaml.v3, any scalar (`name: 900`) is taken as its text.
    if (!v.IsScalar()) return Unexpected(Reason{"expected a string, got " + KindName(v)});
    // The text was UTF-8, but an escape such as "\uD800" can still make a string that isn't.
    if (!IsValidUtf8(v.Scalar())) return Unexpected(Reason{"the string is not valid UTF-8"});
    return v.Scalar();
  }

  static Expected<bool, Reason> Bool(const Value& v) {
    // YAML 1.2's booleans plus the YAML 1.1 words yaml.v3 still accepts for a bool field.
    static constexpr std::array<std::string_view, 11> kTrue = {
        "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
    static constexpr std::array<std::string_view, 11> kFalse = {
        "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
    if (v.IsScalar() && !IsQuoted(v)) {
      for (auto word : kTrue) {
        if (v.Scalar() == word) return true;
      }
      for (auto word : kFalse) {
        if (v.Scalar() == word) return false;
      }
    }
    return Unexpected(Reason{"expected true or false, got " + Described(v)});
  }

  static Expected<std::int64_t, Reason> Int(const Value& v) {
    if (!v.IsScalar() || IsQuoted(v)) {
      return Unexpected(Reason{"expected an integer, got " + Described(v)});
    }
    std::string_view text = v.Scalar();
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
      negative = text.front() == '-';
      text.remove_prefix(1);
    }
    int base = 10;
    if (text.starts_with("0x")) base = 16;
    if (text.starts_with("0o")) base = 8;
    if (text.starts_with("0b")) base = 2;
    if (base != 10) text.remove_prefix(2);
    // Parse the magnitude unsigned, so that the most negative int64 still fits.
    std::uint64_t magnitude = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, magnitude, base);
    if (text.empty() || ptr != end || ec == std::errc::invalid_argument) {
      return Unexpected(Reason{"expected an integer, got " + Described(v)});
    }
    constexpr std::uint64_t kMaxPositive = std::numeric_limits<std::int64_t>::max();
    if (ec == std::errc::result_out_of_range || magnitude > kMaxPositive + (negative ? 1 : 0)) {
      return Unexpected(Reason{v.Scalar() + " is out of range for a Go int"});
    }
    if (negative) return static_cast<std::int64_t>(0 - magnitude);
    return static_cast<std::int64_t>(magnitude);
  }

  static Expected<double, Reason> Double(const Value& v) {
    if (!v.IsScalar() || IsQuoted(v)) {
      return Unexpected(Reason{"expected a number, got " + Described(v)});
    }
    std::string_view text = v.Scalar();
    if (text.starts_with("+")) text.remove_prefix(1);
    double value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ptr != end || ec != std::errc() || !std::isfinite(value)) {
      // .inf and .nan included: a DERP map travels as JSON, which has neither.
      return Unexpected(Reason{"expected a finite number, got " + Described(v)});
    }
    return value;
  }

  static std::string Described(const Value& v) {
    if (v.IsScalar() && IsQuoted(v)) return "the quoted string " + Quote(v.Scalar());
    return KindName(v);
  }
};

}  // namespace

Expected<MapDocument, MapError> ParseYaml(std::string_view text, std::string_view source) {
  if (!IsValidUtf8(text)) {
    return Unexpected(MapError{std::string(source), "", "not valid YAML: the text is not UTF-8"});
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::string where;
    if (!e.mark.is_null()) {
      where = "line " + std::to_string(e.mark.line + 1) + ", column " +
              std::to_string(e.mark.column + 1) + ": ";
    }
    return Unexpected(MapError{std::string(source), "", "not valid YAML: " + where + e.msg});
  }
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    return Unexpected(
        MapError{std::string(source), "",
                 "expected a mapping (a DERP map), got " + YamlAdapter::KindName(root)});
  }
  try {
    return detail::DocumentReader<YamlAdapter>(source).Read(root);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws from node accessors on shapes it considers invalid; none should reach here
    // after the checks above, but an exception must not escape a parser.
    return Unexpected(MapError{std::string(source), "", "not valid YAML: " + e.msg});
  }
}

}  // namespace derpkit::derpmap
