#include "lib/http/websocket_accept.h"

#include <string>

#include "gtest/gtest.h"
#include "lib/http/head.h"
#include "tests/unit/http/test_files.h"

namespace derpkit::http {
namespace {

using testing::ReadTestdata;

std::string Sha1Hex(std::string_view text) { return HexEncode(Sha1(AsBytes(text))); }

TEST(WebSocketAccept, MatchesRfc6455Example) {
  // RFC 6455 §1.3.
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketAccept, MatchesCapturedHandshake) {
  const std::string request = ReadTestdata("derp/websocket/W.c2s.bin");
  const std::string response = ReadTestdata("derp/websocket/W.s2c.bin");
  const auto req = ParseRequestHead(AsBytes(request));
  const auto resp = ParseResponseHead(AsBytes(response));
  ASSERT_TRUE(req.has_value());
  ASSERT_TRUE(resp.has_value());
  ASSERT_NE(req->Find("Sec-WebSocket-Key"), nullptr);
  ASSERT_NE(resp->Find("Sec-WebSocket-Accept"), nullptr);
  EXPECT_TRUE(IsValidWebSocketKey(*req->Find("Sec-WebSocket-Key")));
  EXPECT_EQ(WebSocketAccept(*req->Find("Sec-WebSocket-Key")), *resp->Find("Sec-WebSocket-Accept"));
  EXPECT_EQ(*resp->Find("Sec-WebSocket-Accept"), "Q0UfnoGYMunqhsbQ7mz5y273gh4=");
}

TEST(Sha1, MatchesFips180Examples) {
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(Sha1Hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST(Sha1, HandlesLengthsAroundThePaddingBoundary) {
  // 55 bytes leave room for the length in one block, 56 need a second; 64 and 120 likewise
  // around the next block. Expected values from Python's hashlib.
  EXPECT_EQ(Sha1Hex(std::string(55, 'a')), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  EXPECT_EQ(Sha1Hex(std::string(56, 'a')), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  EXPECT_EQ(Sha1Hex(std::string(63, 'a')), "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
  EXPECT_EQ(Sha1Hex(std::string(64, 'a')), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
  EXPECT_EQ(Sha1Hex(std::string(65, 'a')), "11655326c708d70319be2610e8a57d9a5b959d3b");
  EXPECT_EQ(Sha1Hex(std::string(119, 'a')), "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56");
  EXPECT_EQ(Sha1Hex(std::string(120, 'a')), "f34c1488385346a55709ba056ddd08280dd4c6d6");
}

TEST(Base64Encode, MatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(AsBytes("")), "");
  EXPECT_EQ(Base64Encode(AsBytes("f")), "Zg==");
  EXPECT_EQ(Base64Encode(AsBytes("fo")), "Zm8=");
  EXPECT_EQ(Base64Encode(AsBytes("foo")), "Zm9v");
  EXPECT_EQ(Base64Encode(AsBytes("foob")), "Zm9vYg==");
  EXPECT_EQ(Base64Encode(AsBytes("fooba")), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode(AsBytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(BytesFromHex("fbff")), "+/8=");
}

TEST(IsValidWebSocketKey, AcceptsOnlyBase64Of16Bytes) {
  EXPECT_TRUE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(IsValidWebSocketKey("5/dUm2Fi2KDkTBeHdvrgUg=="));
  EXPECT_FALSE(IsValidWebSocketKey(""));
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ==="));  // 25 characters
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=A"));   // bad padding
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZ!=="));   // not base64
  EXPECT_FALSE(IsValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQZm"));   // 18 bytes, unpadded
}

}  // namespace
}  // namespace derpkit::http
