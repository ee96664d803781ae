// Nearest-rank percentiles over a sample set, for latency reports.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace derpkit::bench {

// Returns the nearest-rank p-th percentile (0 < p <= 100) of `sorted`, which must be sorted
// ascending and non-empty: the smallest sample such that at least p% of samples are <= it. With
// 2000 samples p99.9 is the 1998th, i.e. the second largest; a reader should know that a p99.9
// from fewer than ~1000 samples is little more than the maximum.
template <typename T>
T NearestRankPercentile(const std::vector<T>& sorted, double p) {
  const double n = static_cast<double>(sorted.size());
  std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

}  // namespace derpkit::bench
