// Parser of node key lists (see node_key_list.h). Pure; thread-safe.
#include "lib/derp/node_key_list.h"

#include <algorithm>
#include <unordered_set>

namespace derpkit::derp {
namespace {

constexpr std::string_view kNodeKeyPrefix = "nodekey:";
constexpr std::string_view kPrivateKeyPrefix = "privkey:";
constexpr std::string_view kBlank = " \t";

bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(kBlank);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlank) - first + 1);
}

}  // namespace

std::string Describe(const NodeKeyListError& e) {
  const std::string at = "line " + std::to_string(e.line) + ": ";
  switch (e.problem) {
    case NodeKeyListProblem::kTooLarge:
      return "the list is larger than " + std::to_string(kMaxNodeKeyListBytes) + " bytes";
    case NodeKeyListProblem::kNotText:
      return at + "contains a control character (is this a text file?)";
    case NodeKeyListProblem::kPrivateKey:
      return at +
             "this is a private key (privkey:...): list node public keys (nodekey:...) only, "
             "and treat that private key as leaked";
    case NodeKeyListProblem::kMissingPrefix:
      return at + "want nodekey: followed by 64 hex digits";
    case NodeKeyListProblem::kBadKey:
      return at + "want nodekey: followed by 64 hex digits (" + std::string(Describe(e.key_error)) +
             ")";
    case NodeKeyListProblem::kTrailingText:
      return at + "text after the key (a comment starts with #)";
  }
  return at + "unknown problem";
}

Expected<std::vector<PublicKey>, NodeKeyListError> ParseNodeKeyList(std::string_view text) {
  using Err = Unexpected<NodeKeyListError>;
  if (text.size() > kMaxNodeKeyListBytes) {
    return Err{NodeKeyListError{0, NodeKeyListProblem::kTooLarge, {}}};
  }
  std::vector<PublicKey> keys;
  std::unordered_set<PublicKey, PublicKeyHash> seen;
  std::size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const std::size_t newline = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(std::min(newline + 1, text.size()));
    if (line.ends_with('\r')) line.remove_suffix(1);
    const auto fail = [line_number](NodeKeyListProblem p, KeyError k = KeyError::kBadLength) {
      return Err{NodeKeyListError{line_number, p, k}};
    };
    // Control characters are refused even inside comments: they mean a binary or mangled file.
    if (std::any_of(line.begin(), line.end(), IsControl)) {
      return fail(NodeKeyListProblem::kNotText);
    }
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::size_t word_end = std::min(line.find_first_of(kBlank), line.size());
    const std::string_view word = line.substr(0, word_end);
    if (word.starts_with(kPrivateKeyPrefix)) return fail(NodeKeyListProblem::kPrivateKey);
    if (!word.starts_with(kNodeKeyPrefix)) return fail(NodeKeyListProblem::kMissingPrefix);
    auto key = PublicKey::FromText(word);
    if (!key) return fail(NodeKeyListProblem::kBadKey, key.error());
    if (word_end != line.size()) return fail(NodeKeyListProblem::kTrailingText);
    if (seen.insert(*key).second) keys.push_back(*key);
  }
  return keys;
}

}  // namespace derpkit::derp
