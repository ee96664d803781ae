#include "bench/proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

namespace derpkit::bench {
namespace {

std::string ProcPath(pid_t pid, const char* leaf) {
  return "/proc/" + std::to_string(pid) + "/" + leaf;
}

Expected<std::string, std::string> Slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Unexpected{path + ": " + std::strerror(errno)};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Expected<std::uint64_t, std::string> ParseCount(const std::string& word, const std::string& what) {
  if (word == "unlimited") return std::numeric_limits<std::uint64_t>::max();
  try {
    std::size_t used = 0;
    const unsigned long long v = std::stoull(word, &used);
    if (used == word.size()) return static_cast<std::uint64_t>(v);
  } catch (const std::exception&) {
  }
  return Unexpected{what + ": not a number: \"" + word + "\""};
}

}  // namespace

Expected<CpuTimes, std::string> ReadCpuTimes(pid_t pid) {
  const std::string path = ProcPath(pid, "stat");
  auto text = Slurp(path);
  if (!text) return Unexpected{text.error()};
  // Field 2 (comm) is in parentheses and may hold spaces: count fields after its last ')'.
  const auto close = text->rfind(')');
  if (close == std::string::npos) return Unexpected{path + ": no ')' after the command name"};
  std::istringstream rest(text->substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  for (std::string w; rest >> w && fields.size() < 13;) fields.push_back(w);
  if (fields.size() < 13) return Unexpected{path + ": fewer than 15 fields"};
  auto utime = ParseCount(fields[11], path + " utime");
  if (!utime) return Unexpected{utime.error()};
  auto stime = ParseCount(fields[12], path + " stime");
  if (!stime) return Unexpected{stime.error()};
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return CpuTimes{static_cast<double>(*utime) / ticks, static_cast<double>(*stime) / ticks};
}

Expected<std::uint64_t, std::string> ReadRssBytes(pid_t pid) {
  const std::string path = ProcPath(pid, "status");
  auto text = Slurp(path);
  if (!text) return Unexpected{text.error()};
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream words(line.substr(6));
    std::string value, unit;
    words >> value >> unit;
    auto kib = ParseCount(value, path + " VmRSS");
    if (!kib) return Unexpected{kib.error()};
    if (unit != "kB") return Unexpected{path + ": VmRSS in unexpected unit \"" + unit + "\""};
    return *kib * 1024;
  }
  return Unexpected{path + ": no VmRSS line (a zombie or kernel thread?)"};
}

Expected<std::uint64_t, std::string> CountOpenFiles(pid_t pid) {
  const std::string path = ProcPath(pid, "fd");
  std::error_code ec;
  std::filesystem::directory_iterator it(path, ec);
  if (ec) return Unexpected{path + ": " + ec.message()};
  std::uint64_t n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return Unexpected{path + ": " + ec.message()};
    ++n;
  }
  return n;
}

Expected<FileLimit, std::string> ReadOpenFileLimit(pid_t pid) {
  const std::string path = ProcPath(pid, "limits");
  auto text = Slurp(path);
  if (!text) return Unexpected{text.error()};
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream words(line.substr(std::strlen("Max open files")));
    std::string soft, hard;
    words >> soft >> hard;
    auto s = ParseCount(soft, path + " soft limit");
    if (!s) return Unexpected{s.error()};
    auto h = ParseCount(hard, path + " hard limit");
    if (!h) return Unexpected{h.error()};
    return FileLimit{*s, *h};
  }
  return Unexpected{path + ": no \"Max open files\" line"};
}

Expected<void, std::string> CheckProcess(pid_t pid) {
  if (pid <= 0) return Unexpected{"pid " + std::to_string(pid) + " is not a process id"};
  std::error_code ec;
  if (!std::filesystem::exists(ProcPath(pid, "stat"), ec)) {
    return Unexpected{"no process " + std::to_string(pid) + " (/proc/" + std::to_string(pid) +
                      "/stat is missing)"};
  }
  return {};
}

CpuTimes SelfCpuTimes() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return CpuTimes{seconds(ru.ru_utime), seconds(ru.ru_stime)};
}

}  // namespace derpkit::bench
