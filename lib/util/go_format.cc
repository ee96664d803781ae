// Go's duration and time spellings (see go_format.h). Pure; no thread affinity.
#include "lib/util/go_format.h"

#include <cstdint>
#include <cstdio>
#include <ctime>

namespace derpkit {
namespace {

// Writes v / 10^prec with the fraction's trailing zeros (and a bare '.') dropped, as Go's fmtFrac
// and fmtInt do together.
std::string FormatFraction(std::uint64_t v, int prec) {
  std::string frac;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    const auto digit = static_cast<char>('0' + v % 10);
    print = print || digit != '0';
    if (print) frac.insert(frac.begin(), digit);
    v /= 10;
  }
  std::string out = std::to_string(v);
  if (print) out += "." + frac;
  return out;
}

}  // namespace

std::string GoDurationString(std::chrono::nanoseconds d) {
  const std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  const bool negative = ns < 0;
  // The magnitude of INT64_MIN does not fit an int64; compute it unsigned.
  const std::uint64_t u =
      negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  std::string out;
  if (u < 1'000'000'000ULL) {
    if (u < 1'000ULL) {
      out = std::to_string(u) + "ns";
    } else if (u < 1'000'000ULL) {
      out = FormatFraction(u, 3) + "\u00b5s";  // Go writes the micro sign U+00B5
    } else {
      out = FormatFraction(u, 6) + "ms";
    }
  } else {
    const std::uint64_t total_seconds = u / 1'000'000'000ULL;
    const std::uint64_t nanos = u % 1'000'000'000ULL;
    std::string seconds = FormatFraction(total_seconds % 60 * 1'000'000'000ULL + nanos, 9) + "s";
    const std::uint64_t minutes_total = total_seconds / 60;
    if (minutes_total == 0) {
      out = seconds;
    } else {
      const std::uint64_t hours = minutes_total / 60;
      const std::string minutes = std::to_string(minutes_total % 60) + "m";
      out = hours > 0 ? std::to_string(hours) + "h" + minutes + seconds : minutes + seconds;
    }
  }
  return negative ? "-" + out : out;
}

std::chrono::nanoseconds GoRound(std::chrono::nanoseconds d, std::chrono::nanoseconds m) {
  if (m.count() <= 0) return d;
  std::int64_t r = d.count() % m.count();
  if (d.count() < 0) {
    r = -r;
    if (r + r < m.count()) return d + std::chrono::nanoseconds(r);
    return d + std::chrono::nanoseconds(r) - m;
  }
  if (r + r < m.count()) return d - std::chrono::nanoseconds(r);
  return d + m - std::chrono::nanoseconds(r);
}

std::string GoRfc3339Nano(std::chrono::system_clock::time_point t, long utc_offset_seconds) {
  using namespace std::chrono;
  const auto since_epoch = duration_cast<nanoseconds>(t.time_since_epoch());
  auto secs = duration_cast<seconds>(since_epoch);
  auto frac = since_epoch - secs;
  if (frac.count() < 0) {  // times before 1970: keep the fraction positive
    secs -= seconds(1);
    frac += seconds(1);
  }
  const std::time_t shifted = static_cast<std::time_t>(secs.count() + utc_offset_seconds);
  std::tm tm{};
  gmtime_r(&shifted, &tm);
  char date[80];
  std::snprintf(date, sizeof date, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out = date;
  if (frac.count() != 0) {
    char digits[16];
    std::snprintf(digits, sizeof digits, "%09lld", static_cast<long long>(frac.count()));
    std::string f = digits;
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  if (utc_offset_seconds == 0) return out + "Z";
  const long abs_offset = utc_offset_seconds < 0 ? -utc_offset_seconds : utc_offset_seconds;
  char zone[48];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", utc_offset_seconds < 0 ? '-' : '+',
                abs_offset / 3600, abs_offset / 60 % 60);
  return out + zone;
}

std::string PadRunes(std::string_view s, std::size_t width, bool left_align) {
  std::size_t runes = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++runes;  // not a continuation byte
  }
  if (runes >= width) return std::string(s);
  const std::string pad(width - runes, ' ');
  return left_align ? std::string(s) + pad : pad + std::string(s);
}

}  // namespace derpkit
