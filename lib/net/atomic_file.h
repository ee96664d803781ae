// Writing a file so that readers never see half of it: a temporary file beside it, fsync, rename.
// Used for certificates and keys (lib/net/certs), and for the Prometheus textfiles netcheck and
// derp-probe write for node_exporter's textfile collector, which may read at any moment.
//
// Blocking file I/O on the caller's thread. Safe from several threads for different paths; two
// processes may write the same path (the temporary name carries the pid).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace derpkit::net {

// Writes `contents` to `<path>.tmp.<pid>` with exactly `mode` (umask notwithstanding), fsyncs it
// and renames it over `path`. Returns an error message naming the file and the failing step
// ("cannot create /x/y.prom.tmp.42: No such file or directory"), or nullopt on success. On
// failure the temporary file is removed and `path` is untouched.
std::optional<std::string> WriteFileAtomically(const std::string& path, const std::string& contents,
                                               mode_t mode = 0644);

}  // namespace derpkit::net
