#include "lib/derp/messages.h"

#include <gtest/gtest.h>

#include <set>

#include "lib/derp/frame.h"
#include "tests/unit/derp/testdata.h"

namespace derpkit::derp {
namespace {

using testing::Hex;

const PublicKey kServer =
    *PublicKey::FromHex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f");
const PublicKey kClient =
    *PublicKey::FromHex("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254");

// Returns the payload of a whole frame after checking its header.
ByteSpan PayloadOf(const Bytes& frame, FrameType want) {
  auto hdr = ParseFrameHeader(frame, kMaxInfoSize);
  EXPECT_TRUE(hdr.has_value());
  if (!hdr) return {};
  EXPECT_EQ(hdr->type, want);
  EXPECT_EQ(hdr->length + kFrameHeaderSize, frame.size());
  return ByteSpan(frame).subspan(kFrameHeaderSize);
}

Bytes ToBytes(ByteSpan s) { return Bytes(s.begin(), s.end()); }

// ---- §14.2 vectors, both directions ----

TEST(ServerKey, SpecVectorBothWays) {
  const Bytes wire =
      Hex("01 00000028 44455250f09f9491"
          "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f");
  Bytes out;
  AppendServerKey(out, kServer);
  EXPECT_EQ(out, wire);
  auto key = ParseServerKey(PayloadOf(wire, FrameType::kServerKey));
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, kServer);
}

TEST(ServerKey, ToleratesTrailingBytes) {
  Bytes payload = Hex("44455250f09f9491");
  AppendBytes(payload, kServer.bytes);
  payload.push_back(std::byte{0xee});
  auto key = ParseServerKey(payload);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, kServer);
}

TEST(ServerKey, RejectsShortPayload) {
  Bytes payload = Hex("44455250f09f9491");
  AppendBytes(payload, ByteSpan(kServer.bytes).first(31));
  auto key = ParseServerKey(payload);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error(), MessageError::kTooShort);
}

TEST(ServerKey, RejectsWrongMagic) {
  Bytes payload = Hex("44455250f09f9492");
  AppendBytes(payload, kServer.bytes);
  auto key = ParseServerKey(payload);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error(), MessageError::kBadMagic);
}

TEST(SendPacket, SpecVectorBothWays) {
  const Bytes wire = Hex(
      "04 00000025 8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f 68656c6c6f");
  Bytes out;
  AppendSendPacket(out, kServer, AsBytes("hello"));
  EXPECT_EQ(out, wire);
  auto view = ParseSendPacket(PayloadOf(wire, FrameType::kSendPacket));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->dst, kServer);
  EXPECT_EQ(AsText(view->packet), "hello");
}

TEST(SendPacket, AcceptsEmptyAndMaximalPackets) {
  Bytes payload(kKeySize);
  auto empty = ParseSendPacket(payload);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->packet.empty());
  payload.resize(kKeySize + kMaxPacketSize);
  auto full = ParseSendPacket(payload);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->packet.size(), kMaxPacketSize);
}

TEST(SendPacket, RejectsPayloadWithoutAWholeKey) {
  auto view = ParseSendPacket(Bytes(kKeySize - 1));
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error(), MessageError::kTooShort);
}

TEST(SendPacket, RejectsPacketOverSixtyFourKiB) {
  auto view = ParseSendPacket(Bytes(kKeySize + kMaxPacketSize + 1));
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error(), MessageError::kTooLong);
}

TEST(RecvPacket, SpecVectorBothWays) {
  const Bytes wire = Hex(
      "05 00000025 358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254 68656c6c6f");
  Bytes out;
  AppendRecvPacket(out, kClient, AsBytes("hello"));
  EXPECT_EQ(out, wire);
  auto view = ParseRecvPacket(PayloadOf(wire, FrameType::kRecvPacket));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->src, kClient);
  EXPECT_EQ(AsText(view->packet), "hello");
}

TEST(RecvPacket, RejectsPayloadWithoutAWholeKey) {
  auto view = ParseRecvPacket(Bytes(31));
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error(), MessageError::kTooShort);
}

TEST(ForwardPacket, RoundTripsWithExactLayout) {
  Bytes out;
  AppendForwardPacket(out, kClient, kServer, AsBytes("hi"));
  Bytes want = Hex("0a 00000042");
  AppendBytes(want, kClient.bytes);
  AppendBytes(want, kServer.bytes);
  AppendBytes(want, AsBytes("hi"));
  EXPECT_EQ(out, want);
  auto view = ParseForwardPacket(PayloadOf(out, FrameType::kForwardPacket));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->src, kClient);
  EXPECT_EQ(view->dst, kServer);
  EXPECT_EQ(AsText(view->packet), "hi");
}

TEST(ForwardPacket, RejectsPayloadWithoutTwoKeys) {
  auto view = ParseForwardPacket(Bytes(2 * kKeySize - 1));
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error(), MessageError::kTooShort);
}

TEST(ForwardPacket, RejectsPacketOverSixtyFourKiB) {
  EXPECT_TRUE(ParseForwardPacket(Bytes(2 * kKeySize + kMaxPacketSize)).has_value());
  auto view = ParseForwardPacket(Bytes(2 * kKeySize + kMaxPacketSize + 1));
  ASSERT_FALSE(view.has_value());
  EXPECT_EQ(view.error(), MessageError::kTooLong);
}

TEST(KeepAlive, SpecVector) {
  Bytes out;
  AppendKeepAlive(out);
  EXPECT_EQ(out, Hex("06 00000000"));
}

TEST(NotePreferred, SpecVectorBothWays) {
  Bytes out;
  AppendNotePreferred(out, true);
  EXPECT_EQ(out, Hex("07 00000001 01"));
  auto preferred = ParseNotePreferred(PayloadOf(out, FrameType::kNotePreferred));
  ASSERT_TRUE(preferred.has_value());
  EXPECT_TRUE(*preferred);
  out.clear();
  AppendNotePreferred(out, false);
  EXPECT_EQ(out, Hex("07 00000001 00"));
  EXPECT_FALSE(*ParseNotePreferred(Hex("00")));
}

TEST(NotePreferred, ReadsAnyNonZeroByteAsPreferredLikeTheGoServer) {
  EXPECT_TRUE(*ParseNotePreferred(Hex("02")));
}

TEST(NotePreferred, RejectsAnythingButExactlyOneByte) {
  auto empty = ParseNotePreferred({});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error(), MessageError::kTooShort);
  auto two = ParseNotePreferred(Hex("0101"));
  ASSERT_FALSE(two.has_value());
  EXPECT_EQ(two.error(), MessageError::kTooLong);
}

TEST(PingPong, SpecVectorsBothWays) {
  const PingData data = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                         std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  Bytes ping;
  AppendPing(ping, data);
  EXPECT_EQ(ping, Hex("12 00000008 0102030405060708"));
  Bytes pong;
  AppendPong(pong, data);
  EXPECT_EQ(pong, Hex("13 00000008 0102030405060708"));
  auto got_ping = ParsePing(PayloadOf(ping, FrameType::kPing));
  ASSERT_TRUE(got_ping.has_value());
  EXPECT_EQ(*got_ping, data);
  auto got_pong = ParsePong(PayloadOf(pong, FrameType::kPong));
  ASSERT_TRUE(got_pong.has_value());
  EXPECT_EQ(*got_pong, data);
}

TEST(PingPong, PingReturnsFirstEightOfUpToAThousandBytes) {
  Bytes payload = Hex("0102030405060708");
  payload.resize(kMaxPingPayloadSize, std::byte{0xff});
  auto data = ParsePing(payload);
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(ToBytes(*data), Hex("0102030405060708"));
  payload.push_back(std::byte{0});
  auto too_long = ParsePing(payload);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_EQ(too_long.error(), MessageError::kTooLong);
}

TEST(PingPong, RejectsFewerThanEightBytes) {
  auto ping = ParsePing(Hex("01020304050607"));
  ASSERT_FALSE(ping.has_value());
  EXPECT_EQ(ping.error(), MessageError::kTooShort);
  auto pong = ParsePong(Hex("01020304050607"));
  ASSERT_FALSE(pong.has_value());
  EXPECT_EQ(pong.error(), MessageError::kTooShort);
}

TEST(PingPong, PongIgnoresTrailingBytes) {
  auto pong = ParsePong(Hex("0102030405060708 090a"));
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(ToBytes(*pong), Hex("0102030405060708"));
}

TEST(PeerGone, SpecVectorBothWays) {
  const Bytes wire =
      Hex("08 00000021 358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254 01");
  Bytes out;
  AppendPeerGone(out, kClient, PeerGoneReason::kNotHere);
  EXPECT_EQ(out, wire);
  auto gone = ParsePeerGone(PayloadOf(wire, FrameType::kPeerGone));
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->key, kClient);
  EXPECT_EQ(gone->reason, PeerGoneReason::kNotHere);
  Bytes from_struct;
  AppendPeerGone(from_struct, *gone);
  EXPECT_EQ(from_struct, wire);
}

TEST(PeerGone, OldThirtyTwoByteFormMeansDisconnected) {
  auto gone = ParsePeerGone(kClient.bytes);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->key, kClient);
  EXPECT_EQ(gone->reason, PeerGoneReason::kDisconnected);
}

TEST(PeerGone, KeepsUnknownReasonAsRawValueAndIgnoresTrailingBytes) {
  Bytes payload(kClient.bytes.begin(), kClient.bytes.end());
  payload.push_back(std::byte{0x7e});
  payload.push_back(std::byte{0x00});
  auto gone = ParsePeerGone(payload);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(static_cast<int>(gone->reason), 0x7e);
}

TEST(PeerGone, RejectsPayloadWithoutAWholeKey) {
  auto gone = ParsePeerGone(Bytes(31));
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error(), MessageError::kTooShort);
}

TEST(PeerPresent, SpecVectorBothWays) {
  const Bytes wire =
      Hex("09 00000033 358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"
          "00000000000000000000ffffc0000201 3039 01");
  PeerPresent peer;
  peer.key = kClient;
  const Bytes ip = Hex("00000000000000000000ffffc0000201");
  std::copy(ip.begin(), ip.end(), peer.ip.begin());
  peer.port = 12345;
  peer.flags = PeerPresentFlags::kIsRegular;
  Bytes out;
  AppendPeerPresent(out, peer);
  EXPECT_EQ(out, wire);
  auto got = ParsePeerPresent(PayloadOf(wire, FrameType::kPeerPresent));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->key, kClient);
  EXPECT_EQ(ToBytes(got->ip), ip);
  EXPECT_EQ(got->port, 12345);
  EXPECT_EQ(got->flags, PeerPresentFlags::kIsRegular);
  EXPECT_TRUE(got->has_endpoint);
  EXPECT_TRUE(got->has_flags);
}

TEST(PeerPresent, AcceptsKeyOnlyAndNoFlagsFormsOfOlderServers) {
  auto key_only = ParsePeerPresent(kClient.bytes);
  ASSERT_TRUE(key_only.has_value());
  EXPECT_EQ(key_only->key, kClient);
  EXPECT_FALSE(key_only->has_endpoint);
  EXPECT_FALSE(key_only->has_flags);

  Bytes fifty(kClient.bytes.begin(), kClient.bytes.end());
  AppendBytes(fifty, Hex("00000000000000000000ffffc0000201 3039"));
  auto no_flags = ParsePeerPresent(fifty);
  ASSERT_TRUE(no_flags.has_value());
  EXPECT_TRUE(no_flags->has_endpoint);
  EXPECT_FALSE(no_flags->has_flags);
  EXPECT_EQ(no_flags->port, 12345);
  EXPECT_EQ(no_flags->flags, 0);
}

TEST(PeerPresent, IgnoresBytesBeyondFiftyOne) {
  Bytes payload(kClient.bytes.begin(), kClient.bytes.end());
  AppendBytes(payload, Hex("00000000000000000000ffffc0000201 3039 0a ffff"));
  auto got = ParsePeerPresent(payload);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->flags, PeerPresentFlags::kIsMeshPeer | PeerPresentFlags::kNotIdeal);
}

TEST(PeerPresent, RejectsPayloadWithoutAWholeKey) {
  auto got = ParsePeerPresent(Bytes(31));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), MessageError::kTooShort);
}

TEST(PeerPresent, RejectsCutOffEndpoint) {
  for (std::size_t n : {33, 40, 49}) {
    auto got = ParsePeerPresent(Bytes(n));
    ASSERT_FALSE(got.has_value()) << n;
    EXPECT_EQ(got.error(), MessageError::kBadValue);
  }
}

TEST(WatchConns, SpecVectorBothWays) {
  Bytes out;
  AppendWatchConns(out);
  EXPECT_EQ(out, Hex("10 00000000"));
  EXPECT_TRUE(ParseWatchConns(PayloadOf(out, FrameType::kWatchConns)).has_value());
}

TEST(WatchConns, RejectsAnyPayload) {
  auto got = ParseWatchConns(Hex("00"));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), MessageError::kTooLong);
}

TEST(ClosePeer, RoundTripsWithExactLayout) {
  Bytes out;
  AppendClosePeer(out, kClient);
  Bytes want = Hex("11 00000020");
  AppendBytes(want, kClient.bytes);
  EXPECT_EQ(out, want);
  auto key = ParseClosePeer(PayloadOf(out, FrameType::kClosePeer));
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, kClient);
}

TEST(ClosePeer, RejectsAnythingButExactlyOneKey) {
  auto short_key = ParseClosePeer(Bytes(31));
  ASSERT_FALSE(short_key.has_value());
  EXPECT_EQ(short_key.error(), MessageError::kTooShort);
  auto long_key = ParseClosePeer(Bytes(33));
  ASSERT_FALSE(long_key.has_value());
  EXPECT_EQ(long_key.error(), MessageError::kTooLong);
}

TEST(Health, RoundTripsTextAndEmptyMeansHealthy) {
  Bytes out;
  AppendHealth(out, "disk full");
  EXPECT_EQ(out, Hex("14 00000009 6469736b2066756c6c"));
  EXPECT_EQ(ParseHealth(PayloadOf(out, FrameType::kHealth)), "disk full");
  out.clear();
  AppendHealth(out, "");
  EXPECT_EQ(out, Hex("14 00000000"));
  EXPECT_EQ(ParseHealth({}), "");
}

TEST(Restarting, SpecVectorBothWays) {
  const Bytes wire = Hex("15 00000008 000001f4 00001388");
  Bytes out;
  AppendRestarting(out, Restarting{500, 5000});
  EXPECT_EQ(out, wire);
  auto got = ParseRestarting(PayloadOf(wire, FrameType::kRestarting));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->reconnect_in_ms, 500u);
  EXPECT_EQ(got->try_for_ms, 5000u);
  EXPECT_EQ(got->reconnect_in(), std::chrono::milliseconds{500});
  EXPECT_EQ(got->try_for(), std::chrono::seconds{5});
}

TEST(Restarting, IgnoresTrailingBytesAndRejectsShortPayload) {
  EXPECT_TRUE(ParseRestarting(Hex("000001f4 00001388 00")).has_value());
  auto got = ParseRestarting(Hex("000001f4 000013"));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error(), MessageError::kTooShort);
}

TEST(Disco, RecognisesMagicOnlyInPacketsOfAtLeastSixtyTwoBytes) {
  Bytes packet = Hex("5453f09f92ac");
  packet.resize(kDiscoMinPacketSize - 1);
  EXPECT_FALSE(IsDiscoPacket(packet));
  packet.push_back(std::byte{0});
  EXPECT_TRUE(IsDiscoPacket(packet));
  packet[5] = std::byte{0xad};
  EXPECT_FALSE(IsDiscoPacket(packet));
  EXPECT_FALSE(IsDiscoPacket({}));
}

TEST(Messages, EveryErrorHasADistinctDescription) {
  std::set<std::string_view> seen;
  for (auto e : {MessageError::kTooShort, MessageError::kTooLong, MessageError::kBadMagic,
                 MessageError::kBadValue}) {
    EXPECT_TRUE(seen.insert(Describe(e)).second);
  }
}

}  // namespace
}  // namespace derpkit::derp
