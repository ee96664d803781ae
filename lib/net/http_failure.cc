// DescribeHttpFailure (see http_failure.h). Pure text.
#include "lib/net/http_failure.h"

#include <openssl/x509.h>

namespace derpkit::net {

std::string MillisText(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

std::string DescribeHttpFailure(httplib::Error error, long verify_result,
                                const HttpFailureContext& context) {
  const std::string& where = context.where;
  const std::string within =
      context.timeout.count() > 0 ? "within " + MillisText(context.timeout) : "in time";
  switch (error) {
    case httplib::Error::Connection:
      return "could not connect to " + where + " (refused, unreachable or no address)";
    case httplib::Error::ConnectionTimeout:
      return "connecting to " + where + " timed out" +
             (context.timeout.count() > 0 ? " after " + MillisText(context.timeout) : "");
    case httplib::Error::Read:
      return "no answer from " + where + " " + within + " (it closed, or sent nothing)";
    case httplib::Error::Write:
      return "sending " + context.sending + " to " + where + " failed (closed, or stalled" +
             (context.timeout.count() > 0 ? " for " + MillisText(context.timeout) : "") + ")";
    case httplib::Error::SSLConnection:
      return "the TLS handshake with " + where + " failed";
    case httplib::Error::SSLLoadingCerts:
      return context.ca_file.empty() ? "could not load the system's CA certificates"
                                     : "could not load the CA file " + context.ca_file;
    case httplib::Error::SSLServerVerification:
      return "the TLS certificate of " + where +
             " is not trusted: " + X509_verify_cert_error_string(verify_result) +
             context.trust_hint;
    default:
      return "the request to " + where + " failed: " + httplib::to_string(error);
  }
}

}  // namespace derpkit::net
