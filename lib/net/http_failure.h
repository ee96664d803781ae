// DescribeHttpFailure: one sentence for an HTTP request that got no response, from
// cpp-httplib's error code, for every derpkit program that fetches or posts over HTTP(S) (DERP
// map URLs, the Pushgateway, the admission controller, the ACME CA), so that the same failure
// reads the same everywhere. Pure text; no thread of its own.
#pragma once

#include <httplib.h>

#include <chrono>
#include <string>

namespace derpkit::net {

struct HttpFailureContext {
  std::string where;                    // "host:port" of the server asked
  std::chrono::milliseconds timeout{};  // the request's limit, quoted in timeouts; 0: not quoted
  std::string sending = "the request";  // what a failed write was sending
  std::string ca_file;                  // the trust anchors in use; empty: the system's
  std::string trust_hint;               // appended to a certificate that is not trusted
};

// `verify_result` is the client's get_openssl_verify_result() (for SSLServerVerification).
std::string DescribeHttpFailure(httplib::Error error, long verify_result,
                                const HttpFailureContext& context);

// "300 ms": how these sentences quote a limit.
std::string MillisText(std::chrono::milliseconds d);

}  // namespace derpkit::net
