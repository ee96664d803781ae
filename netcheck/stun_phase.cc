// The STUN phase of a report (see stun_phase.h). Everything runs on one io_context; no locks.
#include "netcheck/stun_phase.h"

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "lib/net/as_tuple.h"
#include "lib/net/stun_client.h"
#include "netcheck/hairpin.h"
#include "netcheck/resolve.h"

namespace derpkit::netcheck {
namespace {

using Clock = std::chrono::steady_clock;
using ::derpkit::net::kAsTuple;
using std::chrono::milliseconds;

// After the phase ends, how long outstanding probe coroutines may take to notice (they only have
// to see a closed socket or a cancelled timer; a DNS lookup in flight is left behind).
constexpr milliseconds kDrainBound{1000};
// The hairpin check's STUN step for its own socket, and scheduling slack after its wait.
constexpr milliseconds kHairpinStunBound{1000};
constexpr milliseconds kHairpinSlack{50};

struct SetState {
  std::size_t probes = 0;    // how many probes the set has
  std::size_t finished = 0;  // how many of them have ended, whatever the outcome
  bool done = false;         // answered, pointless, or every probe ended
};

struct PhaseState {
  PhaseState(asio::io_context& io_context, StunPhaseOptions opts, ReportBuilder start)
      : io(io_context), wake(io_context), options(std::move(opts)), builder(std::move(start)) {}

  asio::io_context& io;
  asio::steady_timer wake;  // the phase's main loop sleeps here; Wake() interrupts it
  StunPhaseOptions options;
  ReportBuilder builder;
  Clock::time_point start;
  Clock::time_point deadline;
  std::optional<Clock::time_point> early_stop_at;
  std::unique_ptr<net::StunSocket> sock4;
  std::unique_ptr<net::StunSocket> sock6;
  std::vector<SetState> sets;
  std::list<asio::steady_timer> delay_timers;  // one per probe; a list keeps their addresses
  int outstanding = 0;                         // probe coroutines still running
  bool stopping = false;

  bool hairpin_started = false;
  bool hairpin_done = false;
  Clock::time_point hairpin_until;
  std::optional<bool> hairpin;

  void Wake() { wake.cancel(); }
  void Log(const std::string& line) const {
    if (options.vlog) options.vlog(line);
  }
  bool AllSetsDone() const {
    return std::all_of(sets.begin(), sets.end(), [](const SetState& s) { return s.done; });
  }
};

std::string EndpointText(const asio::ip::udp::endpoint& ep) {
  return netaddr::JoinHostPort(ep.address().to_string(), ep.port());
}

Expected<netaddr::IpAddress, netaddr::ParseError> ToIp(const asio::ip::address& a) {
  return netaddr::ParseIp(a.to_string());
}

// Sleeps on the shared wake timer until `done()` or `until`.
template <typename Done>
asio::awaitable<void> WaitFor(PhaseState& st, Clock::time_point until, Done& done) {
  while (!done() && Clock::now() < until) {
    st.wake.expires_at(until);
    co_await st.wake.async_wait(kAsTuple);
  }
}

void StartHairpin(const std::shared_ptr<PhaseState>& st, const asio::ip::udp::endpoint& server) {
  st->hairpin_started = true;
  // The check's own STUN step gets up to kHairpinStunBound (the server has just answered us, so
  // it is quick), then its wait; the phase waits for both even when it stops early.
  const auto stun_until = std::min(st->deadline, Clock::now() + kHairpinStunBound);
  st->hairpin_until = stun_until + st->options.hairpin_wait + kHairpinSlack;
  asio::co_spawn(
      st->io,
      CheckHairpin(st->io, server, st->options.bind_address, stun_until, st->options.hairpin_wait),
      [st](std::exception_ptr e, HairpinResult result) {
        if (!e) {
          st->hairpin = result.hairpins;
          st->Log(result.note);
        }
        st->hairpin_done = true;
        st->Wake();
      });
}

void OnAnswer(const std::shared_ptr<PhaseState>& st, const derpmap::Node& node, Family family,
              const net::StunAnswer& answer) {
  auto server_ip = ToIp(answer.sent_to.address());
  if (!server_ip) return;
  st->builder.AddStunAnswer(node.region_id, family, *server_ip, answer.sent_to.port(),
                            answer.mapped_ip, answer.mapped_port, answer.rtt);
  st->Log(
      "received STUN answer from " + EndpointText(answer.from) + " (node " + node.name +
      "): we are " + EndpointString(answer.mapped_ip, answer.mapped_port) + ", " +
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(answer.rtt).count()) +
      "µs");
  if (family == Family::kIpv4 && st->options.hairpin && !st->hairpin_started) {
    StartHairpin(st, answer.sent_to);
  }
  if (!st->early_stop_at &&
      st->builder.regions_measured() >= static_cast<std::size_t>(st->options.enough_regions)) {
    const auto wait = EarlyStopDelay(st->builder.MaxLatency(), st->options.full_report);
    st->early_stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(wait);
    st->Log("saw enough regions; stopping STUN in " +
            std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(wait).count()) +
            "µs");
  }
}

asio::awaitable<void> ProbeTask(std::shared_ptr<PhaseState> st, std::size_t set_index, Probe probe,
                                derpmap::Node node, asio::steady_timer& delay_timer) {
  if (probe.delay.count() > 0) {
    delay_timer.expires_at(st->start + std::chrono::duration_cast<Clock::duration>(probe.delay));
    co_await delay_timer.async_wait(kAsTuple);
  }
  if (st->stopping || st->sets[set_index].done) co_return;
  if (!st->builder.ProbeWouldHelp(node.region_id, probe.family)) {
    st->sets[set_index].done = true;  // nothing left to learn from this set
    co_return;
  }
  auto target = co_await StunEndpoint(st->io, node, probe.family, st->deadline);
  if (!target) {
    st->Log("skipping STUN to " + node.name + ": " + target.error());
    co_return;
  }
  net::StunSocket* socket = probe.family == Family::kIpv4 ? st->sock4.get() : st->sock6.get();
  if (st->stopping || socket == nullptr) co_return;
  const auto remaining = st->deadline - Clock::now();
  if (remaining <= Clock::duration::zero()) co_return;
  net::StunTransactOptions options;
  options.timeout = std::chrono::ceil<milliseconds>(remaining);
  st->Log("sent to " + EndpointText(*target) + " (node " + node.name + ", " +
          FamilyName(probe.family) + ")");
  auto answer = co_await socket->Transact(*target, options);
  if (answer) {
    st->sets[set_index].done = true;  // the set has its answer: the other tries are moot
    OnAnswer(st, node, probe.family, *answer);
    co_return;
  }
  if (answer.error().kind != net::StunFailure::Kind::kSendFailed) {
    st->builder.SetCanSend(probe.family);
  }
  if (answer.error().kind != net::StunFailure::Kind::kClosed) st->Log(answer.error().message);
}

const derpmap::Node* FindNode(const derpmap::DerpMap& map, const std::string& name) {
  for (const auto& [id, region] : map.regions) {
    for (const auto& node : region.nodes) {
      if (node.name == name) return &node;
    }
  }
  return nullptr;
}

void OpenSocket(PhaseState& st, Family family) {
  net::StunSocketOptions options;
  options.family = family == Family::kIpv4 ? net::StunSocketOptions::Family::kIpv4
                                           : net::StunSocketOptions::Family::kIpv6;
  options.bind_address = st.options.bind_address;
  options.bind_port = st.options.bind_port;
  auto socket = net::StunSocket::Open(st.io, options);
  if (!socket) {
    st.Log("no " + std::string(family == Family::kIpv4 ? "IPv4" : "IPv6") +
           " STUN socket: " + socket.error());
    return;
  }
  (family == Family::kIpv4 ? st.sock4 : st.sock6) = std::move(*socket);
}

}  // namespace

asio::awaitable<ReportBuilder> RunStunPhase(asio::io_context& io, const derpmap::DerpMap& map,
                                            ProbePlan plan, StunPhaseOptions options,
                                            ReportBuilder start) {
  auto st = std::make_shared<PhaseState>(io, std::move(options), std::move(start));
  st->start = Clock::now();
  st->deadline = st->start + st->options.timeout;

  const auto uses = [&](Family f) {
    return std::any_of(plan.begin(), plan.end(), [f](const ProbeSet& s) { return s.family == f; });
  };
  if (uses(Family::kIpv4)) OpenSocket(*st, Family::kIpv4);
  if (uses(Family::kIpv6)) OpenSocket(*st, Family::kIpv6);

  st->sets.resize(plan.size());
  for (std::size_t i = 0; i < plan.size(); ++i) {
    st->sets[i].probes = plan[i].probes.size();
    st->sets[i].done = plan[i].probes.empty();
    for (const Probe& probe : plan[i].probes) {
      const derpmap::Node* node = FindNode(map, probe.node);
      if (node == nullptr) {
        ++st->sets[i].finished;  // a plan made from this map always names its nodes
        continue;
      }
      asio::steady_timer& timer = st->delay_timers.emplace_back(io);
      ++st->outstanding;
      asio::co_spawn(io, ProbeTask(st, i, probe, *node, timer), [st, i](std::exception_ptr) {
        --st->outstanding;
        SetState& set = st->sets[i];
        if (++set.finished >= set.probes) set.done = true;
        st->Wake();
      });
    }
    if (st->sets[i].finished >= st->sets[i].probes) st->sets[i].done = true;
  }

  // Main wait: all sets done, the early stop, or the phase timeout.
  while (!st->AllSetsDone()) {
    const auto now = Clock::now();
    if (now >= st->deadline || (st->early_stop_at && now >= *st->early_stop_at)) break;
    st->wake.expires_at(st->early_stop_at ? std::min(st->deadline, *st->early_stop_at)
                                          : st->deadline);
    co_await st->wake.async_wait(kAsTuple);
  }

  // Stop: no new probes; the hairpin check finishes; then the sockets close, which ends every
  // outstanding transaction.
  st->stopping = true;
  for (auto& timer : st->delay_timers) timer.cancel();
  if (st->hairpin_started) {
    auto hairpin_done = [&] { return st->hairpin_done; };
    co_await WaitFor(*st, st->hairpin_until, hairpin_done);
  }
  if (st->sock4) st->sock4->Close();
  if (st->sock6) st->sock6->Close();
  auto drained = [&] { return st->outstanding == 0; };
  const auto drain_until = Clock::now() + kDrainBound;
  co_await WaitFor(*st, drain_until, drained);

  ReportBuilder result = st->builder;
  result.mutable_report().hair_pinning = st->hairpin;
  co_return result;
}

}  // namespace derpkit::netcheck
