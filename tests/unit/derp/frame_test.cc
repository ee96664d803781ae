#include "lib/derp/frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "tests/unit/derp/testdata.h"

namespace derpkit::derp {
namespace {

using testing::Hex;

constexpr std::uint32_t kLimit = kKeySize + kMaxPacketSize;

TEST(FrameHeader, ParsesSendPacket) {
  const auto hdr = ParseFrameHeader(Hex("04 00000400"), kLimit);
  ASSERT_TRUE(hdr.has_value());
  EXPECT_EQ(hdr->type, FrameType::kSendPacket);
  EXPECT_EQ(hdr->length, 1024u);
}

TEST(FrameHeader, KeepsUnknownTypesForTheCallerToSkip) {
  const auto hdr = ParseFrameHeader(Hex("7f 00000003 aabbcc"), kLimit);
  ASSERT_TRUE(hdr.has_value());
  EXPECT_EQ(static_cast<int>(hdr->type), 0x7f);
  EXPECT_EQ(FrameTypeName(hdr->type), "unknown");
  EXPECT_EQ(hdr->length, 3u);
}

TEST(FrameHeader, RejectsOversizedLengthBeforeReadingPayload) {
  const auto hdr = ParseFrameHeader(Hex("04 ffffffff"), kLimit);
  ASSERT_FALSE(hdr.has_value());
  EXPECT_EQ(hdr.error(), FrameError::kTooLarge);
}

TEST(FrameHeader, AcceptsLengthExactlyAtTheLimit) {
  const auto hdr = ParseFrameHeader(Hex("04 00010020"), kLimit);
  ASSERT_TRUE(hdr.has_value());
  EXPECT_EQ(hdr->length, kLimit);
  EXPECT_FALSE(ParseFrameHeader(Hex("04 00010021"), kLimit).has_value());
}

TEST(FrameHeader, ReportsShortInputUntilFiveBytesArrive) {
  const Bytes full = Hex("06 00000000");
  for (std::size_t n = 0; n < full.size(); ++n) {
    const auto hdr = ParseFrameHeader(ByteSpan(full).first(n), kLimit);
    ASSERT_FALSE(hdr.has_value());
    EXPECT_EQ(hdr.error(), FrameError::kShort);
  }
  EXPECT_TRUE(ParseFrameHeader(full, kLimit).has_value());
}

TEST(FrameHeader, AppendWritesExactWireBytes) {
  Bytes out;
  AppendFrameHeader(out, FrameType::kSendPacket, 1024);
  EXPECT_EQ(out, Hex("04 00000400"));
}

TEST(FrameHeader, StoreWritesExactWireBytes) {
  std::array<std::byte, kFrameHeaderSize> out{};
  StoreFrameHeader(out, FrameType::kRestarting, 0x01020304);
  EXPECT_EQ(Bytes(out.begin(), out.end()), Hex("15 01020304"));
}

TEST(FrameHeader, EveryErrorHasADistinctDescription) {
  EXPECT_NE(Describe(FrameError::kShort), Describe(FrameError::kTooLarge));
}

// Feeds `stream` into `reader` in pieces of `chunk` bytes and collects every frame.
std::vector<std::pair<FrameType, Bytes>> ReadAll(FrameReader& reader, ByteSpan stream,
                                                 std::size_t chunk) {
  std::vector<std::pair<FrameType, Bytes>> frames;
  while (!stream.empty()) {
    auto room = reader.PrepareWrite(chunk);
    const std::size_t n = std::min({room.size(), chunk, stream.size()});
    EXPECT_GT(n, 0u);
    std::memcpy(room.data(), stream.data(), n);
    reader.CommitWrite(n);
    stream = stream.subspan(n);
    for (;;) {
      auto frame = reader.Next();
      if (!frame) {
        EXPECT_EQ(frame.error(), FrameReader::Status::kNeedMore);
        break;
      }
      frames.emplace_back(frame->type, Bytes(frame->payload.begin(), frame->payload.end()));
    }
  }
  return frames;
}

TEST(FrameReader, CutsAStreamIntoFramesWhateverTheChunkSize) {
  const Bytes stream =
      Hex("06 00000000"
          "07 00000001 01"
          "12 00000008 0102030405060708"
          "7f 00000002 aabb");
  for (std::size_t chunk : {1, 2, 3, 5, 7, 13, 100}) {
    SCOPED_TRACE(chunk);
    FrameReader reader(kLimit);
    const auto frames = ReadAll(reader, stream, chunk);
    ASSERT_EQ(frames.size(), 4u);
    EXPECT_EQ(frames[0].first, FrameType::kKeepAlive);
    EXPECT_TRUE(frames[0].second.empty());
    EXPECT_EQ(frames[1].first, FrameType::kNotePreferred);
    EXPECT_EQ(frames[1].second, Hex("01"));
    EXPECT_EQ(frames[2].first, FrameType::kPing);
    EXPECT_EQ(frames[2].second, Hex("0102030405060708"));
    EXPECT_EQ(static_cast<int>(frames[3].first), 0x7f);
    EXPECT_EQ(frames[3].second, Hex("aabb"));
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(FrameReader, DrainsEveryBufferedFrameBeforeAskingForMore) {
  FrameReader reader(kLimit);
  const Bytes stream = Hex("06 00000000 06 00000000 07 000000");
  auto room = reader.PrepareWrite(stream.size());
  ASSERT_GE(room.size(), stream.size());
  std::memcpy(room.data(), stream.data(), stream.size());
  reader.CommitWrite(stream.size());
  EXPECT_TRUE(reader.Next().has_value());
  EXPECT_TRUE(reader.Next().has_value());
  auto partial = reader.Next();
  ASSERT_FALSE(partial.has_value());
  EXPECT_EQ(partial.error(), FrameReader::Status::kNeedMore);
  EXPECT_EQ(reader.buffered(), 4u);
}

TEST(FrameReader, ReportsTooLargeFromTheHeaderAloneAndStaysThere) {
  FrameReader reader(100);
  const Bytes header = Hex("04 00000065");  // 101 > 100
  auto room = reader.PrepareWrite(4096);
  ASSERT_GE(room.size(), header.size());
  EXPECT_LE(room.size(), kFrameHeaderSize + 100);
  std::memcpy(room.data(), header.data(), header.size());
  reader.CommitWrite(header.size());
  for (int i = 0; i < 2; ++i) {
    auto frame = reader.Next();
    ASSERT_FALSE(frame.has_value());
    EXPECT_EQ(frame.error(), FrameReader::Status::kTooLarge);
  }
}

TEST(FrameReader, NeverOffersRoomBeyondOneMaximalFrame) {
  FrameReader reader(10);
  auto room = reader.PrepareWrite(1 << 20);
  EXPECT_EQ(room.size(), kFrameHeaderSize + 10);
  // Fill it with a complete maximal frame: no room is left until Next() consumes it.
  const Bytes frame = Hex("14 0000000a 00112233445566778899");
  std::memcpy(room.data(), frame.data(), frame.size());
  reader.CommitWrite(frame.size());
  EXPECT_TRUE(reader.PrepareWrite(1).empty());
  auto got = reader.Next();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->type, FrameType::kHealth);
  EXPECT_EQ(reader.PrepareWrite(1).size(), kFrameHeaderSize + 10);
}

TEST(FrameReader, CompactsConsumedBytesToMakeRoomForTheRest) {
  FrameReader reader(10);
  // A full frame followed by the first 3 bytes of the next header.
  const Bytes first = Hex("14 00000005 0011223344 14 0000");
  auto room = reader.PrepareWrite(first.size());
  ASSERT_EQ(room.size(), first.size());
  std::memcpy(room.data(), first.data(), first.size());
  reader.CommitWrite(first.size());
  ASSERT_TRUE(reader.Next().has_value());
  ASSERT_FALSE(reader.Next().has_value());
  // The tail is full; asking for more must move the 3 buffered bytes to the front.
  const Bytes rest = Hex("000a 00112233445566778899");
  room = reader.PrepareWrite(rest.size());
  ASSERT_GE(room.size(), rest.size());
  std::memcpy(room.data(), rest.data(), rest.size());
  reader.CommitWrite(rest.size());
  auto frame = reader.Next();
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(Bytes(frame->payload.begin(), frame->payload.end()), Hex("00112233445566778899"));
}

TEST(FrameReader, ReadsAFullSizeSendPacketInSmallReads) {
  Bytes stream;
  AppendFrameHeader(stream, FrameType::kSendPacket, kLimit);
  for (std::uint32_t i = 0; i < kLimit; ++i) stream.push_back(static_cast<std::byte>(i * 7));
  FrameReader reader(kLimit);
  const auto frames = ReadAll(reader, stream, 4096);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].second, Bytes(stream.begin() + kFrameHeaderSize, stream.end()));
}

}  // namespace
}  // namespace derpkit::derp
