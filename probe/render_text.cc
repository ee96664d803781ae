// The renderers' shared words and numbers (see render_text.h). Pure; any thread.
#include "probe/render_text.h"

#include <cstdio>

namespace derpkit::probe {

std::string Millis(std::chrono::nanoseconds d) {
  return FormatNumber("%.1fms", std::chrono::duration<double, std::milli>(d).count());
}

std::string FormatNumber(const char* printf_format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, printf_format, value);
  return buf;
}

std::string Counted(std::size_t n, std::string_view singular, std::string_view plural) {
  return std::to_string(n) + " " + std::string(n == 1 ? singular : plural);
}

std::string MapSizeNote(std::size_t regions, std::size_t nodes) {
  return Counted(regions, "region", "regions") + ", " + Counted(nodes, "node", "nodes");
}

std::int64_t DaysLeft(SystemTime t, SystemTime now) {
  return std::chrono::floor<std::chrono::days>(t - now).count();
}

std::string CertNote(const CertFacts& cert, SystemTime now) {
  const std::int64_t days = DaysLeft(cert.Expiry(), now);
  std::string note = "cert " + cert.subject + ", ";
  if (days >= 0) {
    note += Counted(static_cast<std::size_t>(days), "day", "days") + " left";
  } else {
    note += "expired " + Counted(static_cast<std::size_t>(-days), "day", "days") + " ago";
  }
  if (cert.pinned) note += ", pinned";
  return note;
}

namespace {

std::string HumanBytes(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return FormatNumber("%.1f GB", b / 1e9);
  if (b >= 1e6) return FormatNumber("%.1f MB", b / 1e6);
  if (b >= 1e3) return FormatNumber("%.1f kB", b / 1e3);
  return std::to_string(bytes) + " B";
}

}  // namespace

std::string BwNote(const ProbeResult& result) {
  const double seconds = std::chrono::duration<double>(result.bw_transfer_time).count();
  std::string note = HumanBytes(result.bw_bytes) + " in " + Millis(result.bw_transfer_time);
  if (seconds > 0) {
    const double mbit = static_cast<double>(result.bw_bytes) * 8 / seconds / 1e6;
    note += FormatNumber(mbit >= 10 ? " (%.0f Mbit/s)" : " (%.1f Mbit/s)", mbit);
  }
  return note;
}

}  // namespace derpkit::probe
