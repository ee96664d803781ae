// GoPcg (lib/util/go_pcg.h) against Go's own math/rand/v2 test vector, and Float64 over it.
#include "lib/util/go_pcg.h"

#include <gtest/gtest.h>

#include <array>

namespace derpkit {
namespace {

// Go's src/math/rand/v2/pcg_test.go, TestPCG: the first 20 values of NewPCG(1, 2).
constexpr std::array<std::uint64_t, 20> kGoNewPcg1And2 = {
    0xc4f5a58656eef510, 0x9dcec3ad077dec6c, 0xc8d04605312f8088, 0xcbedc0dcb63ac19a,
    0x3bf98798cae97950, 0x0a8c6d7f8d485abc, 0x7ffa3780429cd279, 0x730ad2626b1c2f8e,
    0x21ff2330f4a0ad99, 0x2f0901a1947094b0, 0xa9735a3cfbe36cef, 0x71ddb0a01a12c84a,
    0xf0e53e77a78453bb, 0x1f173e9663be1e9d, 0x657651da3ac4115e, 0xc8987376b65a157b,
    0xbb17008f5fca28e7, 0x8232bd645f29ed22, 0x12be8f07ad14c539, 0x54908a48e8e4736e};

TEST(GoPcg, MatchesGosTestPcgVector) {
  GoPcg pcg(1, 2);
  for (std::size_t i = 0; i < kGoNewPcg1And2.size(); ++i) {
    EXPECT_EQ(pcg.Uint64(), kGoNewPcg1And2[i]) << "value #" << i;
  }
}

TEST(GoPcg, Float64IsTheLow53BitsOverTwoToThe53) {
  // Rand.Float64 = float64(Uint64()<<11>>11) / (1<<53) over the same first value.
  GoPcg pcg(1, 2);
  const double want =
      static_cast<double>(kGoNewPcg1And2[0] & ((1ULL << 53) - 1)) / static_cast<double>(1ULL << 53);
  EXPECT_EQ(pcg.Float64(), want);
  for (int i = 0; i < 1000; ++i) {
    const double f = pcg.Float64();
    ASSERT_GE(f, 0.0);
    ASSERT_LT(f, 1.0);
  }
}

}  // namespace
}  // namespace derpkit
