#include "lib/derp/protocol.h"

#include <gtest/gtest.h>

#include "lib/util/bytes.h"

namespace derpkit::derp {
namespace {

TEST(Protocol, MagicIsDerpAndKeyEmojiInUtf8) { EXPECT_EQ(AsText(kMagic), "DERP\xf0\x9f\x94\x91"); }

TEST(Protocol, DiscoMagicIsTsAndSpeechBalloonInUtf8) {
  EXPECT_EQ(AsText(kDiscoMagic), "TS\xf0\x9f\x92\xac");
  EXPECT_EQ(kDiscoMinPacketSize, 62u);
}

TEST(Protocol, FrameTypeNamesFollowTheSpec) {
  EXPECT_EQ(FrameTypeName(FrameType::kSendPacket), "SendPacket");
  EXPECT_EQ(FrameTypeName(FrameType::kForwardPacket), "ForwardPacket");
  EXPECT_EQ(FrameTypeName(FrameType::kRestarting), "Restarting");
  EXPECT_EQ(FrameTypeName(static_cast<FrameType>(0x0b)), "unknown");
  EXPECT_EQ(FrameTypeName(static_cast<FrameType>(0x16)), "unknown");
  EXPECT_EQ(FrameTypeName(static_cast<FrameType>(0x00)), "unknown");
}

TEST(Protocol, ExactlyTheSixteenAssignedTypesAreKnown) {
  int known = 0;
  for (int t = 0; t < 256; ++t) {
    if (IsKnownFrameType(static_cast<FrameType>(t))) ++known;
  }
  EXPECT_EQ(known, 16);
}

TEST(Protocol, ServerPayloadLimitsMatchTheReferenceServer) {
  constexpr std::uint32_t kCap = 12345;
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kSendPacket, kCap), 65568u);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kForwardPacket, kCap), 65600u);
  // After the handshake derper skips a second ClientInfo and any Pong, whatever their length.
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kClientInfo, kCap), kCap);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kNotePreferred, kCap), 1u);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kWatchConns, kCap), 0u);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kClosePeer, kCap), 32u);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kPing, kCap), 1000u);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kPong, kCap), kCap);
  EXPECT_EQ(MaxServerPayloadSize(FrameType::kRecvPacket, kCap), kCap);
  EXPECT_EQ(MaxServerPayloadSize(static_cast<FrameType>(0x42), kCap), kCap);

  EXPECT_EQ(MinServerPayloadSize(FrameType::kSendPacket), 32u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kForwardPacket), 64u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kClientInfo), 0u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kPong), 0u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kNotePreferred), 1u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kWatchConns), 0u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kClosePeer), 32u);
  EXPECT_EQ(MinServerPayloadSize(FrameType::kPing), 8u);
  EXPECT_EQ(MinServerPayloadSize(static_cast<FrameType>(0x42)), 0u);
}

TEST(Protocol, KeepAliveStaysWellUnderTheClientReadTimeout) {
  EXPECT_LT(kKeepAliveInterval + kKeepAliveJitterMax, std::chrono::seconds{120});
}

}  // namespace
}  // namespace derpkit::derp
