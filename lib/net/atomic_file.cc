// WriteFileAtomically: temporary file, fchmod, write, fsync, rename.
#include "lib/net/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace derpkit::net {

std::optional<std::string> WriteFileAtomically(const std::string& path, const std::string& contents,
                                               mode_t mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover of a crashed writer with our pid
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  auto fail = [&](const std::string& step) -> std::optional<std::string> {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return step + " " + tmp + ": " + std::strerror(err);
  };
  if (::fchmod(fd, mode) != 0) return fail("cannot chmod");
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return "cannot close " + tmp + ": " + std::strerror(err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return "cannot rename " + tmp + " to " + path + ": " + std::strerror(err);
  }
  return std::nullopt;
}

}  // namespace derpkit::net
