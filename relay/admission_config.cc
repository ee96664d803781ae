// AdmissionConfig::Validate (see admission_config.h). Runs once at start-up, on main's thread.
#include "relay/admission_config.h"

#include "lib/http/url.h"

namespace derpkit::relay {

Expected<void, std::string> AdmissionConfig::Validate() const {
  using Err = Unexpected<std::string>;
  if (!verify_client_url.empty()) {
    auto url = http::ParseUrl(verify_client_url);
    if (!url) {
      return Err{"--verify-client-url " + verify_client_url + ": " +
                 std::string(http::Describe(url.error()))};
    }
  }
  if (verify_clients && tailscaled_socket.empty()) {
    return Err{"--verify-clients needs --socket, the path of tailscaled's LocalAPI socket"};
  }
  if (cache_allow_ttl.count() < 0 || cache_deny_ttl.count() < 0) {
    return Err{"--verify-cache-ttl and --verify-cache-deny-ttl must not be negative"};
  }
  if (max_in_flight < 1 || max_in_flight > 100000) {
    return Err{"--verify-max-in-flight " + std::to_string(max_in_flight) + ": must be 1..100000"};
  }
  if (worker_threads < 1 || worker_threads > 256) {
    return Err{"admission worker threads must be 1..256"};
  }
  if (url_timeout.count() <= 0 || tailscaled_timeout.count() <= 0 ||
      allow_keys_poll_interval.count() <= 0) {
    return Err{"admission timeouts and the allow-keys poll interval must be positive"};
  }
  return {};
}

}  // namespace derpkit::relay
