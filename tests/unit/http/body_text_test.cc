// HTML escaping (Go's html.EscapeString bytes) and the quoting of error answers in one line
// (lib/http/body_text.h).
#include "lib/http/body_text.h"

#include <gtest/gtest.h>

#include <string>

namespace derpkit::http {
namespace {

TEST(HtmlEscape, WritesGosEntitiesForTheFiveSpecialCharacters) {
  // The bytes Go's html.EscapeString writes (derper's pages, the relay's redirect body).
  EXPECT_EQ(HtmlEscape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&#34;x&#34;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("&amp;"), "&amp;amp;");  // not idempotent: escaping twice shows
  EXPECT_EQ(HtmlEscape(""), "");
}

TEST(HtmlEscape, LeavesEverythingElseByteForByte) {
  const std::string other = "derp-1a.test:443/derp?x=1 \u2192 \xff\x01\t\n";
  EXPECT_EQ(HtmlEscape(other), other);
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(HtmlEscape(with_nul), with_nul);
}

TEST(FirstLine, SkipsLeadingBlanksAndStopsAtTheLineEnd) {
  EXPECT_EQ(FirstLine("\r\n  \tnot found\r\nmore", 200), "not found");
  EXPECT_EQ(FirstLine("one\ntwo", 200), "one");
  EXPECT_EQ(FirstLine("no newline", 200), "no newline");
  EXPECT_EQ(FirstLine(" \r\n\t ", 200), "");
  EXPECT_EQ(FirstLine("", 200), "");
}

TEST(FirstLine, CutsAtMaxBytesButNeverInsideACharacter) {
  EXPECT_EQ(FirstLine("abcdef", 4), "abcd");
  EXPECT_EQ(FirstLine("abcd\nef", 4), "abcd");
  // "é" is two bytes (C3 A9): a cut after byte 2 would split it, so the line ends before it.
  EXPECT_EQ(FirstLine("a\u00e9b", 2), "a");
  EXPECT_EQ(FirstLine("a\u00e9b", 3), "a\u00e9");
  // "→" is three bytes: cuts at 1 and 2 bytes into it both back off to its start.
  EXPECT_EQ(FirstLine("x\u2192", 2), "x");
  EXPECT_EQ(FirstLine("x\u2192", 3), "x");
  EXPECT_EQ(FirstLine("x\u2192", 4), "x\u2192");
  EXPECT_EQ(FirstLine("abc", 0), "");
}

TEST(DescribeStatus, StatusReasonAndTheBodysFirstLine) {
  EXPECT_EQ(DescribeStatus(404, "no such map\n<html>", 200), "HTTP 404 Not Found: no such map");
  EXPECT_EQ(DescribeStatus(503, "", 200), "HTTP 503 Service Unavailable");
  EXPECT_EQ(DescribeStatus(599, "  \r\n", 200), "HTTP 599");  // no reason phrase, blank body
  EXPECT_EQ(DescribeStatus(400, "abcdef", 3), "HTTP 400 Bad Request: abc");
}

}  // namespace
}  // namespace derpkit::http
