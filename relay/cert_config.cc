// Validation of the certificate flags (see cert_config.h).
#include "relay/cert_config.h"

#include "lib/http/url.h"

namespace derpkit::relay {

Expected<void, std::string> ValidateAcme(RelayConfig& config) {
  using Err = Unexpected<std::string>;
  if (config.cert_poll_interval.count() <= 0) {
    return Err{"the certificate poll interval must be positive"};
  }
  if (config.cert_mode != "letsencrypt") return {};
  auto url = http::ParseUrl(config.acme_directory);
  if (!url || !url->tls()) {
    return Err{"--acme-directory " + config.acme_directory + ": want an https:// URL"};
  }
  if (config.acme_challenge.empty()) {
    config.acme_challenge = config.http_port >= 0 ? "http-01" : "tls-alpn-01";
  }
  if (config.acme_challenge != "http-01" && config.acme_challenge != "tls-alpn-01") {
    return Err{"--acme-challenge " + config.acme_challenge + ": want http-01 or tls-alpn-01"};
  }
  if (config.acme_challenge == "http-01" && config.http_port < 0) {
    return Err{
        "--acme-challenge http-01 is answered on --http-port, which is disabled (-1); "
        "use --acme-challenge tls-alpn-01"};
  }
  if (config.acme_email.find_first_of(" \t\r\n,:") != std::string::npos) {
    return Err{"--acme-email " + config.acme_email + ": want a plain address (user@example.com)"};
  }
  if (config.acme_renew_before.count() < 0 || config.acme_retry_min.count() <= 0) {
    return Err{"--acme-renew-before must not be negative"};
  }
  return {};
}

}  // namespace derpkit::relay
