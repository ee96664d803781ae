#include "lib/http/websocket.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/http/head.h"
#include "tests/unit/http/test_files.h"

namespace derpkit::http {
namespace {

using testing::ReadTestdata;

constexpr std::uint64_t kLimit = 1 << 20;

struct CapturedFrame {
  WsFrameHeader header;
  Bytes wire;     // header and payload exactly as captured
  Bytes payload;  // unmasked
};

// Splits the WebSocket part of a capture (what follows the HTTP head) into frames. Fails the
// test on a parse error or a truncated frame.
std::vector<CapturedFrame> SplitFrames(ByteSpan in, bool expect_masked) {
  std::vector<CapturedFrame> frames;
  while (!in.empty()) {
    const auto h = ParseWsFrameHeader(in, kLimit, expect_masked);
    if (!h.has_value()) {
      ADD_FAILURE() << Describe(h.error()) << " at frame " << frames.size();
      break;
    }
    const std::size_t total = h->header_size + static_cast<std::size_t>(h->payload_size);
    if (total > in.size()) {
      ADD_FAILURE() << "truncated frame " << frames.size();
      break;
    }
    CapturedFrame f{*h, Bytes(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(total)), {}};
    f.payload.assign(f.wire.begin() + static_cast<std::ptrdiff_t>(h->header_size), f.wire.end());
    if (h->masked) ApplyWsMask(f.payload, h->mask, 0);
    frames.push_back(std::move(f));
    in = in.subspan(total);
  }
  return frames;
}

// Returns the bytes of a capture after its HTTP head.
Bytes AfterHead(const std::string& capture, bool is_request) {
  const std::size_t head_size = is_request ? ParseRequestHead(AsBytes(capture))->head_size
                                           : ParseResponseHead(AsBytes(capture))->head_size;
  const ByteSpan all = AsBytes(capture);
  return Bytes(all.begin() + static_cast<std::ptrdiff_t>(head_size), all.end());
}

Bytes Encode(const WsFrameHeader& h, ByteSpan unmasked_payload) {
  Bytes out;
  AppendWsFrameHeader(out, h.fin, h.opcode, h.payload_size, h.masked ? &h.mask : nullptr);
  const std::size_t at = out.size();
  AppendBytes(out, unmasked_payload);
  if (h.masked) ApplyWsMask(std::span(out).subspan(at), h.mask, 0);
  return out;
}

Bytes Concat(const std::vector<CapturedFrame>& frames) {
  Bytes out;
  for (const auto& f : frames) AppendBytes(out, f.payload);
  return out;
}

WsError ErrorOf(const Bytes& in, bool expect_masked, std::uint64_t limit = kLimit) {
  const auto h = ParseWsFrameHeader(in, limit, expect_masked);
  EXPECT_FALSE(h.has_value()) << HexEncode(in);
  return h.has_value() ? WsError::kShort : h.error();
}

// ---------------------------------------------------------------------------------------------
// The Tailscale capture (derp/websocket, client W).

TEST(WsCapture, ClientFramesUnmaskToTheCapturedDerpStream) {
  const Bytes ws = AfterHead(ReadTestdata("derp/websocket/W.c2s.bin"), true);
  ASSERT_EQ(ws.size(), 565u - 345u);
  const std::vector<CapturedFrame> frames = SplitFrames(ws, /*expect_masked=*/true);
  ASSERT_EQ(frames.size(), 4u);
  const std::vector<std::uint64_t> sizes = {110, 6, 67, 13};
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_TRUE(frames[i].header.fin);
    EXPECT_EQ(frames[i].header.opcode, WsOpcode::kBinary);
    EXPECT_TRUE(frames[i].header.masked);
    EXPECT_EQ(frames[i].header.header_size, 6u);
    EXPECT_EQ(frames[i].header.payload_size, sizes[i]);
  }
  EXPECT_EQ(HexEncode(frames[0].header.mask), "7d6dabf9");
  EXPECT_EQ(HexEncode(frames[3].header.mask), "1cef895f");
  const std::string derp = ReadTestdata("derp/websocket/W.c2s.derp.bin");
  EXPECT_EQ(Concat(frames), Bytes(AsBytes(derp).begin(), AsBytes(derp).end()));
}

TEST(WsCapture, ServerFramesAreTheCapturedDerpStream) {
  const Bytes ws = AfterHead(ReadTestdata("derp/websocket/W.s2c.bin"), false);
  ASSERT_EQ(ws.size(), 350u - 159u);
  const std::vector<CapturedFrame> frames = SplitFrames(ws, /*expect_masked=*/false);
  ASSERT_EQ(frames.size(), 4u);
  const std::vector<std::uint64_t> sizes = {45, 58, 67, 13};
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_TRUE(frames[i].header.fin);
    EXPECT_EQ(frames[i].header.opcode, WsOpcode::kBinary);
    EXPECT_FALSE(frames[i].header.masked);
    EXPECT_EQ(frames[i].header.header_size, 2u);
    EXPECT_EQ(frames[i].header.payload_size, sizes[i]);
  }
  const std::string derp = ReadTestdata("derp/websocket/W.s2c.derp.bin");
  EXPECT_EQ(Concat(frames), Bytes(AsBytes(derp).begin(), AsBytes(derp).end()));
}

TEST(WsCapture, EveryCapturedFrameReEncodesByteForByte) {
  for (const bool client : {true, false}) {
    SCOPED_TRACE(client ? "client->server" : "server->client");
    const Bytes ws = AfterHead(
        ReadTestdata(client ? "derp/websocket/W.c2s.bin" : "derp/websocket/W.s2c.bin"), client);
    Bytes again;
    for (const CapturedFrame& f : SplitFrames(ws, client)) {
      const Bytes one = Encode(f.header, f.payload);
      EXPECT_EQ(one, f.wire);
      AppendBytes(again, one);
    }
    EXPECT_EQ(again, ws);
  }
}

TEST(WsCapture, EveryPrefixOfACapturedHeaderIsShort) {
  const Bytes ws = AfterHead(ReadTestdata("derp/websocket/W.c2s.bin"), true);
  for (std::size_t n = 0; n < 6; ++n) {
    const auto h = ParseWsFrameHeader(ByteSpan(ws).first(n), kLimit, true);
    ASSERT_FALSE(h.has_value()) << n;
    EXPECT_EQ(h.error(), WsError::kShort) << n;
  }
  EXPECT_TRUE(ParseWsFrameHeader(ByteSpan(ws).first(6), kLimit, true).has_value());
}

// ---------------------------------------------------------------------------------------------
// RFC 6455 §5.7 examples.

TEST(WsRfcExamples, ParsesAndWritesTheUnmaskedHello) {
  const Bytes wire = BytesFromHex("81 05 48 65 6c 6c 6f");
  const auto h = ParseWsFrameHeader(wire, kLimit, false);
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->fin);
  EXPECT_EQ(h->opcode, WsOpcode::kText);
  EXPECT_FALSE(h->masked);
  EXPECT_EQ(h->payload_size, 5u);
  EXPECT_EQ(h->header_size, 2u);
  EXPECT_EQ(AsText(ByteSpan(wire).subspan(2)), "Hello");
  EXPECT_EQ(Encode(*h, AsBytes("Hello")), wire);
}

TEST(WsRfcExamples, ParsesUnmasksAndWritesTheMaskedHello) {
  const Bytes wire = BytesFromHex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
  const auto h = ParseWsFrameHeader(wire, kLimit, true);
  ASSERT_TRUE(h.has_value());
  EXPECT_TRUE(h->masked);
  EXPECT_EQ(HexEncode(h->mask), "37fa213d");
  EXPECT_EQ(h->header_size, 6u);
  Bytes payload(wire.begin() + 6, wire.end());
  ApplyWsMask(payload, h->mask, 0);
  EXPECT_EQ(AsText(payload), "Hello");

  Bytes out;
  const WsMask mask = h->mask;
  AppendWsFrameHeader(out, true, WsOpcode::kText, 5, &mask);
  Bytes hello(AsBytes("Hello").begin(), AsBytes("Hello").end());
  ApplyWsMask(hello, mask, 0);
  AppendBytes(out, hello);
  EXPECT_EQ(out, wire);
}

TEST(WsRfcExamples, ParsesTheFragmentedUnmaskedHello) {
  const Bytes first = BytesFromHex("01 03 48 65 6c");
  const Bytes second = BytesFromHex("80 02 6c 6f");
  const auto h1 = ParseWsFrameHeader(first, kLimit, false);
  const auto h2 = ParseWsFrameHeader(second, kLimit, false);
  ASSERT_TRUE(h1.has_value());
  ASSERT_TRUE(h2.has_value());
  EXPECT_FALSE(h1->fin);
  EXPECT_EQ(h1->opcode, WsOpcode::kText);
  EXPECT_EQ(h1->payload_size, 3u);
  EXPECT_TRUE(h2->fin);
  EXPECT_EQ(h2->opcode, WsOpcode::kContinuation);
  EXPECT_EQ(h2->payload_size, 2u);
  EXPECT_EQ(Encode(*h1, AsBytes("Hel")), first);
  EXPECT_EQ(Encode(*h2, AsBytes("lo")), second);
}

TEST(WsRfcExamples, ParsesTheUnmaskedPingAndMaskedPong) {
  const Bytes ping = BytesFromHex("89 05 48 65 6c 6c 6f");
  const Bytes pong = BytesFromHex("8a 85 37 fa 21 3d 7f 9f 4d 51 58");
  const auto hp = ParseWsFrameHeader(ping, kLimit, false);
  const auto hq = ParseWsFrameHeader(pong, kLimit, true);
  ASSERT_TRUE(hp.has_value());
  ASSERT_TRUE(hq.has_value());
  EXPECT_EQ(hp->opcode, WsOpcode::kPing);
  EXPECT_EQ(hq->opcode, WsOpcode::kPong);
  EXPECT_TRUE(IsWsControl(hp->opcode));
  EXPECT_FALSE(IsWsControl(WsOpcode::kBinary));
  EXPECT_EQ(Encode(*hp, AsBytes("Hello")), ping);
  EXPECT_EQ(Encode(*hq, AsBytes("Hello")), pong);
}

TEST(WsRfcExamples, Writes256BytesWithThe16BitLength) {
  Bytes out;
  AppendWsFrameHeader(out, true, WsOpcode::kBinary, 256, nullptr);
  EXPECT_EQ(out, BytesFromHex("82 7e 01 00"));
  const auto h = ParseWsFrameHeader(out, kLimit, false);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->payload_size, 256u);
  EXPECT_EQ(h->header_size, 4u);
}

TEST(WsRfcExamples, Writes64KibWithThe64BitLength) {
  Bytes out;
  AppendWsFrameHeader(out, true, WsOpcode::kBinary, 65536, nullptr);
  EXPECT_EQ(out, BytesFromHex("82 7f 00 00 00 00 00 01 00 00"));
  const auto h = ParseWsFrameHeader(out, kLimit, false);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->payload_size, 65536u);
  EXPECT_EQ(h->header_size, 10u);
}

TEST(WsFrameHeader, UsesTheShortestLengthFormAtEachBoundary) {
  const WsMask mask = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  const struct {
    std::uint64_t size;
    const char* hex;
  } cases[] = {
      {0, "82 80 01020304"},
      {125, "82 fd 01020304"},
      {126, "82 fe 007e 01020304"},
      {65535, "82 fe ffff 01020304"},
      {65536, "82 ff 0000000000010000 01020304"},
      {(std::uint64_t{1} << 63) - 1, "82 ff 7fffffffffffffff 01020304"},
  };
  for (const auto& c : cases) {
    Bytes out;
    AppendWsFrameHeader(out, true, WsOpcode::kBinary, c.size, &mask);
    EXPECT_EQ(out, BytesFromHex(c.hex)) << c.size;
    const auto h = ParseWsFrameHeader(out, std::numeric_limits<std::uint64_t>::max(), true);
    ASSERT_TRUE(h.has_value()) << c.size;
    EXPECT_EQ(h->payload_size, c.size);
    EXPECT_EQ(h->header_size, out.size());
    EXPECT_EQ(h->mask, mask);
  }
}

TEST(WsFrameHeader, WritesFinClearForAFirstFragment) {
  Bytes out;
  AppendWsFrameHeader(out, false, WsOpcode::kBinary, 3, nullptr);
  AppendWsFrameHeader(out, true, WsOpcode::kContinuation, 0, nullptr);
  EXPECT_EQ(out, BytesFromHex("02 03 80 00"));
}

// ---------------------------------------------------------------------------------------------
// Every WsError.

TEST(WsFrameHeaderErrors, ShortWhenTheHeaderIsIncomplete) {
  EXPECT_EQ(ErrorOf(Bytes{}, false), WsError::kShort);
  EXPECT_EQ(ErrorOf(BytesFromHex("82"), false), WsError::kShort);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7e 01"), false), WsError::kShort);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7f 00 00 00 00 00 01 00"), false), WsError::kShort);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 85 37 fa 21"), true), WsError::kShort);
}

TEST(WsFrameHeaderErrors, RejectsEachReservedBit) {
  EXPECT_EQ(ErrorOf(BytesFromHex("c2 00"), false), WsError::kReservedBits);  // RSV1
  EXPECT_EQ(ErrorOf(BytesFromHex("a2 00"), false), WsError::kReservedBits);  // RSV2
  EXPECT_EQ(ErrorOf(BytesFromHex("92 00"), false), WsError::kReservedBits);  // RSV3
  EXPECT_EQ(ErrorOf(BytesFromHex("c2"), false), WsError::kShort);            // needs byte 2 first
}

TEST(WsFrameHeaderErrors, RejectsEveryReservedOpcode) {
  for (unsigned op : {3u, 4u, 5u, 6u, 7u, 0xbu, 0xcu, 0xdu, 0xeu, 0xfu}) {
    const Bytes in = {static_cast<std::byte>(0x80 | op), std::byte{0x00}};
    EXPECT_EQ(ErrorOf(in, false), WsError::kBadOpcode) << op;
  }
}

TEST(WsFrameHeaderErrors, RejectsControlFramesOver125Bytes) {
  EXPECT_EQ(ErrorOf(BytesFromHex("89 7e 00 7e"), false), WsError::kControlTooLong);
  EXPECT_EQ(ErrorOf(BytesFromHex("88 fe"), true), WsError::kControlTooLong);  // before the length
  EXPECT_TRUE(ParseWsFrameHeader(BytesFromHex("8a 7d"), kLimit, false).has_value());
}

TEST(WsFrameHeaderErrors, RejectsFragmentedControlFrames) {
  EXPECT_EQ(ErrorOf(BytesFromHex("09 00"), false), WsError::kControlFragmented);
  EXPECT_EQ(ErrorOf(BytesFromHex("08 00"), false), WsError::kControlFragmented);
}

TEST(WsFrameHeaderErrors, RejectsOversizedLengthBeforeReadingTheMask) {
  // Only the length bytes are there, no mask yet: the limit is still enforced.
  EXPECT_EQ(ErrorOf(BytesFromHex("82 fe 01 00"), true, 255), WsError::kTooLarge);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 ff 00 00 00 00 00 10 00 01"), true), WsError::kTooLarge);
  EXPECT_TRUE(ParseWsFrameHeader(BytesFromHex("82 7e 01 00"), 256, false).has_value());
}

TEST(WsFrameHeaderErrors, RejectsA64BitLengthWithTheTopBitSetWhateverTheLimit) {
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7f 80 00 00 00 00 00 00 00"), false,
                    std::numeric_limits<std::uint64_t>::max()),
            WsError::kTooLarge);
}

TEST(WsFrameHeaderErrors, RejectsNonMinimalLengths) {
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7e 00 7d"), false), WsError::kNonMinimalLength);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7e 00 00"), false), WsError::kNonMinimalLength);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7f 00 00 00 00 00 00 ff ff"), false),
            WsError::kNonMinimalLength);
  EXPECT_EQ(ErrorOf(BytesFromHex("82 7f 00 00 00 00 00 00 00 05"), false),
            WsError::kNonMinimalLength);
}

TEST(WsFrameHeaderErrors, ServerSideRequiresMaskedFrames) {
  EXPECT_EQ(ErrorOf(BytesFromHex("82 05"), true), WsError::kMaskRequired);
  EXPECT_EQ(ErrorOf(BytesFromHex("89 00"), true), WsError::kMaskRequired);
}

TEST(WsFrameHeaderErrors, ClientSideForbidsMaskedFrames) {
  EXPECT_EQ(ErrorOf(BytesFromHex("82 85 37 fa 21 3d"), false), WsError::kMaskForbidden);
}

TEST(WsErrors, EveryErrorHasADistinctDescription) {
  const WsError all[] = {WsError::kShort,
                         WsError::kReservedBits,
                         WsError::kBadOpcode,
                         WsError::kControlTooLong,
                         WsError::kControlFragmented,
                         WsError::kTooLarge,
                         WsError::kNonMinimalLength,
                         WsError::kMaskRequired,
                         WsError::kMaskForbidden,
                         WsError::kBadClosePayload};
  std::vector<std::string_view> seen;
  for (WsError e : all) {
    const std::string_view d = Describe(e);
    EXPECT_FALSE(d.empty());
    EXPECT_NE(d, "unknown WebSocket error");
    EXPECT_EQ(std::count(seen.begin(), seen.end(), d), 0) << d;
    seen.push_back(d);
  }
}

// ---------------------------------------------------------------------------------------------
// Masking.

TEST(WsMask, MatchesTheBytewiseDefinitionForEveryLengthAndOffset) {
  const WsMask mask = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};
  for (std::size_t size = 0; size <= 40; ++size) {
    for (std::uint64_t offset = 0; offset < 8; ++offset) {
      Bytes data(size);
      for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<std::byte>(i * 7 + 1);
      Bytes expected = data;
      for (std::size_t i = 0; i < size; ++i) expected[i] ^= mask[(offset + i) % 4];
      ApplyWsMask(data, mask, offset);
      EXPECT_EQ(data, expected) << size << " @" << offset;
    }
  }
}

TEST(WsMask, UnmaskingInPiecesEqualsUnmaskingAtOnce) {
  const Bytes frame = BytesFromHex(
      "82ee7d6dabf97f6dabf91442b7771b0f1dea6eedd7784fd9465c07f422794c35c4f1b6919d6d7762652c6aab3cb6"
      "a10a87de5f31ae93a678ee03b12722a051dda5ee317a7dffb2a0a7dd96c770e7ceaf86df1ee5671f627edaccd397"
      "67f04b98cf16526a2f521dcaaad035907a0860da63f2bdbc");
  const WsMask mask = {std::byte{0x7d}, std::byte{0x6d}, std::byte{0xab}, std::byte{0xf9}};
  Bytes whole(frame.begin() + 6, frame.end());
  ApplyWsMask(whole, mask, 0);
  // The first captured frame carries the ClientInfo DERP frame, the first 110 stream bytes.
  const std::string derp = ReadTestdata("derp/websocket/W.c2s.derp.bin");
  EXPECT_EQ(whole, Bytes(AsBytes(derp).begin(), AsBytes(derp).begin() + 110));
  for (std::size_t split : {1u, 3u, 5u, 9u, 17u, 64u, 109u}) {
    Bytes pieces(frame.begin() + 6, frame.end());
    ApplyWsMask(std::span(pieces).first(split), mask, 0);
    ApplyWsMask(std::span(pieces).subspan(split), mask, split);
    EXPECT_EQ(pieces, whole) << split;
  }
}

// ---------------------------------------------------------------------------------------------
// Close payloads.

TEST(WsClosePayload, WritesNormalClosureWithReason) {
  Bytes out;
  AppendWsClose(out, kWsCloseNormal, "bye", nullptr);
  EXPECT_EQ(out, BytesFromHex("88 05 03 e8 62 79 65"));
  const auto c = ParseWsClosePayload(ByteSpan(out).subspan(2));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->code, kWsCloseNormal);
  EXPECT_EQ(c->reason, "bye");
}

TEST(WsClosePayload, WritesAMaskedClose) {
  const WsMask mask = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};
  Bytes out;
  AppendWsClose(out, kWsCloseProtocolError, "", &mask);
  // 03 ea ^ 37 fa = 34 10
  EXPECT_EQ(out, BytesFromHex("88 82 37 fa 21 3d 34 10"));
}

TEST(WsClosePayload, NoStatusMeansAnEmptyPayloadBothWays) {
  Bytes out;
  AppendWsClose(out, kWsCloseNoStatus, "ignored", nullptr);
  EXPECT_EQ(out, BytesFromHex("88 00"));
  const auto c = ParseWsClosePayload({});
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->code, kWsCloseNoStatus);
  EXPECT_EQ(c->reason, "");
}

TEST(WsClosePayload, CutsAnOverlongReasonToFitAControlFrame) {
  Bytes out;
  AppendWsClose(out, kWsCloseGoingAway, std::string(200, 'x'), nullptr);
  ASSERT_EQ(out.size(), 2u + 125u);
  EXPECT_EQ(out[1], std::byte{125});
  const auto h = ParseWsFrameHeader(out, kLimit, false);
  ASSERT_TRUE(h.has_value());
  const auto c = ParseWsClosePayload(ByteSpan(out).subspan(2));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->reason, std::string(kWsMaxCloseReasonSize, 'x'));
}

TEST(WsClosePayload, AcceptsTheCodesAllowedOnTheWire) {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                             3000, 3999, 4000, 4999}) {
    Bytes payload;
    AppendBigEndian16(payload, code);
    const auto c = ParseWsClosePayload(payload);
    ASSERT_TRUE(c.has_value()) << code;
    EXPECT_EQ(c->code, code);
  }
}

TEST(WsClosePayload, RejectsOneByteAndForbiddenCodes) {
  EXPECT_EQ(ParseWsClosePayload(BytesFromHex("03")).error(), WsError::kBadClosePayload);
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    Bytes payload;
    AppendBigEndian16(payload, code);
    const auto c = ParseWsClosePayload(payload);
    ASSERT_FALSE(c.has_value()) << code;
    EXPECT_EQ(c.error(), WsError::kBadClosePayload) << code;
  }
}

TEST(WsClosePayload, AcceptsUtf8ReasonsAndRejectsMalformedOnes) {
  // "é" (2 bytes), "€" (3 bytes), U+1F511 (4 bytes), U+10FFFF (the last code point).
  for (const char* ok : {"03e8c3a9", "03e8e282ac", "03e8f09f9491", "03e8f48fbfbf", "03e8"}) {
    EXPECT_TRUE(ParseWsClosePayload(BytesFromHex(ok)).has_value()) << ok;
  }
  for (const char* bad : {
           "03e8c080",      // overlong NUL
           "03e8e08080",    // overlong 3-byte
           "03e8f0808080",  // overlong 4-byte
           "03e8eda080",    // surrogate U+D800
           "03e8f4908080",  // above U+10FFFF
           "03e8ff",        // never valid
           "03e880",        // lone continuation byte
           "03e8e282",      // truncated sequence
           "03e8c3",        // truncated at the end
           "03e8c341",      // continuation byte missing
       }) {
    const auto c = ParseWsClosePayload(BytesFromHex(bad));
    ASSERT_FALSE(c.has_value()) << bad;
    EXPECT_EQ(c.error(), WsError::kBadClosePayload) << bad;
  }
}

TEST(WsClosePayload, RejectsAPayloadOverTheControlLimit) {
  const Bytes payload(126, std::byte{'a'});
  EXPECT_EQ(ParseWsClosePayload(payload).error(), WsError::kControlTooLong);
}

}  // namespace
}  // namespace derpkit::http
