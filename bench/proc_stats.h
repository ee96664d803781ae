// What the load generators read about a process from /proc: CPU time, resident memory, open file
// descriptors and the open-file limit. Linux only; every function returns a human-readable error
// (which file, and why) instead of a sentinel, because a benchmark that silently reports 0 CPU
// seconds is worse than one that stops.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "lib/util/expected.h"

namespace derpkit::bench {

// User + system CPU time of a process, from /proc/<pid>/stat fields 14 and 15 (clock ticks).
struct CpuTimes {
  double user_seconds = 0;
  double system_seconds = 0;
  double total() const { return user_seconds + system_seconds; }
};
Expected<CpuTimes, std::string> ReadCpuTimes(pid_t pid);

// VmRSS from /proc/<pid>/status, in bytes.
Expected<std::uint64_t, std::string> ReadRssBytes(pid_t pid);

// Number of entries in /proc/<pid>/fd (needs the same user as the process).
Expected<std::uint64_t, std::string> CountOpenFiles(pid_t pid);

// The soft and hard "Max open files" of a process, from /proc/<pid>/limits. "unlimited" reads
// as UINT64_MAX.
struct FileLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};
Expected<FileLimit, std::string> ReadOpenFileLimit(pid_t pid);

// Returns an error unless /proc/<pid> exists (the process is alive and visible).
Expected<void, std::string> CheckProcess(pid_t pid);

// The calling process's own CPU time (getrusage, finer than clock ticks).
CpuTimes SelfCpuTimes();

}  // namespace derpkit::bench
