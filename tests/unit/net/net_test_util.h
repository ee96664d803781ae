// Helpers shared by the lib/net TLS tests: a scratch directory, file reading, the testdata keys.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lib/net/tls.h"
#include "lib/util/bytes.h"

namespace derpkit::net::nettest {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "derpkit-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::vector<unsigned char> ReadBinary(const std::string& path) {
  const std::string s = ReadFile(path);
  return std::vector<unsigned char>(s.begin(), s.end());
}

inline void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::binary) << contents;
}

inline std::string Testdata(const std::string& relative) {
  return std::string(DERPKIT_TESTDATA_DIR) + "/" + relative;
}

// The real derper's public key (testdata/keys/derper.pub.txt, "nodekey:<hex>").
inline std::string DerperPublicKeyHex() {
  std::string text = ReadFile(Testdata("keys/derper.pub.txt"));
  const std::string prefix = "nodekey:";
  EXPECT_EQ(text.rfind(prefix, 0), 0u) << text;
  text = text.substr(prefix.size());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

inline RawKey DerperPublicKey() {
  RawKey key{};
  EXPECT_TRUE(HexDecodeInto(DerperPublicKeyHex(), key));
  return key;
}

}  // namespace derpkit::net::nettest
