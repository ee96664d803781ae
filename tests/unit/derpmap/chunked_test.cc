// ChunkedDecoder: what Go's net/http server writes decodes at any split; every error has a case.
#include "lib/derpmap/chunked.h"

#include <gtest/gtest.h>

#include <string>

namespace derpkit::derpmap {
namespace {

struct Outcome {
  bool ok = false;
  ChunkedError error = ChunkedError::kBadChunkSize;
  std::size_t used = 0;
  bool done = false;
  std::string body;
};

Outcome Decode(std::string_view in, std::size_t max_body_bytes = 1 << 20) {
  ChunkedDecoder decoder(max_body_bytes);
  Outcome out;
  auto used = decoder.Feed(in, out.body);
  out.ok = used.has_value();
  if (used) out.used = *used;
  if (!used) out.error = used.error();
  out.done = decoder.done();
  return out;
}

ChunkedError ErrorOf(std::string_view in, std::size_t max_body_bytes = 1 << 20) {
  const Outcome o = Decode(in, max_body_bytes);
  EXPECT_FALSE(o.ok) << in;
  return o.error;
}

// Go's chunkedWriter: "<hex size>\r\n<data>\r\n" per Write, "0\r\n\r\n" at the end.
constexpr std::string_view kGoBody =
    "17\r\n{\"Regions\":{\"900\":{\"Reg\r\n"
    "e\r\nionID\":900}}}\n\r\n"
    "0\r\n\r\n";

TEST(ChunkedDecoder, DecodesWhatGoWrites) {
  const Outcome o = Decode(kGoBody);
  ASSERT_TRUE(o.ok);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.used, kGoBody.size());
  EXPECT_EQ(o.body, "{\"Regions\":{\"900\":{\"RegionID\":900}}}\n");
}

TEST(ChunkedDecoder, DecodesTheSameAtEverySplit) {
  for (std::size_t split = 0; split <= kGoBody.size(); ++split) {
    ChunkedDecoder decoder(1024);
    std::string body;
    auto first = decoder.Feed(kGoBody.substr(0, split), body);
    ASSERT_TRUE(first) << split;
    EXPECT_EQ(*first, split);
    EXPECT_EQ(decoder.done(), split == kGoBody.size()) << split;
    auto second = decoder.Feed(kGoBody.substr(split), body);
    ASSERT_TRUE(second) << split;
    EXPECT_TRUE(decoder.done());
    EXPECT_EQ(body, "{\"Regions\":{\"900\":{\"RegionID\":900}}}\n") << split;
  }
}

TEST(ChunkedDecoder, StopsAtTheEndOfTheBody) {
  const std::string in = std::string("3\r\nabc\r\n0\r\n\r\n") + "HTTP/1.1 200 OK\r\n";
  const Outcome o = Decode(in);
  ASSERT_TRUE(o.ok);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.used, in.find("HTTP/"));
  EXPECT_EQ(o.body, "abc");
}

TEST(ChunkedDecoder, AcceptsExtensionsUppercaseHexAndTrailers) {
  const Outcome o = Decode("A;name=value\r\n0123456789\r\n000 ; last\r\nExpires: never\r\n\r\n");
  ASSERT_TRUE(o.ok);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.body, "0123456789");
}

TEST(ChunkedDecoder, RefusesBadSizes) {
  EXPECT_EQ(ErrorOf("\r\n"), ChunkedError::kBadChunkSize);
  EXPECT_EQ(ErrorOf("g\r\n"), ChunkedError::kBadChunkSize);
  EXPECT_EQ(ErrorOf("-1\r\n"), ChunkedError::kBadChunkSize);
  EXPECT_EQ(ErrorOf("00000000000000001\r\n"), ChunkedError::kBadChunkSize);  // 17 digits
}

TEST(ChunkedDecoder, RefusesBadExtensions) {
  EXPECT_EQ(ErrorOf("5 x\r\n"), ChunkedError::kBadChunkExtension);
  EXPECT_EQ(ErrorOf("5;a\x01\r\n"), ChunkedError::kBadChunkExtension);
}

TEST(ChunkedDecoder, RefusesLinesWithoutCrlf) {
  EXPECT_EQ(ErrorOf("5\nhello\r\n"), ChunkedError::kMissingCrlf);
  EXPECT_EQ(ErrorOf("5\rhello\r\n"), ChunkedError::kMissingCrlf);
  EXPECT_EQ(ErrorOf("5\r\nhelloX\r\n"), ChunkedError::kMissingCrlf);
  EXPECT_EQ(ErrorOf("5\r\nhello\rX"), ChunkedError::kMissingCrlf);
  EXPECT_EQ(ErrorOf("0\r\n\n"), ChunkedError::kMissingCrlf);
}

TEST(ChunkedDecoder, RefusesOverlongLines) {
  EXPECT_EQ(ErrorOf("1;" + std::string(ChunkedDecoder::kMaxLineBytes, 'x')),
            ChunkedError::kLineTooLong);
  EXPECT_EQ(ErrorOf("0\r\nX: " + std::string(ChunkedDecoder::kMaxLineBytes, 'x')),
            ChunkedError::kLineTooLong);
}

TEST(ChunkedDecoder, RefusesBadTrailers) {
  EXPECT_EQ(ErrorOf("0\r\nno colon\r\n\r\n"), ChunkedError::kBadTrailer);
  EXPECT_EQ(ErrorOf("0\r\n: empty name\r\n\r\n"), ChunkedError::kBadTrailer);
  EXPECT_EQ(ErrorOf("0\r\nBad Name: x\r\n\r\n"), ChunkedError::kBadTrailer);
  std::string many = "0\r\n";
  for (std::size_t i = 0; i <= ChunkedDecoder::kMaxTrailerLines; ++i) many += "X: y\r\n";
  EXPECT_EQ(ErrorOf(many), ChunkedError::kBadTrailer);
}

TEST(ChunkedDecoder, RefusesAnOversizedChunkBeforeItsData) {
  // The size line alone is enough: no data follows, and the limit is 10.
  EXPECT_EQ(ErrorOf("b\r\n", 10), ChunkedError::kBodyTooLarge);
  EXPECT_EQ(ErrorOf("ffffffffffffffff\r\n", 10), ChunkedError::kBodyTooLarge);
  // The limit counts the whole body, over several chunks.
  EXPECT_EQ(ErrorOf("6\r\nabcdef\r\n5\r\n", 10), ChunkedError::kBodyTooLarge);
  const Outcome exact = Decode("6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", 10);
  ASSERT_TRUE(exact.ok);
  EXPECT_EQ(exact.body, "abcdefghij");
}

TEST(ChunkedDecoder, StaysFailedAfterAnError) {
  ChunkedDecoder decoder(100);
  std::string body;
  ASSERT_FALSE(decoder.Feed("x\r\n", body));
  auto again = decoder.Feed("0\r\n\r\n", body);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), ChunkedError::kBadChunkSize);
  EXPECT_FALSE(decoder.done());
}

TEST(ChunkedDecoder, DescribesEveryError) {
  for (auto e :
       {ChunkedError::kBadChunkSize, ChunkedError::kBadChunkExtension, ChunkedError::kMissingCrlf,
        ChunkedError::kLineTooLong, ChunkedError::kBadTrailer, ChunkedError::kBodyTooLarge}) {
    EXPECT_FALSE(Describe(e).empty());
  }
}

}  // namespace
}  // namespace derpkit::derpmap
