// Reading a DERP map file (tailcfg JSON or Headscale YAML), bounded by LoadOptions::max_bytes.
// Blocking; any thread.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "lib/derpmap/loaders.h"

namespace derpkit::derpmap::detail {
namespace {

class FileCloser {
 public:
  explicit FileCloser(int fd) : fd_(fd) {}
  ~FileCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

Expected<std::string, MapError> ReadMapFile(const std::string& path, const std::string& label,
                                            const LoadOptions& options) {
  auto fail = [&](std::string reason) {
    return Unexpected(MapError{label, "", std::move(reason)});
  };
  auto errno_text = [](int err) { return std::generic_category().message(err); };

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return fail("no such file");
    return fail("cannot open: " + errno_text(err));
  }
  FileCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) return fail("is a directory, not a map file");

  std::string text;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
    if (text.size() > options.max_bytes) {
      return fail("larger than the limit of " + std::to_string(options.max_bytes) + " bytes");
    }
  }
  return text;
}

}  // namespace derpkit::derpmap::detail
