// Go's math/rand/v2 PCG source (NewPCG(seed1, seed2): a 128-bit LCG with the DXSM output
// function) and Rand.Float64 over it, bit for bit, so that a decision Go code derives from a
// seeded PCG (derper's /bootstrap-dns rollout, derp-protocol.md §3.7) comes out the same here.
// Checked against Go's own TestPCG values (tests/unit/relay_limits/go_pcg_test.cc).
//
// Pure: no state beyond the 128-bit value.
#pragma once

#include <cstdint>

namespace derpkit {

class GoPcg {
 public:
  // NewPCG(seed1, seed2): seed1 is the high 64 bits of the state, seed2 the low.
  GoPcg(std::uint64_t seed1, std::uint64_t seed2) : hi_(seed1), lo_(seed2) {}

  // PCG.Uint64: advance state = state * mul + inc (mod 2^128), then DXSM of the new state.
  std::uint64_t Uint64() {
    __extension__ using U128 = unsigned __int128;
    constexpr std::uint64_t kMulHi = 2549297995355413924ULL;
    constexpr std::uint64_t kMulLo = 4865540595714422341ULL;
    constexpr std::uint64_t kIncHi = 6364136223846793005ULL;
    constexpr std::uint64_t kIncLo = 1442695040888963407ULL;
    const U128 state = (static_cast<U128>(hi_) << 64) | lo_;
    const U128 mul = (static_cast<U128>(kMulHi) << 64) | kMulLo;
    const U128 inc = (static_cast<U128>(kIncHi) << 64) | kIncLo;
    const U128 next = state * mul + inc;
    hi_ = static_cast<std::uint64_t>(next >> 64);
    lo_ = static_cast<std::uint64_t>(next);

    constexpr std::uint64_t kCheapMul = 0xda942042e4dd58b5ULL;
    std::uint64_t hi = hi_;
    hi ^= hi >> 32;
    hi *= kCheapMul;
    hi ^= hi >> 48;
    hi *= (lo_ | 1);
    return hi;
  }

  // Rand.Float64: the low 53 bits of one Uint64, divided by 2^53; in [0, 1).
  double Float64() {
    return static_cast<double>(Uint64() << 11 >> 11) / static_cast<double>(1ULL << 53);
  }

 private:
  std::uint64_t hi_;
  std::uint64_t lo_;
};

}  // namespace derpkit
