// A long-term DERP key in derper's key file format: the relay's server key (so a relay can take
// over an existing derper's identity: meshes and probes see the same key) and derp-probe's client
// key (--key-file, so relays that verify clients can allow it).
//
// Blocking file I/O at start-up, on the caller's thread.
#pragma once

#include <string>

#include "lib/derp/keys.h"

namespace derpkit::net {

struct LoadedKey {
  derp::PrivateKey key;
  bool created = false;
};

// Reads {"PrivateKey": "privkey:<hex>"} from `path`, or creates the file (and its directory)
// with a new key, mode 0600, when it does not exist. Throws std::runtime_error naming the path
// and the problem when the file exists but is unreadable or malformed: a bad key file must never
// be silently replaced.
LoadedKey LoadOrCreateKeyFile(const std::string& path);

}  // namespace derpkit::net
