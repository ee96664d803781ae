// The relay's long-term DERP key, kept in derper's key file format so that a relay can take over
// an existing derper's identity (clients pin nothing, but meshes and probes see the same key).
#pragma once

#include <string>

#include "lib/derp/keys.h"

namespace derpkit::relay {

struct LoadedKey {
  derp::PrivateKey key;
  bool created = false;
};

// Reads {"PrivateKey": "privkey:<hex>"} from `path`, or creates the file (and its directory)
// with a new key, mode 0600, when it does not exist. Throws std::runtime_error naming the path
// and the problem when the file exists but is unreadable or malformed: a bad key file must never
// be silently replaced.
LoadedKey LoadOrCreateKeyFile(const std::string& path);

}  // namespace derpkit::relay
