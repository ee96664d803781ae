// Internal to derp-probe's checks (probe/check_*.cc only): the pieces they share. Text for
// durations and addresses, a deadline branch and a two-branch race for awaitable_operators, and the
// client pair that the mesh, bw and qd checks drive (connect both ends, then push one small packet
// through with backoff until the relays have learnt the receiver). The pair functions are defined
// in check_mesh.cc.
//
// Thread affinity: as checks.h: coroutines on the io_context given; every call from its thread.
// Every coroutine here borrows its reference arguments until it completes; the callers keep them
// in their own frames, and awaitable_operators races wait for every branch before resuming, so
// nothing borrowed outlives its owner.
#pragma once

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lib/derpclient/client.h"
#include "lib/derpmap/derpmap.h"
#include "lib/net/stream.h"
#include "lib/util/bytes.h"
#include "lib/util/expected.h"
#include "probe/checks.h"

namespace derpkit::probe::check_detail {

using Clock = std::chrono::steady_clock;

// "0s", "450ms", "9.6s", "12s", "2m5s": short, for one-line errors.
inline std::string DurationText(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  if (d.count() <= 0) return "0s";
  if (d < seconds(1)) {
    const auto ms = duration_cast<milliseconds>(d).count();
    if (ms == 0) return std::to_string(duration_cast<microseconds>(d).count()) + "µs";
    return std::to_string(ms) + "ms";
  }
  if (d < seconds(60)) {
    const auto tenths = duration_cast<milliseconds>(d).count() / 100;
    std::string text = std::to_string(tenths / 10);
    if (tenths % 10 != 0) text += "." + std::to_string(tenths % 10);
    return text + "s";
  }
  const auto s = duration_cast<seconds>(d).count();
  return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

// True once the coroutine's thread has been cancelled (by its caller or by a race it lost). For
// race branches that set throw_if_cancelled(false): in a thread that still throws on
// cancellation, awaiting this (an awaitable) would throw instead.
inline asio::awaitable<bool> Cancelled() {
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

// A race branch that waits on `timer` (already armed) and, when it expires rather than being
// cancelled, first runs `on_expiry`, which closes what the other branch waits on. Closing is
// belt and braces beside the race's own cancellation: it also ends operations that do not honour
// a cancellation slot (the resolver, a TLS write half-way through a record).
inline asio::awaitable<void> Deadline(asio::steady_timer& timer, std::function<void()> on_expiry) {
  auto [ec] = co_await timer.async_wait(net::kAsTuple);
  if (!ec && on_expiry) on_expiry();
}

// What RunBounded saw: the body's value when it finished first; timed_out when the deadline came
// first; exception when the race threw (the caller cancelled the check before it started).
template <typename T>
struct Bounded {
  std::optional<T> value{};
  bool timed_out = false;
  std::string exception{};
};

// Races `body` against `deadline` (time_point::max() for none). When the deadline comes first it
// sets timed_out and runs `on_expiry`, then the race cancels the body and waits for it to finish,
// so on return nothing of the body is still running. Never throws.
template <typename T>
asio::awaitable<Bounded<T>> RunBounded(asio::awaitable<T> body, Clock::time_point deadline,
                                       std::function<void()> on_expiry) {
  Bounded<T> out;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, deadline);
  std::function<void()> expire = [&out, &on_expiry] {
    out.timed_out = true;
    if (on_expiry) on_expiry();
  };
  try {
    auto guard = Deadline(timer, std::move(expire));
    auto race =
        asio::experimental::awaitable_operators::operator||(std::move(body), std::move(guard));
    auto finished = co_await std::move(race);
    if (finished.index() == 0) out.value.emplace(std::get<0>(std::move(finished)));
  } catch (const std::exception& e) {
    out.exception = e.what();
  }
  co_return out;
}

// Races two branches (typically a sender and a receiver borrowing the same state) and returns the
// value of the one that finished first; the race cancels the other and waits for it to end.
template <typename T>
asio::awaitable<T> FirstToFinish(asio::awaitable<T> a, asio::awaitable<T> b) {
  auto race = asio::experimental::awaitable_operators::operator||(std::move(a), std::move(b));
  auto finished = co_await std::move(race);
  if (finished.index() == 0) co_return std::get<0>(std::move(finished));
  co_return std::get<1>(std::move(finished));
}

// Mesh, bw and qd: a sending client connected to `from` and a receiving client on `to`.
struct PairClients {
  std::unique_ptr<derpclient::Client> sender;
  std::unique_ptr<derpclient::Client> receiver;
  // Cancels every pending operation of both; safe to call more than once.
  void Close();
};

// "1a→1b" (a node with itself: "1a→1a").
std::string PairLabel(const derpmap::Node& from, const derpmap::Node& to);

// Clients (not yet connected) that reach the nodes as netcheck would (NodeClientOptions), with
// options.sender_key / receiver_key or fresh keys, IsProber as given, and the mesh key if any.
PairClients MakePairClients(asio::io_context& io, const derpmap::Node& from,
                            const derpmap::Node& to, const DerpCheckOptions& options,
                            bool is_prober);

// What a pair check got to, read by the check after a race (also after a deadline).
struct PairProgress {
  std::string step;  // what is under way, for a timeout message: "connecting to 1b"
  struct Copy {
    Bytes payload;
    Clock::time_point sent_at;
  };
  std::vector<Copy> copies;             // the small packets sent so far, in order
  bool arrived = false;                 // one of them reached the receiver
  std::chrono::nanoseconds latency{0};  // send of the copy that arrived -> its arrival
  bool IsCopy(ByteSpan packet) const;   // a straggler copy, for later receivers to skip
};

// Connects the sender, then the receiver; the first message each gets must be ServerInfo.
// Errors: "connect to 1b: <why>", "1b: expected ServerInfo first, got KeepAlive".
asio::awaitable<Expected<void, std::string>> ConnectPair(PairClients& pair,
                                                         const derpmap::Node& from,
                                                         const derpmap::Node& to,
                                                         PairProgress& progress);

// Sends an 8-byte random packet from the sender to the receiver's key, again after 50 ms, 100 ms,
// ... (doubling, at most 1 s apart) until one arrives at the receiver from the sender's key, byte
// for byte. Each copy has its own random bytes, so the arrival is timed from the send of exactly
// that copy. Other messages are ignored. Runs until a copy arrives or an error; the caller bounds
// it (NoCopyArrivedText then says what happened).
asio::awaitable<Expected<void, std::string>> DeliverOneCopy(PairClients& pair,
                                                            const derpmap::Node& from,
                                                            const derpmap::Node& to,
                                                            PairProgress& progress);

// ConnectPair, then DeliverOneCopy: the pair is ready once a copy got through. All of the mesh
// check, and the set-up of bw and qd. Runs with throw_if_cancelled off (errors, not exceptions).
asio::awaitable<Expected<void, std::string>> ConnectAndDeliver(PairClients& pair,
                                                               const derpmap::Node& from,
                                                               const derpmap::Node& to,
                                                               PairProgress& progress);

// "sent 9 copies over 9.6s, none arrived at 1b: are 1a and 1b meshed (--mesh-with) with the same
// mesh key?" (for a node with itself, a different likely cause).
std::string NoCopyArrivedText(const derpmap::Node& from, const derpmap::Node& to,
                              const PairProgress& progress, Clock::time_point now);

// A receive error in words ("stream truncated" says the relay went away).
std::string ReceiveErrorText(const std::string& error);

// The error text for a pair check that hit its deadline: what was under way.
std::string PairTimeoutText(const derpmap::Node& from, const derpmap::Node& to,
                            const PairProgress& progress, std::chrono::milliseconds timeout);

// Why a pair check's bounded run (RunBounded) did not finish: the deadline (PairTimeoutText), the
// caller's cancellation ("cancelled while connecting to 1b"), the run's own error, or an early end.
std::string PairFailureText(const derpmap::Node& from, const derpmap::Node& to,
                            const PairProgress& progress,
                            const Bounded<Expected<void, std::string>>& bounded,
                            const asio::cancellation_state& state,
                            std::chrono::milliseconds timeout);

}  // namespace derpkit::probe::check_detail
