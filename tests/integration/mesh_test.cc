// Three relays of one region on loopback, meshed with a shared key: clients on different relays
// reach each other through ForwardPacket, PeerGone crosses the mesh, a restarted relay is
// re-meshed without restarting the others, and a wrong mesh key grants nothing.
#include <gtest/gtest.h>

#include <fstream>

#include "lib/util/netaddr.h"
#include "relay/metrics.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using derpclient::PeerGoneMessage;
using derpclient::PeerPresentMessage;
using derpclient::RecvPacketMessage;
using relay::CloseReason;
using relay::Registry;

constexpr std::string_view kMeshKey =
    "f27947d01a4a425499decacca04ffcef12104f2d8fc3815364acb6cf4392c805";

class Mesh : public ::testing::Test {
 protected:
  void SetUp() override {
    key_dir_ =
        std::filesystem::temp_directory_path() / ("derpkit-mesh-" + std::to_string(::getpid()));
    std::filesystem::create_directories(key_dir_);
    key_file_ = (key_dir_ / "mesh.key").string();
    std::ofstream(key_file_) << kMeshKey << "\n";
    for (int i = 0; i < 3; ++i) relays_[i] = Start(i, 0);
    for (int i = 0; i < 3; ++i) MeshWithOthers(i);
    ASSERT_TRUE(WaitUntil(
        [&] {
          for (auto& r : relays_) {
            for (auto& link : r->server().mesh_links()) {
              if (!link->stats().connected) return false;
            }
          }
          return true;
        },
        10000ms))
        << "every relay's links connected";
  }
  void TearDown() override {
    for (auto& r : relays_) r.reset();
    std::filesystem::remove_all(key_dir_);
  }

  std::unique_ptr<TestRelay> Start(int i, std::uint16_t port) {
    return std::make_unique<TestRelay>(
        TestRelayOptions{false, i == 0 ? 2 : 1, false, [this, port](relay::RelayConfig& c) {
                           c.mesh_psk_file = key_file_;
                           c.addr = "127.0.0.1:" + std::to_string(port);
                         }});
  }
  void MeshWithOthers(int i) {
    std::vector<std::string> others;
    for (int j = 0; j < 3; ++j) {
      if (j != i) others.push_back(relays_[j]->url());
    }
    relays_[i]->server().AddMeshPeers(others);
  }
  // Waits until relay i routes `key` the given way.
  bool WaitReach(int i, const derp::PublicKey& key, Registry::Reach want) {
    return WaitUntil([&] { return relays_[i]->server().registry().Lookup(key) == want; }, 10000ms);
  }
  std::unique_ptr<derpclient::Client> ConnectTo(int i, std::uint8_t seed) {
    auto opts = relays_[i]->ClientOptionsFor();
    opts.key = TestKey(seed);
    return ConnectClient(io_, opts);
  }

  std::filesystem::path key_dir_;
  std::string key_file_;
  std::array<std::unique_ptr<TestRelay>, 3> relays_;
  asio::io_context io_;
};

TEST_F(Mesh, ClientsOnDifferentRelaysReachEachOther) {
  auto a = ConnectTo(0, 1);
  auto b = ConnectTo(1, 2);
  auto c = ConnectTo(2, 3);
  ASSERT_TRUE(WaitReach(0, b->public_key(), Registry::Reach::kMesh));
  ASSERT_TRUE(WaitReach(0, c->public_key(), Registry::Reach::kMesh));
  ASSERT_TRUE(WaitReach(1, a->public_key(), Registry::Reach::kMesh));

  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("A to B"))));
  auto got_b = RecvUntil<RecvPacketMessage>(io_, *b);
  EXPECT_EQ(got_b.src, a->public_key());
  EXPECT_EQ(got_b.packet, Payload("A to B"));
  ASSERT_FALSE(Await(io_, a->SendPacket(c->public_key(), Payload("A to C"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *c).packet, Payload("A to C"));
  ASSERT_FALSE(Await(io_, c->SendPacket(a->public_key(), Payload("C to A"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *a).packet, Payload("C to A"));

  EXPECT_EQ(relays_[0]->stats().packets_forwarded_out, 2u);
  EXPECT_EQ(relays_[1]->stats().packets_forwarded_in, 1u);
  for (auto& link : relays_[0]->server().mesh_links()) EXPECT_TRUE(link->stats().connected);
}

TEST_F(Mesh, AnEntryForThisRelayItselfHasNoLinkAndNoSeries) {
  // One --mesh-with list for the whole region names every relay, this one included.
  relays_[0]->server().AddMeshPeers({relays_[0]->url()});
  const relay::MeshLink* self = nullptr;
  for (auto& link : relays_[0]->server().mesh_links()) {
    if (link->peer().url == relays_[0]->url()) self = link.get();
  }
  ASSERT_NE(self, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return self->stats().is_self.load(); }, 10000ms));
  EXPECT_FALSE(self->stats().connected);
  const std::string text = relay::RenderPrometheus(relays_[0]->server());
  EXPECT_EQ(text.find("peer=\"" + self->peer().name + "\""), std::string::npos) << text;
  EXPECT_NE(
      text.find("derp_mesh_link_up{peer=\"" + relays_[0]->server().mesh_links()[0]->peer().name),
      std::string::npos)
      << "the other links keep their series\n"
      << text;
}

TEST_F(Mesh, PeerGoneCrossesTheMesh) {
  auto a = ConnectTo(0, 1);
  auto b = ConnectTo(1, 2);
  ASSERT_TRUE(WaitReach(1, a->public_key(), Registry::Reach::kMesh));
  // a hears from b, so a must hear when b leaves the region.
  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("B to A"))));
  RecvUntil<RecvPacketMessage>(io_, *a);
  const auto b_key = b->public_key();
  b->Close();
  auto gone = RecvUntil<PeerGoneMessage>(io_, *a, 10000ms);
  EXPECT_EQ(gone.key, b_key);
  EXPECT_EQ(gone.reason, derp::PeerGoneReason::kDisconnected);
  EXPECT_TRUE(WaitReach(0, b_key, Registry::Reach::kNone));
}

TEST_F(Mesh, RestartedRelayIsReMeshedWithoutRestartingTheOthers) {
  auto a = ConnectTo(0, 1);
  const std::uint16_t b_port = relays_[1]->port();
  relays_[1].reset();  // B goes away
  relays_[1] = Start(1, b_port);
  MeshWithOthers(1);
  auto b = ConnectTo(1, 2);
  ASSERT_TRUE(WaitReach(0, b->public_key(), Registry::Reach::kMesh)) << "A redialled B";
  ASSERT_TRUE(WaitReach(1, a->public_key(), Registry::Reach::kMesh)) << "B dialled A";
  ASSERT_FALSE(Await(io_, a->SendPacket(b->public_key(), Payload("after restart"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *b).packet, Payload("after restart"));
  ASSERT_FALSE(Await(io_, b->SendPacket(a->public_key(), Payload("and back"))));
  EXPECT_EQ(RecvUntil<RecvPacketMessage>(io_, *a).packet, Payload("and back"));
  std::uint64_t reconnects = 0;
  for (auto& link : relays_[0]->server().mesh_links()) reconnects += link->stats().connects;
  EXPECT_GE(reconnects, 3u) << "A's link to B connected twice, A's link to C once";
}

TEST_F(Mesh, WatcherWithTheMeshKeySeesPresenceAndCanClosePeers) {
  auto a = ConnectTo(0, 1);
  auto opts = relays_[0]->ClientOptionsFor();
  opts.key = TestKey(50);
  opts.mesh_key = *derp::MeshKey::Parse(kMeshKey);
  auto watcher = ConnectClient(io_, opts);
  ASSERT_FALSE(Await(io_, watcher->WatchConns()));
  bool saw_a = false;
  for (int i = 0; i < 10 && !saw_a; ++i) {
    auto p = RecvUntil<PeerPresentMessage>(io_, *watcher);
    if (p.peer.key == a->public_key()) {
      saw_a = true;
      EXPECT_TRUE(p.peer.has_flags);
      EXPECT_EQ(p.peer.flags, derp::PeerPresentFlags::kIsRegular);
      EXPECT_NE(p.peer.port, 0u);
      EXPECT_EQ(netaddr::IpAddress::V6(p.peer.ip).Unmap().ToString(), "127.0.0.1");
    }
  }
  EXPECT_TRUE(saw_a);
  ASSERT_FALSE(Await(io_, watcher->ClosePeer(a->public_key())));
  EXPECT_FALSE(Await(io_, a->Recv(), 5000ms).has_value());
  EXPECT_TRUE(
      WaitUntil([&] { return relays_[0]->stats().closed(CloseReason::kClosedByMesh) == 1; }));
}

TEST_F(Mesh, WrongMeshKeyGrantsNothing) {
  auto victim = ConnectTo(0, 1);
  auto opts = relays_[0]->ClientOptionsFor();
  opts.key = TestKey(60);
  opts.mesh_key = *derp::MeshKey::Parse(std::string(64, 'a'));
  auto intruder = ConnectClient(io_, opts);
  ASSERT_FALSE(Await(io_, intruder->WatchConns()));
  EXPECT_FALSE(Await(io_, intruder->Recv()).has_value()) << "closed, no PeerPresent flood";
  auto forger = ConnectClient(io_, opts);
  ASSERT_FALSE(Await(
      io_, forger->ForwardPacket(TestKey(61).Public(), victim->public_key(), Payload("forged"))));
  EXPECT_FALSE(Await(io_, forger->Recv()).has_value());
  EXPECT_TRUE(WaitUntil([&] { return relays_[0]->stats().closed(CloseReason::kNotAllowed) == 2; }));
  EXPECT_EQ(relays_[0]->stats().packets_forwarded_in, 0u);
}

}  // namespace
}  // namespace derpkit::testing
