// Small helpers shared by the lib/http and relay route tests: reading captures from testdata and
// blanking the Date value, which is the only part of a captured response that varies per run.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace derpkit::http::testing {

inline std::filesystem::path TestdataPath(std::string_view relative) {
  return std::filesystem::path(DERPKIT_TESTDATA_DIR) / relative;
}

// Returns the bytes of testdata/<relative>; fails the test (and returns "") when unreadable.
inline std::string ReadTestdata(std::string_view relative) {
  std::ifstream in(TestdataPath(relative), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << TestdataPath(relative);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Returns the names NAME of every testdata/http/NAME.req, sorted.
inline std::vector<std::string> HttpCaptureNames() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(TestdataPath("http"))) {
    if (entry.path().extension() == ".req") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Replaces the value of the first "Date:" field in the head of `response` with "<date>".
inline std::string BlankDate(std::string response) {
  const std::size_t head_end = response.find("\r\n\r\n");
  const std::size_t at = response.find("\r\nDate: ");
  if (at == std::string::npos || at > head_end) return response;
  const std::size_t value = at + 8;
  const std::size_t eol = response.find("\r\n", value);
  response.replace(value, eol - value, "<date>");
  return response;
}

}  // namespace derpkit::http::testing
