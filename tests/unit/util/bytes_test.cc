#include "lib/util/bytes.h"

#include <gtest/gtest.h>

namespace derpkit {
namespace {

TEST(Bytes, BigEndianRoundTrips) {
  Bytes out;
  AppendBigEndian16(out, 0x1234);
  AppendBigEndian32(out, 0xdeadbeef);
  EXPECT_EQ(out, BytesFromHex("1234 deadbeef"));
  EXPECT_EQ(LoadBigEndian16(out), 0x1234);
  EXPECT_EQ(LoadBigEndian32(std::span(out).subspan(2)), 0xdeadbeefu);
  StoreBigEndian32(std::span(out).subspan(2), 0x01020304);
  StoreBigEndian16(out, 0xa0b0);
  EXPECT_EQ(out, BytesFromHex("a0b0 01020304"));
}

TEST(Hex, EncodesLowercaseAndDecodesEitherCase) {
  EXPECT_EQ(HexEncode(BytesFromHex("00ff10Ab")), "00ff10ab");
  EXPECT_EQ(HexDecode("00FF"), BytesFromHex("00ff"));
}

TEST(Hex, RejectsOddLengthAndBadDigits) {
  EXPECT_FALSE(HexDecode("abc"));
  EXPECT_FALSE(HexDecode("zz"));
  std::array<std::byte, 2> two{};
  EXPECT_FALSE(HexDecodeInto("001", two));
  EXPECT_FALSE(HexDecodeInto("0011aa", two));
  EXPECT_TRUE(HexDecodeInto("0a0b", two));
  EXPECT_EQ(two[1], std::byte{0x0b});
}

}  // namespace
}  // namespace derpkit
