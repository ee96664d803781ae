// The CPU time the calling thread has used, for a shard's busy figure (relay/placement.h) and
// derp_shard_cpu_seconds_total. CLOCK_THREAD_CPUTIME_ID is a system call (the vDSO does not
// serve it), so the shard ticker reads it once per period, never per packet.
//
// Thread affinity: any thread; it reads its own clock.
#pragma once

#include <time.h>

#include <chrono>

namespace derpkit::relay {

inline std::chrono::nanoseconds ThisThreadCpuTime() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return std::chrono::nanoseconds{0};
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace derpkit::relay
