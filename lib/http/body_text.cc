// HTML escaping and quoting of HTTP bodies (see body_text.h). Pure; no thread affinity.
#include "lib/http/body_text.h"

#include <algorithm>

#include "lib/http/head.h"

namespace derpkit::http {

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";  // Go's spelling: shorter than &quot;
        break;
      case '\'':
        out += "&#39;";  // &apos; is not HTML 4
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string FirstLine(std::string_view body, std::size_t max_bytes) {
  const auto start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "";
  body.remove_prefix(start);
  std::size_t end = std::min(body.find_first_of("\r\n"), body.size());
  if (end > max_bytes) {
    end = max_bytes;
    // Back off over continuation bytes (10xxxxxx) so a cut never splits a character.
    while (end > 0 && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80) --end;
  }
  return std::string(body.substr(0, end));
}

std::string DescribeStatus(int status, std::string_view body, std::size_t max_quoted_bytes) {
  std::string text = "HTTP " + std::to_string(status);
  if (const std::string_view phrase = ReasonPhrase(status); !phrase.empty()) {
    text += " " + std::string(phrase);
  }
  if (const std::string line = FirstLine(body, max_quoted_bytes); !line.empty()) {
    text += ": " + line;
  }
  return text;
}

}  // namespace derpkit::http
