// The prober: fetches the DERP map every --interval (the derpmap-probe), keeps one probe per
// ProbeSpec that Plan() asks for (adding and removing them as nodes come and go), runs each every
// its interval (first run spread over the interval), each run bounded by RunTimeout and by a limit
// on runs at once, and remembers every probe's state for the status page, metrics and JSON.
//
// Threads: probes and the map loop run as coroutines on the io_context given (one thread runs
// it); the blocking map fetch runs on a private one-thread pool. Snapshot(), RunNow() and RunAll()
// may be called from any other thread (the HTTP server's); state is guarded by one mutex, held
// only to copy or update values.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lib/derpmap/source.h"
#include "probe/checks.h"
#include "probe/model.h"
#include "probe/plan.h"

namespace derpkit::probe {

struct ProberOptions {
  std::vector<std::string> sources{};  // --derp-map, merged in order
  derpmap::LoadOptions load{};
  PlanOptions plan{};
  std::chrono::milliseconds map_interval{15000};
  bool spread = true;
  int max_concurrent = 32;
  DerpCheckOptions derp{};  // ca_file, mesh key, fixed keys (timeout is set per run)
  std::chrono::seconds tls_expiry_warning{7 * 24 * 3600};
  std::chrono::milliseconds qd_packet_timeout{5000};
  int qd_packets_per_second = 0;
  std::chrono::milliseconds qd_once_duration{5000};  // RunOnce: how long qd probes send
  std::string version{};
  bool log_every_run = false;  // --verbose: log each run's result, not only changes
  // Called (on the io thread) after every map probe run, e.g. to write --textfile.
  std::function<void()> after_map_probe{};
};

class Prober {
 public:
  Prober(asio::io_context& io, ProberOptions options);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Daemon: starts the map loop (first fetch at once) and, through it, every probe. Call once,
  // on the io thread or before io.run().
  void Start();

  // --once: fetches the map, then runs every probe once, all at once within --max-concurrent
  // (qd probes send for qd_once_duration), and returns when all finished. Returns false when
  // the map could not be fetched (no probe ran).
  asio::awaitable<bool> RunOnce();

  // Stops every loop and cancels runs in progress (the io_context then runs out of work).
  // Thread: the io thread.
  void Stop();

  // A copy of everything, for rendering. Any thread.
  ProberSnapshot Snapshot() const;

  // Runs the named probe now (after its run in progress, if any) and returns its state once this
  // run finished; nullopt when no such probe exists or it is continuous. Blocks the calling
  // thread, which must not be the io thread.
  std::optional<ProbeSnapshot> RunNow(const std::string& name);

  // Runs every non-continuous probe not in `exclude` now, at once, and returns their states.
  // Blocks like RunNow.
  std::vector<ProbeSnapshot> RunAll(const std::set<std::string>& exclude);

 private:
  struct Entry;

  asio::awaitable<void> MapLoop();
  asio::awaitable<void> ProbeLoop(std::shared_ptr<Entry> entry);
  // One run: waits for the entry to be idle and for a slot, runs the check, records the result.
  asio::awaitable<void> RunEntry(std::shared_ptr<Entry> entry, bool once);
  asio::awaitable<ProbeResult> RunCheck(const ProbeSpec& spec, std::shared_ptr<Entry> entry,
                                        bool once);
  // The derpmap probe's body: fetch, then add or remove probes. `start_loops` is false in once
  // mode (RunOnce runs the probes itself).
  asio::awaitable<ProbeResult> FetchAndReconcile(bool start_loops);
  void Reconcile(const derpmap::DerpMap& map, bool start_loops);
  void Record(Entry& entry, const ProbeResult& result, SystemTime start, SystemTime end);
  asio::awaitable<void> AcquireSlot(bool exclusive_lane);
  void ReleaseSlot(bool exclusive_lane);
  std::shared_ptr<Entry> Find(const std::string& name) const;
  ProbeSnapshot SnapshotOf(const Entry& entry) const;  // mu_ held
  bool WaitReady(std::future<ProbeSnapshot>& future,
                 std::chrono::steady_clock::time_point deadline) const;
  asio::awaitable<void> RunNowAndReport(std::shared_ptr<Entry> entry,
                                        std::shared_ptr<std::promise<ProbeSnapshot>> done);

  asio::io_context& io_;
  ProberOptions options_;
  asio::thread_pool fetch_pool_{1};
  SystemTime started_;

  mutable std::mutex mu_;  // guards everything below that the HTTP threads read
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::shared_ptr<Entry> map_entry_;
  std::optional<derpmap::DerpMap> map_;
  std::optional<SystemTime> map_fetched_;

  // Io thread only.
  int slots_in_use_ = 0;
  bool lane_busy_ = false;  // fixed keys: mesh and bw runs take turns (see prober.cc)
  asio::steady_timer slot_wake_;
  bool stopped_ = false;
  std::atomic<bool> closing_{false};  // set by Stop(): RunNow/RunAll stop waiting
};

}  // namespace derpkit::probe
