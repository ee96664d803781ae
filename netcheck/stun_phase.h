// The STUN phase of a netcheck report: sends the plan's probes (plan.h) over one StunSocket per
// address family, folds the answers into a ReportBuilder, and ends when every probe set is done,
// when enough regions have answered and the early-stop wait has passed, or at the phase timeout
// (3 s, Tailscale's stunProbeTimeout). After the first IPv4 answer it also runs the hairpin check.
//
//   probe i of a set ── wait its delay ── would it help? ── resolve ── Transact ──> answer
//                                             │ no: the set is done     (first answer: set done)
//
// Every probe is its own coroutine on the io_context; the phase's state is shared with them, so a
// probe that outlives the phase (a DNS lookup in flight) only touches that state.
//
// Thread affinity: a coroutine on the caller's io_context; no other threads.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "lib/derpmap/derpmap.h"
#include "netcheck/plan.h"
#include "netcheck/report_builder.h"

namespace derpkit::netcheck {

struct StunPhaseOptions {
  std::chrono::milliseconds timeout{3000};  // the whole phase
  int enough_regions = kEnoughRegions;      // answers from this many regions allow an early stop
  bool full_report = true;                  // doubles the early-stop wait
  std::string bind_address;                 // local address of the probe sockets; "" = wildcard
  std::uint16_t bind_port = 0;              // local port of the probe sockets; 0 = ephemeral
  bool hairpin = true;                      // run the hairpin check after the first IPv4 answer
  std::chrono::milliseconds hairpin_wait{100};   // Tailscale's hairpinCheckTimeout
  std::function<void(const std::string&)> vlog;  // --verbose notes; may be empty
};

// Runs the phase and returns `start` with every answer folded in (and HairPinning set when it
// was measured).
asio::awaitable<ReportBuilder> RunStunPhase(asio::io_context& io, const derpmap::DerpMap& map,
                                            ProbePlan plan, StunPhaseOptions options,
                                            ReportBuilder start);

}  // namespace derpkit::netcheck
