// LoadOrCreateKeyFile: read derper's key file, or create it with a new key (mode 0600).
#include "lib/net/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace derpkit::net {

LoadedKey LoadOrCreateKeyFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      throw std::runtime_error("key file " + path + ": cannot read: " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    auto key = derp::ParseKeyFile(ss.str());
    if (!key) {
      throw std::runtime_error("key file " + path + ": " +
                               std::string(derp::Describe(key.error())));
    }
    return LoadedKey{*key, false};
  }
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec)
      throw std::runtime_error("key file " + path +
                               ": cannot create its directory: " + ec.message());
  }
  const derp::PrivateKey key = derp::PrivateKey::Generate();
  const std::string text = derp::FormatKeyFile(key);
  // O_EXCL: never overwrite a file that appeared meanwhile.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error("key file " + path + ": cannot create: " + std::strerror(errno));
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int close_rc = ::close(fd);
  if (n != static_cast<ssize_t>(text.size()) || close_rc != 0) {
    throw std::runtime_error("key file " + path + ": cannot write: " + std::strerror(errno));
  }
  return LoadedKey{key, true};
}

}  // namespace derpkit::net
