#include "bench/report.h"

#include <algorithm>
#include <cstdlib>

#include "lib/util/duration.h"

namespace derpkit::bench {

void FailUsage(std::string_view tool, const std::string& message) {
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(tool.size()), tool.data(), message.c_str());
  std::exit(2);
}

bool ParseFlags(CLI::App& app, int argc, char** argv, std::string_view tool) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return false;
  } catch (const CLI::ParseError& e) {
    FailUsage(tool, std::string(e.what()) + " (see --help)");
  }
  return true;
}

std::chrono::nanoseconds ParseDurationFlag(std::string_view tool, std::string_view flag,
                                           const std::string& text) {
  auto d = ParseGoDuration(text);
  if (!d) {
    FailUsage(tool, "--" + std::string(flag) + " " + text + ": " +
                        std::string(Describe(d.error())) +
                        " (write a Go duration such as 5s or 500ms)");
  }
  if (d->count() < 0) FailUsage(tool, "--" + std::string(flag) + " must not be negative");
  return *d;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (u < 3 && (bytes >= 1024 || bytes <= -1024)) {
    bytes /= 1024;
    ++u;
  }
  return Fixed(bytes, u == 0 ? 0 : 1) + " " + units[u];
}

void Table::Print(std::FILE* out) const {
  std::vector<std::size_t> width;
  auto widen = [&](const std::vector<std::string>& row) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  };
  widen(header_);
  for (const auto& r : rows_) widen(r);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      if (i > 0) line += "  ";
      line += i == 0 ? row[i] + pad : pad + row[i];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(out, "%s\n", line.c_str());
  };
  if (!header_.empty()) {
    print(header_);
    std::vector<std::string> rule;
    for (std::size_t w : width) rule.emplace_back(w, '-');
    print(rule);
  }
  for (const auto& r : rows_) print(r);
}

}  // namespace derpkit::bench
