#include "relay/placement.h"

#include <cstdlib>

namespace derpkit::relay {

int MeetingShard(const PlacementPolicy& policy, const ShardLoadView& a, const ShardLoadView& b) {
  const ShardLoadView& lower = a.index < b.index ? a : b;
  const ShardLoadView& upper = a.index < b.index ? b : a;
  if (a.busy_permille + b.busy_permille < policy.gather_below_permille) return lower.index;
  if (std::abs(a.busy_permille - b.busy_permille) > PlacementPolicy::kSameBusyPermille) {
    return a.busy_permille < b.busy_permille ? a.index : b.index;
  }
  return upper.connections < lower.connections ? upper.index : lower.index;
}

bool Spreading(const PlacementPolicy& policy, const ShardLoadView& here) {
  return here.busy_permille > policy.spread_above_permille;
}

int ShedTarget(const PlacementPolicy& policy, const ShardLoadView& here,
               std::span<const ShardLoadView> all) {
  if (Spreading(policy, here)) {
    const ShardLoadView* least = nullptr;
    for (const ShardLoadView& s : all) {
      if (s.index == here.index) continue;
      if (least == nullptr || s.busy_permille < least->busy_permille) least = &s;
    }
    if (least != nullptr &&
        least->busy_permille < here.busy_permille - policy.spread_above_permille / 3) {
      return least->index;
    }
    return -1;
  }
  for (const ShardLoadView& s : all) {
    if (s.index >= here.index) break;
    if (s.busy_permille + here.busy_permille < policy.gather_below_permille) return s.index;
  }
  return -1;
}

}  // namespace derpkit::relay
