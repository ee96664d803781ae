// lib/net/atomic_file: the whole file or nothing, with the mode asked for, and errors that say
// which step failed on which file.
#include "lib/net/atomic_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace derpkit::net {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "atomic-file-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(WriteFileAtomically, ReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = (dir.path() / "netcheck.prom").string();
  ASSERT_EQ(WriteFileAtomically(path, "first\n"), std::nullopt);
  ASSERT_EQ(WriteFileAtomically(path, "second\n"), std::nullopt);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "second\n");
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0644));
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1u) << "a temporary file was left behind";
}

TEST(WriteFileAtomically, SaysWhatFailed) {
  TempDir dir;
  const std::string path = (dir.path() / "missing-dir" / "netcheck.prom").string();
  const auto err = WriteFileAtomically(path, "x\n");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("cannot create " + path + ".tmp."), std::string::npos) << *err;
  EXPECT_NE(err->find("No such file or directory"), std::string::npos) << *err;
}

TEST(WriteFileAtomically, SetsTheModeAskedFor) {
  TempDir dir;
  const std::string path = (dir.path() / "secret.key").string();
  ASSERT_EQ(WriteFileAtomically(path, "k\n", 0600), std::nullopt);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0600));
}

}  // namespace
}  // namespace derpkit::net
