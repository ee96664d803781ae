// --allow-keys-file: the node keys derp-relay admits without asking anyone, read from a text
// file (lib/derp/node_key_list.h) and read again whenever the file changes.
//
// A watcher thread looks at the file every poll interval (device, inode, size, mtime, ctime: an
// editor's rename and an in-place rewrite both show) and re-reads it when it changed. A file that
// is missing, unreadable or malformed is logged once per change, with the line and the problem,
// and the keys loaded before stay in force: a typo never locks everybody out.
//
// Thread affinity: the constructor and destructor on one thread (the Server's); Contains(),
// Snapshot() and LastProblem() from any thread (shards, the metrics scrape, /debug/check).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "lib/derp/keys.h"

namespace derpkit::relay {

class AllowKeysFile {
 public:
  struct Stats {
    std::size_t keys = 0;
    std::uint64_t reloads = 0;        // times a changed file was loaded
    std::uint64_t reload_errors = 0;  // times a changed file could not be (old keys kept)
  };

  // Loads `path`; throws std::runtime_error ("--allow-keys-file PATH: line 3: ...") when it
  // cannot, since at start-up there is no earlier list to keep. Then starts the watcher.
  AllowKeysFile(std::string path, std::chrono::milliseconds poll_interval);
  ~AllowKeysFile();
  AllowKeysFile(const AllowKeysFile&) = delete;
  AllowKeysFile& operator=(const AllowKeysFile&) = delete;

  bool Contains(const derp::PublicKey& key) const;
  Stats Snapshot() const;
  // Why the file's current version is not the one in force ("" when it is).
  std::string LastProblem() const;
  const std::string& path() const { return path_; }

 private:
  using KeySet = std::unordered_set<derp::PublicKey, derp::PublicKeyHash>;
  // What identifies one version of the file; all zero when it could not be stat()ed.
  struct FileVersion {
    std::uint64_t device = 0, inode = 0, size = 0;
    std::int64_t mtime_ns = 0, ctime_ns = 0;
    int stat_errno = 0;
    friend bool operator==(const FileVersion&, const FileVersion&) = default;
  };

  FileVersion Stat() const;
  // Reads and parses the file; the keys, or the problem in words.
  std::shared_ptr<const KeySet> Load(std::string* problem) const;
  void Watch();

  const std::string path_;
  const std::chrono::milliseconds poll_interval_;

  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> keys_;  // guarded by mu_; never null
  std::string last_problem_;            // guarded by mu_
  Stats stats_;                         // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  std::condition_variable wake_;
  FileVersion seen_;  // watcher thread only (and the constructor, before it starts)
  std::thread watcher_;
};

}  // namespace derpkit::relay
