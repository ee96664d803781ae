// The --allow-keys-file watcher (see admission_keys.h). The watcher thread is the only one that
// touches the file; readers take the current key set under a short lock.
#include "relay/admission_keys.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "lib/derp/node_key_list.h"
#include "lib/net/log.h"

namespace derpkit::relay {

AllowKeysFile::AllowKeysFile(std::string path, std::chrono::milliseconds poll_interval)
    : path_(std::move(path)), poll_interval_(poll_interval) {
  seen_ = Stat();
  std::string problem;
  keys_ = Load(&problem);
  if (!keys_) throw std::runtime_error("--allow-keys-file " + path_ + ": " + problem);
  stats_.keys = keys_->size();
  LOG_INFO("allow-keys file %s: %zu node keys admitted without verification", path_.c_str(),
           keys_->size());
  watcher_ = std::thread([this] { Watch(); });
}

AllowKeysFile::~AllowKeysFile() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

bool AllowKeysFile::Contains(const derp::PublicKey& key) const {
  std::shared_ptr<const KeySet> keys;
  {
    std::lock_guard lock(mu_);
    keys = keys_;
  }
  return keys->contains(key);
}

AllowKeysFile::Stats AllowKeysFile::Snapshot() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::string AllowKeysFile::LastProblem() const {
  std::lock_guard lock(mu_);
  return last_problem_;
}

AllowKeysFile::FileVersion AllowKeysFile::Stat() const {
  FileVersion v;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    v.stat_errno = errno;
    return v;
  }
  v.device = st.st_dev;
  v.inode = st.st_ino;
  v.size = static_cast<std::uint64_t>(st.st_size);
  v.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  v.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return v;
}

std::shared_ptr<const AllowKeysFile::KeySet> AllowKeysFile::Load(std::string* problem) const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    *problem = std::string("cannot read: ") + std::strerror(errno);
    return nullptr;
  }
  // One byte over the limit is enough for the parser to refuse the file as too large.
  std::string text(derp::kMaxNodeKeyListBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    *problem = "cannot read: I/O error";
    return nullptr;
  }
  text.resize(static_cast<std::size_t>(in.gcount()));
  auto keys = derp::ParseNodeKeyList(text);
  if (!keys) {
    *problem = derp::Describe(keys.error());
    return nullptr;
  }
  return std::make_shared<const KeySet>(keys->begin(), keys->end());
}

void AllowKeysFile::Watch() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait_for(lock, poll_interval_, [this] { return stopping_; });
    if (stopping_) return;
    lock.unlock();
    const FileVersion now = Stat();
    std::string problem;
    std::shared_ptr<const KeySet> loaded;
    const bool changed = !(now == seen_);
    if (changed) {
      seen_ = now;
      if (now.stat_errno != 0) {
        problem = std::string("cannot read: ") + std::strerror(now.stat_errno);
      } else {
        loaded = Load(&problem);
      }
    }
    lock.lock();
    if (!changed) continue;
    if (loaded) {
      LOG_INFO("allow-keys file %s reloaded: %zu node keys (were %zu)", path_.c_str(),
               loaded->size(), keys_->size());
      keys_ = std::move(loaded);
      stats_.keys = keys_->size();
      ++stats_.reloads;
      last_problem_.clear();
    } else {
      LOG_WARN("allow-keys file %s: %s; still admitting the %zu keys loaded before", path_.c_str(),
               problem.c_str(), keys_->size());
      ++stats_.reload_errors;
      last_problem_ = problem;
    }
  }
}

}  // namespace derpkit::relay
