// Loading DERP maps from where operators keep them: a file (tailcfg JSON or Headscale YAML), an
// http(s):// URL, or "local" (tailscaled's LocalAPI on its unix socket). Several sources merge in
// order, as Headscale merges derp.urls and derp.paths.
//
// Blocking: every call here does I/O and returns when done or timed out. Call it from a thread
// that may block (a tool's main thread, or a worker), never from an event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "lib/derpmap/derpmap.h"
#include "lib/util/expected.h"

namespace derpkit::derpmap {

// tailscaled's LocalAPI socket on Linux.
inline constexpr const char* kDefaultTailscaledSocket = "/var/run/tailscale/tailscaled.sock";
// Tailscale's public DERP map.
inline constexpr const char* kTailscaleDefaultMapUrl =
    "https://controlplane.tailscale.com/derpmap/default";

struct LoadOptions {
  std::string socket_path = kDefaultTailscaledSocket;  // for "local"
  std::chrono::milliseconds timeout{10000};            // per source: connect + transfer
  std::size_t max_bytes = 4 * 1024 * 1024;             // a larger body is refused
  std::string ca_file;                                 // PEM trust anchors for https; "" = system
};

// Reads one source: "local", "http://…", "https://…", "file:///abs/path" or a plain path. The
// format comes from the content (JSON when it starts with '{'). Errors name the source and say
// what failed (connection refused, HTTP status, size limit, parse error with the field path).
// Each region is checked with Validate's rules, in the source's own spelling; that node names are
// unique across regions is left to LoadMap, since a later source may replace a region.
Expected<MapDocument, MapError> LoadDocument(const std::string& source, const LoadOptions& options);

// Loads every source in order, merges them (MergeInto) and validates the result; a duplicate
// node name is reported against the later source, naming the earlier one. A merged map with no
// regions is refused too: no tool can do anything with it.
Expected<DerpMap, MapError> LoadMap(const std::vector<std::string>& sources,
                                    const LoadOptions& options);

}  // namespace derpkit::derpmap
