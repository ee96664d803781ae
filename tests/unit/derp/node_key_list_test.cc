// The --allow-keys-file parser: what it accepts, and a precise message for every problem.
#include "lib/derp/node_key_list.h"

#include <gtest/gtest.h>

#include <string>

namespace derpkit::derp {
namespace {

constexpr std::string_view kHexA =
    "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254";
constexpr std::string_view kHexB =
    "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f";

std::string Node(std::string_view hex) { return "nodekey:" + std::string(hex); }

std::string ErrorOf(std::string_view text) {
  auto keys = ParseNodeKeyList(text);
  if (keys) return "parsed " + std::to_string(keys->size()) + " keys";
  return Describe(keys.error());
}

TEST(NodeKeyList, ReadsKeysCommentsBlankLinesAndCrlfInFileOrder) {
  const std::string text = "# prober and laptops\n\n" + Node(kHexB) + "\r\n  \t" + Node(kHexA) +
                           "   # alice\n# the end, no newline after this";
  auto keys = ParseNodeKeyList(text);
  ASSERT_TRUE(keys) << Describe(keys.error());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].ToHex(), kHexB);
  EXPECT_EQ((*keys)[1].ToHex(), kHexA);
}

TEST(NodeKeyList, AcceptsUppercaseHexAndKeepsADuplicateOnce) {
  std::string upper(kHexA);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto keys = ParseNodeKeyList(Node(kHexA) + "\n" + Node(upper) + "\n");
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].ToHex(), kHexA);
}

TEST(NodeKeyList, AnEmptyOrCommentOnlyListHasNoKeys) {
  EXPECT_EQ(ErrorOf(""), "parsed 0 keys");
  EXPECT_EQ(ErrorOf("# nobody yet\n\n   \n"), "parsed 0 keys");
}

TEST(NodeKeyList, NamesTheLineAndTheProblem) {
  const std::string a = Node(kHexA) + "\n";
  EXPECT_EQ(ErrorOf(a + std::string(kHexB) + "\n"),
            "line 2: want nodekey: followed by 64 hex digits");
  EXPECT_EQ(ErrorOf(a + "mkey:" + std::string(kHexB) + "\n"),
            "line 2: want nodekey: followed by 64 hex digits");
  EXPECT_EQ(ErrorOf(a + "\n" + Node(kHexB.substr(1)) + "\n"),
            "line 3: want nodekey: followed by 64 hex digits (key text is not exactly 64 hex "
            "digits after its prefix)");
  EXPECT_EQ(ErrorOf(Node(std::string(kHexB.substr(1)) + "g")),
            "line 1: want nodekey: followed by 64 hex digits (key text contains a character that "
            "is not a hex digit)");
  EXPECT_EQ(ErrorOf(a + Node(kHexB) + " alice\n"),
            "line 2: text after the key (a comment starts with #)");
  EXPECT_EQ(ErrorOf(a + "privkey:" + std::string(kHexB) + "\n"),
            "line 2: this is a private key (privkey:...): list node public keys (nodekey:...) "
            "only, and treat that private key as leaked");
  EXPECT_EQ(ErrorOf(a + std::string("# a \0 comment\n", 14)),
            "line 2: contains a control character (is this a text file?)");
  EXPECT_EQ(ErrorOf(Node(kHexA) + "\rX\n"),
            "line 1: contains a control character (is this a text file?)");
}

TEST(NodeKeyList, RefusesAListOverTheSizeLimit) {
  const std::string big(kMaxNodeKeyListBytes + 1, '#');
  auto keys = ParseNodeKeyList(big);
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().problem, NodeKeyListProblem::kTooLarge);
  EXPECT_EQ(Describe(keys.error()), "the list is larger than 1048576 bytes");
  EXPECT_TRUE(ParseNodeKeyList(std::string(kMaxNodeKeyListBytes, '#')));
}

}  // namespace
}  // namespace derpkit::derp
