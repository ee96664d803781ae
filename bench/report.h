// Shared pieces of the bench tools' command lines and output: the exit-2 error line, Go-style
// durations for flags, and an aligned text table.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace derpkit::bench {

// Prints "<tool>: <message>" to stderr and exits 2 (bad flags or an unusable set-up).
[[noreturn]] void FailUsage(std::string_view tool, const std::string& message);

// Parses the command line: with --help prints the help and returns false (the tool then exits
// 0); a bad flag is FailUsage's one line, naming --help.
bool ParseFlags(CLI::App& app, int argc, char** argv, std::string_view tool);

// Parses a flag value in Go's duration format ("5s", "500ms", "1m30s"); exits 2 on error.
std::chrono::nanoseconds ParseDurationFlag(std::string_view tool, std::string_view flag,
                                           const std::string& text);

// Formats `v` with `decimals` digits after the point ("1234.5").
std::string Fixed(double v, int decimals);

// Formats a byte count as "12.3 MiB", "512 KiB", "87 B".
std::string HumanBytes(double bytes);

// A two-column (label, value) or n-column table, printed with every column padded to its widest
// cell: the first column left-aligned, the others right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header = {}) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void Print(std::FILE* out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace derpkit::bench
