#include "lib/http/url.h"

#include <charconv>

#include "lib/util/netaddr.h"

namespace derpkit::http {

std::string_view Describe(UrlError e) {
  switch (e) {
    case UrlError::kBadScheme:
      return "URL must start with http:// or https://";
    case UrlError::kEmptyHost:
      return "URL has no host";
    case UrlError::kBadHost:
      return "URL host is malformed";
    case UrlError::kBadPort:
      return "URL port is not a number from 1 to 65535";
    case UrlError::kUnsupported:
      return "URL has user info, a fragment or control characters, which are not supported";
  }
  return "bad URL";
}

std::string Url::HostHeader() const {
  std::string h;
  const bool bracket = host.find(':') != std::string::npos;
  if (bracket) h.push_back('[');
  h.append(host);
  if (bracket) h.push_back(']');
  if (explicit_port) h.append(":").append(std::to_string(port));
  return h;
}

std::string SchemeHostPort(const Url& url) {
  const bool bracket = url.host.find(':') != std::string::npos;
  return url.scheme + "://" + (bracket ? "[" + url.host + "]" : url.host) + ":" +
         std::to_string(url.port);
}

Expected<Url, UrlError> ParseUrl(std::string_view text) {
  Url url;
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#') {
      return Unexpected{UrlError::kUnsupported};
    }
  }
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return Unexpected{UrlError::kBadScheme};
  for (char c : text.substr(0, sep)) url.scheme.push_back(static_cast<char>(std::tolower(c)));
  if (url.scheme != "http" && url.scheme != "https") return Unexpected{UrlError::kBadScheme};
  text.remove_prefix(sep + 3);
  const auto path_at = text.find_first_of("/?");
  std::string_view authority = text.substr(0, path_at);
  if (path_at != std::string_view::npos) {
    // "http://h?q" means "/?q". (Built by append: GCC 12 warns falsely on string::insert.)
    url.target.clear();
    if (text[path_at] == '?') url.target.push_back('/');
    url.target.append(text.substr(path_at));
  }
  if (authority.find('@') != std::string_view::npos) return Unexpected{UrlError::kUnsupported};
  if (authority.empty()) return Unexpected{UrlError::kEmptyHost};
  std::string_view port_text;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return Unexpected{UrlError::kBadHost};
    url.host = std::string(authority.substr(1, close - 1));
    // Brackets hold an IPv6 literal and nothing else (RFC 3986 IP-literal, no zones).
    auto ip = netaddr::ParseIp(url.host);
    if (!ip || !ip->is_v6()) return Unexpected{UrlError::kBadHost};
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Unexpected{UrlError::kBadHost};
      port_text = rest.substr(1);
      url.explicit_port = true;
    }
  } else {
    const auto colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      url.explicit_port = true;
    }
    if (url.host.find_first_of("[]") != std::string::npos) return Unexpected{UrlError::kBadHost};
  }
  if (url.host.empty()) return Unexpected{UrlError::kEmptyHost};
  url.port = url.tls() ? 443 : 80;
  if (url.explicit_port) {
    unsigned p = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
        p == 0 || p > 65535) {
      return Unexpected{UrlError::kBadPort};
    }
    url.port = static_cast<std::uint16_t>(p);
  }
  return url;
}

}  // namespace derpkit::http
