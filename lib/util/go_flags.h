// Go-style command lines for CLI11: Go's flag package (derper, Tailscale's stunc and netcheck)
// accepts -flag and --flag alike, and users of those programs write -hostname, -stun-port=3478,
// -timeout 2s. Pure string rewriting; no I/O.
#pragma once

#include <string>
#include <vector>

namespace derpkit {

// Returns argv[1..] rewritten for CLI11, which reads a single dash as a cluster of one-letter
// options: long names written with one dash get two ("-hostname" -> "--hostname"); "-a=x" (a
// one-letter name with '=') becomes "-a", "x"; negative numbers ("-1") and everything after "--"
// stay as they are. CLI11's App::parse(std::vector) wants the result reversed.
std::vector<std::string> NormalizeGoFlags(int argc, const char* const* argv);

}  // namespace derpkit
