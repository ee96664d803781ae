// The URLs derpkit's tools are given: http(s)://host[:port][/path][?query]. Nothing more (no
// user info, no fragments): a DERP URL that needs them is a mistake worth a clear error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/util/expected.h"

namespace derpkit::http {

struct Url {
  std::string scheme;      // "http" or "https" (lowercased)
  std::string host;        // without brackets
  std::uint16_t port = 0;  // explicit or the scheme's default
  bool explicit_port = false;
  std::string target = "/";  // path and query, as sent in the request line

  bool tls() const { return scheme == "https"; }
  // host[:port] for the Host header (port only when explicit), brackets for IPv6.
  std::string HostHeader() const;
};

enum class UrlError { kBadScheme, kEmptyHost, kBadHost, kBadPort, kUnsupported };
std::string_view Describe(UrlError e);

Expected<Url, UrlError> ParseUrl(std::string_view text);

// "https://[::1]:443", "http://derp.example.com:80": scheme, host (brackets for IPv6) and the port
// always, explicit or not; what an HTTP client library takes to reach the URL's server.
std::string SchemeHostPort(const Url& url);

}  // namespace derpkit::http
