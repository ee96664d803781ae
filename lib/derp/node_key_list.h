// A list of node public keys in a text file: derp-relay's --allow-keys-file, the clients a relay
// admits without asking tailscaled or an admission controller.
//
//   # the prober, and Alice's laptop
//   nodekey:8ad5f1c1c0b4e5f3b0f3f0a7d1c0e2b4a6c8e0f2a4c6e8f0a2c4e6f8a0c2e4f6
//   nodekey:0F3A...   # alice (hex digits in either case)
//
// One key per line, in the "nodekey:<64 hex>" form that `tailscale debug` and derp-relay's own
// refusal log lines print. Blank lines and everything from '#' to the end of a line are ignored;
// spaces and tabs around a key are too, and a line may end in CRLF. Anything else on a line is an
// error naming the line: a private key ("privkey:...") gets its own message, since pasting one
// there leaks it. A key listed twice is kept once.
//
// Pure: no I/O. Thread-safe (no state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lib/derp/keys.h"
#include "lib/util/expected.h"

namespace derpkit::derp {

// The largest list text accepted (about 14,000 keys): a bound for whoever reads the file.
inline constexpr std::size_t kMaxNodeKeyListBytes = 1024 * 1024;

enum class NodeKeyListProblem {
  kTooLarge,       // the text is longer than kMaxNodeKeyListBytes
  kNotText,        // a NUL or other control character (not tab, CR before LF)
  kPrivateKey,     // a "privkey:" line: a secret, never to be listed
  kMissingPrefix,  // a word that does not start with "nodekey:"
  kBadKey,         // "nodekey:" followed by something other than 64 hex digits
  kTrailingText,   // more after the key on the same line (not a '#' comment)
};

// Where and why a list was rejected.
struct NodeKeyListError {
  std::size_t line = 0;  // 1-based; 0 for kTooLarge
  NodeKeyListProblem problem = NodeKeyListProblem::kBadKey;
  KeyError key_error = KeyError::kBadLength;  // what was wrong with the key, for kBadKey
};

// Returns one line for the operator: "line 3: want nodekey: and 64 hex digits (bad hex digit)".
std::string Describe(const NodeKeyListError& e);

// Parses a list. The keys come back in file order, each once.
Expected<std::vector<PublicKey>, NodeKeyListError> ParseNodeKeyList(std::string_view text);

}  // namespace derpkit::derp
