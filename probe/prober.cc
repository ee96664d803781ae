// Prober: the map loop, one loop per probe, the run-slot limit, and the state the HTTP threads
// read. See prober.h for the threading rules.
#include "probe/prober.h"

#include <algorithm>
#include <asio/experimental/awaitable_operators.hpp>

#include "lib/net/log.h"
#include "lib/net/stream.h"
#include "lib/util/go_format.h"

namespace derpkit::probe {
namespace {

using namespace asio::experimental::awaitable_operators;
using SteadyClock = std::chrono::steady_clock;
constexpr auto kForever = asio::steady_timer::time_point::max();
// Slack for the outer deadline on top of a check's own: a check reports its own timeout in
// better words; this one only catches a check that forgot to.
constexpr std::chrono::milliseconds kOuterGrace{2000};

// Go's spelling ("850µs", "12.3ms", "1.5s"), as derpprobe's log lines.
std::string Seconds(std::chrono::nanoseconds d) {
  return GoDurationString(GoRound(d, std::chrono::microseconds(100)));
}

struct FetchOutcome {
  std::optional<derpmap::DerpMap> map;
  std::string error;
};

// Runs on the fetch pool: LoadMap blocks (DNS, TCP, TLS, the LocalAPI socket).
asio::awaitable<FetchOutcome> LoadOnPool(std::vector<std::string> sources,
                                         derpmap::LoadOptions load) {
  FetchOutcome out;
  auto map = derpmap::LoadMap(sources, load);
  if (map) {
    out.map = std::move(*map);
  } else {
    out.error = map.error().ToString();
  }
  co_return out;
}

}  // namespace

struct Prober::Entry {
  Entry(asio::io_context& io, ProbeSpec spec) : idle_wake(io, kForever), sleep(io) {
    state.spec = std::move(spec);
  }
  ProbeSnapshot state;  // guarded by Prober::mu_
  // Io thread only.
  bool removed = false;
  bool running = false;
  asio::steady_timer idle_wake;      // cancelled whenever a run ends: waiters re-check `running`
  asio::steady_timer sleep;          // between runs; cancelled on removal and Stop
  asio::cancellation_signal cancel;  // the run in progress (runs never overlap)
};

Prober::Prober(asio::io_context& io, ProberOptions options)
    : io_(io),
      options_(std::move(options)),
      started_(std::chrono::system_clock::now()),
      slot_wake_(io, kForever) {
  map_entry_ = std::make_shared<Entry>(io_, MapProbeSpec(options_.map_interval));
  entries_.emplace(map_entry_->state.spec.name, map_entry_);
}

Prober::~Prober() { fetch_pool_.join(); }

void Prober::Start() { asio::co_spawn(io_, MapLoop(), asio::detached); }

void Prober::Stop() {
  stopped_ = true;
  closing_ = true;
  std::vector<std::shared_ptr<Entry>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, e] : entries_) all.push_back(e);
  }
  for (auto& e : all) {
    e->sleep.cancel();
    e->idle_wake.cancel();
    e->cancel.emit(asio::cancellation_type::terminal);
  }
  slot_wake_.cancel();
}

asio::awaitable<void> Prober::MapLoop() {
  while (!stopped_) {
    const auto next = SteadyClock::now() + options_.map_interval;
    co_await RunEntry(map_entry_, false);
    if (options_.after_map_probe) options_.after_map_probe();
    if (stopped_) break;
    map_entry_->sleep.expires_at(next);
    co_await map_entry_->sleep.async_wait(net::kAsTuple);
  }
}

asio::awaitable<void> Prober::ProbeLoop(std::shared_ptr<Entry> entry) {
  const ProbeSpec spec = entry->state.spec;  // name and interval never change for a name
  if (options_.spread && !spec.continuous()) {
    entry->sleep.expires_after(SpreadDelay(spec.name, spec.interval));
    co_await entry->sleep.async_wait(net::kAsTuple);
  }
  while (!entry->removed && !stopped_) {
    // A fixed rate, like the reference's ticker: the next run is due one interval after this
    // one started, or at once if this run took longer.
    const auto pause = spec.continuous() ? -spec.interval : spec.interval;
    const auto next = SteadyClock::now() + pause;
    co_await RunEntry(entry, false);
    if (entry->removed || stopped_) break;
    if (spec.continuous()) {
      entry->sleep.expires_after(pause);
    } else {
      entry->sleep.expires_at(std::max(next, SteadyClock::now()));
    }
    co_await entry->sleep.async_wait(net::kAsTuple);
  }
}

asio::awaitable<void> Prober::AcquireSlot(bool exclusive_lane) {
  while (!stopped_ &&
         (slots_in_use_ >= options_.max_concurrent || (exclusive_lane && lane_busy_))) {
    co_await slot_wake_.async_wait(net::kAsTuple);
  }
  ++slots_in_use_;
  if (exclusive_lane) lane_busy_ = true;
}

void Prober::ReleaseSlot(bool exclusive_lane) {
  --slots_in_use_;
  if (exclusive_lane) lane_busy_ = false;
  slot_wake_.cancel();  // every waiter re-checks; the set of waiters is bounded by the probes
}

asio::awaitable<void> Prober::RunEntry(std::shared_ptr<Entry> entry, bool once) {
  while (entry->running) {
    co_await entry->idle_wake.async_wait(net::kAsTuple);
    if (stopped_) co_return;
  }
  entry->running = true;
  const ProbeSpec spec = [&] {
    std::lock_guard lock(mu_);
    return entry->state.spec;
  }();
  // With fixed keys (--key-file) two mesh or bw runs at once would put the same key on a relay
  // twice, and the relay would deliver to whichever connection came last: they take turns.
  const bool lane = options_.derp.sender_key.has_value() &&
                    (spec.kind == ProbeKind::kMesh || spec.kind == ProbeKind::kBw);
  co_await AcquireSlot(lane);
  const SystemTime start = std::chrono::system_clock::now();
  {
    std::lock_guard lock(mu_);
    entry->state.in_flight = true;
    entry->state.last_start = start;
  }
  ProbeResult result;
  if (stopped_) {
    result.error = "the prober is stopping";
  } else {
    result = co_await RunCheck(spec, entry, once);
  }
  ReleaseSlot(lane);
  Record(*entry, result, start, std::chrono::system_clock::now());
  entry->running = false;
  entry->idle_wake.cancel();
}

asio::awaitable<ProbeResult> Prober::RunCheck(const ProbeSpec& spec, std::shared_ptr<Entry> entry,
                                              bool once) {
  if (spec.kind == ProbeKind::kDerpMap) {
    auto r = co_await FetchAndReconcile(!once);
    co_return r;
  }
  const std::chrono::milliseconds timeout = RunTimeout(spec);
  DerpCheckOptions derp = options_.derp;
  derp.timeout = timeout;
  asio::awaitable<ProbeResult> check;
  switch (spec.kind) {
    case ProbeKind::kTls: {
      TlsCheckOptions o;
      o.timeout = timeout;
      o.ca_file = options_.derp.ca_file;
      o.expiry_warning = options_.tls_expiry_warning;
      check = CheckTls(io_, spec.from, o);
      break;
    }
    case ProbeKind::kUdp:
    case ProbeKind::kUdp6: {
      StunCheckOptions o;
      o.timeout = timeout;
      check = CheckStun(io_, spec.from, spec.kind == ProbeKind::kUdp6, o);
      break;
    }
    case ProbeKind::kMesh:
      check = CheckMesh(io_, spec.from, *spec.to, derp);
      break;
    case ProbeKind::kBw:
      check = CheckBandwidth(io_, spec.from, *spec.to, options_.plan.bw_size_bytes, derp);
      break;
    case ProbeKind::kQd: {
      QdCheckOptions o;
      o.derp = derp;
      // Continuous runs with fixed keys would hold the relay's only connection for that key:
      // qd always uses fresh keys (relays that verify clients need the mesh key for qd).
      o.derp.sender_key.reset();
      o.derp.receiver_key.reset();
      o.derp.timeout = options_.qd_packet_timeout * 2;
      o.packets_per_second = options_.qd_packets_per_second;
      o.packet_timeout = options_.qd_packet_timeout;
      o.run_for = once ? options_.qd_once_duration : std::chrono::milliseconds{0};
      auto on_delay = [this, entry](double seconds) {
        std::lock_guard lock(mu_);
        entry->state.qd.Observe(seconds);
      };
      auto on_drop = [this, entry] {
        std::lock_guard lock(mu_);
        ++entry->state.qd.dropped_packets;
      };
      auto r = co_await asio::co_spawn(
          io_, RunQueuingDelay(io_, spec.from, *spec.to, o, on_delay, on_drop),
          asio::bind_cancellation_slot(entry->cancel.slot(), asio::use_awaitable));
      co_return r;
    }
    case ProbeKind::kDerpMap:
      break;
  }
  // The `||` cancels the check when the deadline wins (every check honours cancellation).
  asio::steady_timer deadline(io_, timeout + kOuterGrace);
  auto first = co_await (std::move(check) || deadline.async_wait(net::kAsTuple));
  if (first.index() == 0) co_return std::get<0>(std::move(first));
  ProbeResult late;
  late.error = "no result within " + Seconds(timeout + kOuterGrace) + " (the run's deadline)";
  co_return late;
}

asio::awaitable<ProbeResult> Prober::FetchAndReconcile(bool start_loops) {
  const auto t0 = SteadyClock::now();
  FetchOutcome outcome = co_await asio::co_spawn(
      fetch_pool_.get_executor(), LoadOnPool(options_.sources, options_.load), asio::use_awaitable);
  ProbeResult r;
  r.latency = SteadyClock::now() - t0;
  if (!outcome.map) {
    std::lock_guard lock(mu_);
    r.error = outcome.error;
    if (map_fetched_) {
      const auto age = std::chrono::system_clock::now() - *map_fetched_;
      r.error +=
          "; node probes keep running on the last good map, fetched " + Seconds(age) + " ago";
    }
    co_return r;
  }
  Reconcile(*outcome.map, start_loops);
  r.ok = true;
  co_return r;
}

void Prober::Reconcile(const derpmap::DerpMap& map, bool start_loops) {
  const std::vector<ProbeSpec> specs = Plan(map, options_.plan);
  std::vector<std::shared_ptr<Entry>> added;
  std::vector<std::shared_ptr<Entry>> removed;
  {
    std::lock_guard lock(mu_);
    const bool first = !map_.has_value();
    map_ = map;
    map_fetched_ = std::chrono::system_clock::now();
    std::set<std::string> wanted;
    for (const ProbeSpec& spec : specs) {
      wanted.insert(spec.name);
      auto it = entries_.find(spec.name);
      if (it != entries_.end()) {
        it->second->state.spec = spec;  // addresses or ports may have changed
        continue;
      }
      auto e = std::make_shared<Entry>(io_, spec);
      entries_.emplace(spec.name, e);
      added.push_back(e);
    }
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second == map_entry_ || wanted.count(it->first) > 0) {
        ++it;
        continue;
      }
      removed.push_back(it->second);
      it = entries_.erase(it);
    }
    if (first) {
      for (const std::string& r : UnknownRegions(map, options_.plan)) {
        LOG_WARN("derp-probe: --regions %s: no such region in the DERP map (yet)", r.c_str());
      }
    }
  }
  for (auto& e : added) {
    if (options_.log_every_run || !start_loops) {
      LOG_DEBUG("derp-probe: adding probe %s", e->state.spec.name.c_str());
    } else {
      LOG_INFO(
          "derp-probe: adding probe %s every %s", e->state.spec.name.c_str(),
          e->state.spec.continuous() ? "(continuous)" : Seconds(e->state.spec.interval).c_str());
    }
    if (start_loops) asio::co_spawn(io_, ProbeLoop(e), asio::detached);
  }
  for (auto& e : removed) {
    LOG_INFO("derp-probe: removing probe %s (no longer in the DERP map)",
             e->state.spec.name.c_str());
    e->removed = true;
    e->sleep.cancel();
    e->idle_wake.cancel();
    e->cancel.emit(asio::cancellation_type::terminal);
  }
}

void Prober::Record(Entry& entry, const ProbeResult& result, SystemTime start, SystemTime end) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    ProbeSnapshot& s = entry.state;
    const auto before = s.status;
    s.in_flight = false;
    s.last_end = end;
    s.last = result;
    s.status = result.ok ? ProbeSnapshot::Status::kSucceeded : ProbeSnapshot::Status::kFailed;
    changed = before != s.status;
    s.history.push_back(HistoryEntry{end, result.ok, result.latency});
    while (s.history.size() > ProbeSnapshot::kHistoryLength) s.history.pop_front();
    const double took = std::chrono::duration<double>(end - start).count();
    if (result.ok) {
      ++s.attempts_ok;
      s.seconds_ok += took;
      s.latency.Observe(std::chrono::duration<double>(result.latency).count());
      s.last_good_latency = result.latency;
      s.last_pass = end;
    } else {
      ++s.attempts_fail;
      s.seconds_fail += took;
    }
    if (result.cert) s.cert = result.cert;
    if (s.spec.kind == ProbeKind::kBw) {
      s.bw_transfer_seconds_total += std::chrono::duration<double>(result.bw_transfer_time).count();
      s.bw_probe_size_bytes = options_.plan.bw_size_bytes;
    }
  }
  const std::string& name = entry.state.spec.name;  // constant for the entry's life
  if (result.ok && (changed || options_.log_every_run)) {
    LOG_INFO("good: %s: %s", name.c_str(), Seconds(result.latency).c_str());
  } else if (!result.ok && (changed || options_.log_every_run)) {
    LOG_WARN("bad: %s: %s", name.c_str(), result.error.c_str());
  }
}

std::shared_ptr<Prober::Entry> Prober::Find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second;
}

ProbeSnapshot Prober::SnapshotOf(const Entry& entry) const {
  ProbeSnapshot s = entry.state;
  if (s.in_flight && s.status == ProbeSnapshot::Status::kUnknown) {
    s.status = ProbeSnapshot::Status::kRunning;
  }
  return s;
}

ProberSnapshot Prober::Snapshot() const {
  ProberSnapshot out;
  out.now = std::chrono::system_clock::now();
  out.started = started_;
  out.version = options_.version;
  for (const std::string& s : options_.sources) {
    out.map_source += (out.map_source.empty() ? "" : ", ") + s;
  }
  std::lock_guard lock(mu_);
  for (const auto& [name, e] : entries_) out.probes.push_back(SnapshotOf(*e));
  out.map_fetched = map_fetched_;
  if (map_) {
    out.regions = map_->regions.size();
    for (const auto& [id, region] : map_->regions) out.nodes += region.nodes.size();
  }
  return out;
}

bool Prober::WaitReady(std::future<ProbeSnapshot>& future,
                       std::chrono::steady_clock::time_point deadline) const {
  // In slices, so that Stop() (the io thread is gone then) does not leave HTTP threads waiting.
  while (!closing_ && SteadyClock::now() < deadline) {
    if (future.wait_for(std::chrono::milliseconds(100)) == std::future_status::ready) return true;
  }
  return false;
}

asio::awaitable<void> Prober::RunNowAndReport(std::shared_ptr<Entry> entry,
                                              std::shared_ptr<std::promise<ProbeSnapshot>> done) {
  co_await RunEntry(entry, false);
  std::lock_guard lock(mu_);
  done->set_value(SnapshotOf(*entry));
}

std::optional<ProbeSnapshot> Prober::RunNow(const std::string& name) {
  auto entry = Find(name);
  if (!entry) return std::nullopt;
  std::chrono::milliseconds interval;
  {
    std::lock_guard lock(mu_);
    interval = entry->state.spec.interval;
  }
  if (interval.count() < 0) return std::nullopt;
  auto done = std::make_shared<std::promise<ProbeSnapshot>>();
  auto future = done->get_future();
  asio::co_spawn(io_, RunNowAndReport(entry, done), asio::detached);
  // A run in progress first, then ours: two deadlines, plus slack for a queue of runs.
  if (WaitReady(future, SteadyClock::now() + interval * 2 + std::chrono::seconds(10))) {
    return future.get();
  }
  std::lock_guard lock(mu_);
  return SnapshotOf(*entry);
}

std::vector<ProbeSnapshot> Prober::RunAll(const std::set<std::string>& exclude) {
  std::vector<std::pair<std::shared_ptr<Entry>, std::future<ProbeSnapshot>>> runs;
  std::chrono::milliseconds longest{0};
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) {
      if (e->state.spec.continuous() || exclude.count(name) > 0) continue;
      longest = std::max(longest, e->state.spec.interval);
      auto done = std::make_shared<std::promise<ProbeSnapshot>>();
      runs.emplace_back(e, done->get_future());
      asio::co_spawn(io_, RunNowAndReport(e, done), asio::detached);
    }
  }
  const auto deadline = SteadyClock::now() + longest * 2 + std::chrono::seconds(10);
  std::vector<ProbeSnapshot> out;
  for (auto& [e, future] : runs) {
    if (WaitReady(future, deadline)) {
      out.push_back(future.get());
    } else {
      std::lock_guard lock(mu_);
      out.push_back(SnapshotOf(*e));
    }
  }
  return out;
}

asio::awaitable<bool> Prober::RunOnce() {
  co_await RunEntry(map_entry_, true);
  std::vector<std::shared_ptr<Entry>> todo;
  {
    std::lock_guard lock(mu_);
    if (!map_) co_return false;
    for (const auto& [name, e] : entries_) {
      if (e != map_entry_) todo.push_back(e);
    }
  }
  auto pending = std::make_shared<std::size_t>(todo.size());
  asio::steady_timer wake(io_, kForever);
  for (auto& e : todo) {
    asio::co_spawn(io_, RunEntry(e, true), [pending, &wake](std::exception_ptr) {
      if (--*pending == 0) wake.cancel();
    });
  }
  while (*pending > 0) co_await wake.async_wait(net::kAsTuple);
  co_return true;
}

}  // namespace derpkit::probe
