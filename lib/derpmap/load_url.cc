// Fetching a DERP map over http(s) with cpp-httplib: one overall deadline, a body size limit that
// stops the transfer as soon as it is crossed, a few redirects at most (never https -> http), and
// errors that say which step failed. Blocking; any thread (each call has its own client).
#include <httplib.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string>

#include "lib/derpmap/loaders.h"
#include "lib/http/body_text.h"
#include "lib/http/url.h"
#include "lib/net/http_failure.h"

namespace derpkit::derpmap::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Enough of an error page to quote its first line, and how much of that line an error quotes.
constexpr std::size_t kErrorBodyBytes = 4096;
constexpr std::size_t kQuotedBodyBytes = 200;

// Resolves a Location header against the URL that answered with it.
std::string ResolveLocation(const http::Url& base, const std::string& location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return location;
  if (location.starts_with("//")) return base.scheme + ":" + location;
  const std::string origin = base.scheme + "://" + base.HostHeader();
  if (location.starts_with("/")) return origin + location;
  std::string dir = base.target.substr(0, base.target.find('?'));
  dir = dir.substr(0, dir.rfind('/') + 1);
  return origin + dir + location;
}

struct Attempt {
  int status = 0;  // 0 when no response head arrived
  std::string location;
  std::string body;
  bool too_large = false;
  bool past_deadline = false;
  httplib::Error error = httplib::Error::Success;
  long verify_result = 0;  // OpenSSL's X509 verify result, for certificate errors
};

Attempt Get(const http::Url& url, Clock::time_point deadline, const LoadOptions& options) {
  Attempt a;
  const auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  httplib::Client client(http::SchemeHostPort(url));
  client.set_connection_timeout(remaining);
  client.set_read_timeout(remaining);
  client.set_write_timeout(remaining);
  client.set_follow_location(false);  // we follow redirects ourselves, a few at most
  client.set_keep_alive(false);
  if (url.tls()) {
    client.enable_server_certificate_verification(true);
    if (!options.ca_file.empty()) client.set_ca_cert_path(options.ca_file);
  }
  const httplib::Headers headers = {
      {"Host", url.HostHeader()},
      {"User-Agent", "derpkit/" DERPKIT_VERSION},
      {"Accept", "application/json"},
  };
  std::size_t limit = options.max_bytes;
  auto on_head = [&](const httplib::Response& response) {
    a.status = response.status;
    if (response.status >= 300 && response.status < 400) {
      a.location = response.get_header_value("Location");
      return false;  // the body of a redirect is of no use
    }
    if (response.status != 200) limit = std::min(limit, kErrorBodyBytes);
    // Refuse an announced oversized body before reading any of it.
    const std::string length = response.get_header_value("Content-Length");
    std::size_t announced = 0;
    auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), announced);
    if (response.status == 200 && ec == std::errc() && end == length.data() + length.size() &&
        announced > limit) {
      a.too_large = true;
      return false;
    }
    return true;
  };
  auto on_data = [&](const char* data, std::size_t size) {
    if (Clock::now() > deadline) {
      a.past_deadline = true;
      return false;
    }
    if (a.body.size() + size > limit) {
      a.body.append(data, limit - a.body.size());
      if (a.status == 200) a.too_large = true;
      return false;  // an error page: its beginning is enough
    }
    a.body.append(data, size);
    return true;
  };
  auto result = client.Get(url.target, headers, on_head, on_data);
  a.error = result.error();
  if (a.error == httplib::Error::SSLServerVerification) {
    a.verify_result = client.get_openssl_verify_result();
  }
  return a;
}

}  // namespace

Expected<std::string, MapError> FetchMapUrl(const std::string& url_text,
                                            const LoadOptions& options) {
  auto fail = [&](std::string reason) {
    return Unexpected(MapError{url_text, "", std::move(reason)});
  };
  const auto deadline = Clock::now() + options.timeout;
  std::string current = url_text;
  for (int redirects = 0;; ++redirects) {
    auto url = http::ParseUrl(current);
    if (!url)
      return fail("not a usable URL (" + current + "): " + std::string(Describe(url.error())));
    if (Clock::now() >= deadline)
      return fail("timed out after " + net::MillisText(options.timeout));

    const Attempt a = Get(*url, deadline, options);
    if (a.too_large) {
      return fail("the response is larger than the limit of " + std::to_string(options.max_bytes) +
                  " bytes");
    }
    if (a.past_deadline) return fail("timed out after " + net::MillisText(options.timeout));
    if (a.status >= 300 && a.status < 400 && a.status != 304) {
      if (a.location.empty()) return fail("HTTP " + std::to_string(a.status) + " without Location");
      if (redirects == kMaxRedirects) {
        return fail("more than " + std::to_string(kMaxRedirects) + " redirects");
      }
      const std::string next = ResolveLocation(*url, a.location);
      if (url->tls() && next.starts_with("http://")) {
        return fail("refusing to follow a redirect from https to " + next);
      }
      current = next;
      continue;
    }
    if (a.status != 0 && a.status != 200) {
      return fail(http::DescribeStatus(a.status, a.body, kQuotedBodyBytes));
    }
    if (a.status == 200 && a.error == httplib::Error::Success) return a.body;
    net::HttpFailureContext context;
    context.where = url->HostHeader();
    context.timeout = options.timeout;
    context.ca_file = options.ca_file;
    return fail(net::DescribeHttpFailure(a.error, a.verify_result, context));
  }
}

}  // namespace derpkit::derpmap::detail
