// AdmissionConfig: which clients derp-relay admits (derp-protocol.md §10), as main.cc's flags set
// it. Part of RelayConfig (its `admission` member); Validate() checks it once at start-up and
// the relay only reads it afterwards.
//
//   --verify-clients               ask the tailscaled beside the relay (whois over --socket)
//   --verify-client-url URL        ask an admission controller (Headscale's /verify contract)
//   --verify-client-url-fail-open  admit when that controller cannot be reached (default true)
//   --allow-keys-file PATH         node keys admitted without asking anyone
//   --verify-cache-ttl, --verify-cache-deny-ttl, --verify-max-in-flight   (ours: load bounds)
//
// Thread affinity: a plain value; copy it freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "lib/util/expected.h"

namespace derpkit::relay {

struct AdmissionConfig {
  // --verify-clients: admit only node keys the local tailscaled knows (GET
  // /localapi/v0/whois?addr=nodekey:<hex> on `tailscaled_socket`); any failure refuses.
  bool verify_clients = false;
  std::string tailscaled_socket = "/var/run/tailscale/tailscaled.sock";
  // --verify-client-url: POST {"NodePublic","Source"} and admit on 200 {"Allow": true}.
  std::string verify_client_url;
  // Admit when the request fails at the transport level (refused, timeout, DNS, TLS). A
  // non-200 answer or an unreadable body never fails open.
  bool verify_client_url_fail_open = true;
  // --allow-keys-file: node keys admitted without asking (lib/derp/node_key_list.h format),
  // re-read when the file changes. Alone, it is the whole admission policy.
  std::string allow_keys_file;

  // The decision cache, per (node key, source IP): how long an admission and a refusal are
  // remembered (0: not at all), and how many decisions at most. A storm of reconnects then costs
  // the verifiers one request per client, not one per connection.
  std::chrono::milliseconds cache_allow_ttl{30000};
  std::chrono::milliseconds cache_deny_ttl{5000};
  std::size_t cache_max_entries = 10000;
  // Verifications asked and not yet answered, across the relay; a client beyond that is refused
  // ("overloaded") at once rather than queued behind work it would time out waiting for.
  int max_in_flight = 64;
  // Threads that make the (blocking) verifier requests, off the event loops.
  int worker_threads = 4;
  // Bounds on one verifier request: derper gives the admission controller 5 s; we give
  // tailscaled as long. Tests shorten both.
  std::chrono::milliseconds url_timeout{5000};
  std::chrono::milliseconds tailscaled_timeout{5000};
  // How often the allow-keys file is checked for changes (mtime, size, inode).
  std::chrono::milliseconds allow_keys_poll_interval{2000};

  // Whether any admission check is configured; without one every client is admitted.
  bool enabled() const {
    return verify_clients || !verify_client_url.empty() || !allow_keys_file.empty();
  }
  // Checks the fields; the error is one line naming the flag.
  Expected<void, std::string> Validate() const;
};

}  // namespace derpkit::relay
