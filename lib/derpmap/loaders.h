// The three ways lib/derpmap fetches a map's text: a file, an http(s) URL, tailscaled's LocalAPI.
// Internal to lib/derpmap (source.cc picks one per source); each returns the document's text or
// a MapError naming the source and what failed.
//
// Blocking, bounded by LoadOptions (timeout, max_bytes). Call from a thread that may block.
#pragma once

#include <string>

#include "lib/derpmap/derpmap.h"
#include "lib/derpmap/source.h"
#include "lib/util/expected.h"

namespace derpkit::derpmap::detail {

// Reads the file at `path`; errors name `label` (what the user wrote: a path or a file:// URL).
Expected<std::string, MapError> ReadMapFile(const std::string& path, const std::string& label,
                                            const LoadOptions& options);

// GETs an http:// or https:// URL with cpp-httplib, following up to kMaxRedirects redirects
// (never from https to http), and returns the 200 response's body.
inline constexpr int kMaxRedirects = 5;
Expected<std::string, MapError> FetchMapUrl(const std::string& url, const LoadOptions& options);

// GETs /localapi/v0/derpmap from tailscaled over its unix socket (options.socket_path) and returns
// the 200 response's body. Errors have the source "local".
Expected<std::string, MapError> FetchLocalMap(const LoadOptions& options);

}  // namespace derpkit::derpmap::detail
