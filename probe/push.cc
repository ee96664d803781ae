// The Pushgateway client: URL and grouping key checks, one PUT with cpp-httplib, failures in words.
// Blocking; main's thread (see push.h for why this is not prometheus::Gateway).
#include "probe/push.h"

#include <httplib.h>
#include <openssl/x509.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cstddef>
#include <span>

#include "lib/http/body_text.h"
#include "lib/http/url.h"
#include "lib/http/websocket_accept.h"
#include "lib/net/http_failure.h"
#include "probe/metrics.h"

namespace derpkit::probe {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::size_t kQuotedBodyBytes = 200;

bool IsLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// A value that can go into a path segment as it is: URL-unreserved characters only, and not a
// dot segment that clients and proxies would collapse.
bool IsPlainSegment(std::string_view value) {
  if (value.empty() || value == "." || value == "..") return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
  });
}

// base64url without padding (RFC 4648 §5); the Pushgateway's spelling of the empty value is "=".
std::string Base64Url(std::string_view value) {
  if (value.empty()) return "=";
  std::string out = http::Base64Encode(std::as_bytes(std::span(value.data(), value.size())));
  out.erase(out.find_last_not_of('=') + 1);
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

// "/name/value" or "/name@base64/…".
std::string Segment(std::string_view name, std::string_view value) {
  if (IsPlainSegment(value)) return "/" + std::string(name) + "/" + std::string(value);
  return "/" + std::string(name) + "@base64/" + Base64Url(value);
}

}  // namespace

std::optional<std::string> PushMetrics(const PushOptions& options, const ProberSnapshot& snapshot) {
  const std::string prefix = "push to " + options.url + " (job " + options.job + "): ";
  auto url = http::ParseUrl(options.url);
  if (!url) return prefix + "not a usable URL: " + std::string(Describe(url.error()));
  if (url->target.find('?') != std::string::npos) {
    return prefix + "the URL must not have a query (the job and labels make the path)";
  }
  if (options.job.empty()) return prefix + "the job name is empty";
  std::string path = url->target;
  while (!path.empty() && path.back() == '/') path.pop_back();
  path += "/metrics" + Segment("job", options.job);
  for (const auto& [name, value] : options.grouping_labels) {
    if (!IsLabelName(name) || name == "job") {
      return prefix + "\"" + name + "\" cannot be a grouping label name";
    }
    path += Segment(name, value);
  }

  const std::string body = prometheus::TextSerializer{}.Serialize(CollectMetricFamilies(snapshot));
  httplib::Client client(http::SchemeHostPort(*url));
  client.set_connection_timeout(options.timeout);
  client.set_read_timeout(options.timeout);
  client.set_write_timeout(options.timeout);
  client.set_keep_alive(false);
  client.set_follow_location(false);
  if (url->tls()) client.enable_server_certificate_verification(true);
  const httplib::Headers headers = {{"Host", url->HostHeader()},
                                    {"User-Agent", "derp-probe/" DERPKIT_VERSION}};
  const httplib::Result result = client.Put(path, headers, body, kContentType);
  if (!result) {
    const long verify = result.error() == httplib::Error::SSLServerVerification
                            ? client.get_openssl_verify_result()
                            : 0;
    net::HttpFailureContext context;
    context.where = url->HostHeader();
    context.timeout = options.timeout;
    context.sending = "the metrics";
    return prefix + net::DescribeHttpFailure(result.error(), verify, context);
  }
  // The Pushgateway answers 200 (older versions 202) when it took the metrics.
  if (result->status >= 200 && result->status < 300) return std::nullopt;
  return prefix + http::DescribeStatus(result->status, result->body, kQuotedBodyBytes);
}

}  // namespace derpkit::probe
