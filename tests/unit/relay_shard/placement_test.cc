// Placement of talking pairs across shards (relay/placement.h): where a split pair meets, and
// when a shard hands a pair elsewhere. Pure functions: every case is figures in, a shard out.
#include "relay/placement.h"

#include <gtest/gtest.h>

#include <array>

namespace derpkit::relay {
namespace {

// Marks of round figures (the relay's defaults are 0.7 and 0.85 of a core).
const PlacementPolicy kMarks{500, 750};

ShardLoadView Shard(int index, int busy_permille, int connections = 10) {
  return ShardLoadView{index, connections, busy_permille};
}

TEST(MeetingShard, LightlyLoadedPairsGatherOnTheLowerIndexWhateverTheConnections) {
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 100, 50), Shard(1, 50, 2)), 0);
  EXPECT_EQ(MeetingShard(kMarks, Shard(3, 0), Shard(1, 0)), 1);
  EXPECT_EQ(MeetingShard(kMarks, Shard(1, 300), Shard(2, 199)), 1) << "499 of 500";
}

TEST(MeetingShard, BusyShardsMeetOnTheLessBusy) {
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 700), Shard(1, 300)), 1);
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 300), Shard(1, 700)), 0);
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 250), Shard(1, 250 + 151)), 0);
}

TEST(MeetingShard, AboutAsBusyShardsMeetOnTheOneWithFewerConnectionsThenTheLowerIndex) {
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 400, 12), Shard(1, 500, 11)), 1);
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 500, 11), Shard(1, 400, 12)), 0);
  EXPECT_EQ(MeetingShard(kMarks, Shard(0, 400, 11), Shard(1, 400, 11)), 0);
  EXPECT_EQ(MeetingShard(kMarks, Shard(2, 400, 11), Shard(1, 400, 11)), 1);
}

TEST(MeetingShard, BothMembersChooseTheSameShard) {
  // Each member passes its own shard first: the answer must not depend on the order.
  const std::array<std::array<int, 3>, 6> cases{
      {{0, 0, 0}, {100, 350, 4}, {300, 300, 0}, {600, 300, 1}, {400, 540, 7}, {1000, 1000, 0}}};
  for (const auto& [a_busy, b_busy, conns] : cases) {
    const ShardLoadView a = Shard(0, a_busy, 10);
    const ShardLoadView b = Shard(1, b_busy, 10 + conns);
    EXPECT_EQ(MeetingShard(kMarks, a, b), MeetingShard(kMarks, b, a))
        << a_busy << " / " << b_busy << " / +" << conns;
  }
}

TEST(MeetingShard, GatherBelowZeroNeverGathers) {
  const PlacementPolicy never{0, 750};
  EXPECT_EQ(MeetingShard(never, Shard(0, 0, 3), Shard(1, 0, 2)), 1) << "fewer connections";
}

TEST(ShedTarget, ABusyShardHandsAPairToTheLeastBusyOne) {
  const std::array<ShardLoadView, 3> all{Shard(0, 900), Shard(1, 500), Shard(2, 200)};
  EXPECT_EQ(ShedTarget(kMarks, all[0], all), 2);
}

TEST(ShedTarget, NotWhenTheOthersAreNearlyAsBusy) {
  // Spreading wants the other thread busier by less than a third of 750 (250) below this one.
  const std::array<ShardLoadView, 2> close{Shard(0, 900), Shard(1, 651)};
  EXPECT_EQ(ShedTarget(kMarks, close[0], close), -1);
  const std::array<ShardLoadView, 2> far{Shard(0, 900), Shard(1, 649)};
  EXPECT_EQ(ShedTarget(kMarks, far[0], far), 1);
}

TEST(ShedTarget, NotBelowTheSpreadMarkNorAboveTheGatherMark) {
  const std::array<ShardLoadView, 2> all{Shard(0, 750), Shard(1, 0)};
  EXPECT_EQ(ShedTarget(kMarks, all[0], all), -1) << "750 is not above 750";
  const std::array<ShardLoadView, 2> middle{Shard(0, 300), Shard(1, 200)};
  EXPECT_EQ(ShedTarget(kMarks, middle[1], middle), -1) << "500 together: stays";
}

TEST(ShedTarget, LightlyLoadedShardsGatherPairsOnTheLowestIndexThatHasRoom) {
  // Together below gather_below (500).
  const std::array<ShardLoadView, 3> all{Shard(0, 400), Shard(1, 250), Shard(2, 100)};
  EXPECT_EQ(ShedTarget(kMarks, all[2], all), 1) << "shard 0 with it would be 500";
  EXPECT_EQ(ShedTarget(kMarks, all[1], all), -1) << "650 with shard 0";
  EXPECT_EQ(ShedTarget(kMarks, all[0], all), -1) << "shard 0 has nowhere lower to go";
  const std::array<ShardLoadView, 2> two{Shard(0, 300), Shard(1, 199)};
  EXPECT_EQ(ShedTarget(kMarks, two[1], two), 0);
}

TEST(ShedTarget, GatheringNeverUndoesASpreadNorSpreadingAGather) {
  // A move takes a share of one thread's work to the other, so the two figures' sum stays. After
  // shard 0 spreads a pair to shard 1, shard 1 does not shed it back unless the share made it the
  // busier (one pair that carries most of the work; a shed pair waits kMoveCooldown for that);
  // after shard 1 gathers a pair onto shard 0, shard 0 does not spread it back.
  for (int a = 0; a <= 1000; a += 25) {
    for (int b = 0; b <= 1000; b += 25) {
      const std::array<ShardLoadView, 2> before{Shard(0, a), Shard(1, b)};
      for (int x = 0; x <= 1000; x += 25) {
        if (ShedTarget(kMarks, before[0], before) == 1 && x <= a && b + x <= 1000) {
          const std::array<ShardLoadView, 2> after{Shard(0, a - x), Shard(1, b + x)};
          if (a - x < b + x) continue;  // now the busier: spreading back is spreading
          EXPECT_NE(ShedTarget(kMarks, after[1], after), 0) << a << " / " << b << " - " << x;
        }
        const bool gathering = a + b < kMarks.gather_below_permille;
        if (gathering && ShedTarget(kMarks, before[1], before) == 0 && x <= b) {
          const std::array<ShardLoadView, 2> after{Shard(0, a + x), Shard(1, b - x)};
          EXPECT_NE(ShedTarget(kMarks, after[0], after), 1) << a << " / " << b << " + " << x;
        }
      }
    }
  }
}

}  // namespace
}  // namespace derpkit::relay
