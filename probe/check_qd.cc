// The qd check (checks.h): a continuous stream of 260-byte packets, each carrying its sequence
// number, from a client on one node to a client on the other, each one's queuing delay reported
// as it arrives and each one not arriving within packet_timeout reported once as dropped.
//
// Send times live in a bounded ring (packets_per_second * packet_timeout entries, as the
// reference sizes it): on every tick the entries older than packet_timeout, and the oldest one
// when the ring is full, leave it as drops; an arrival takes its entry out. A packet whose entry is
// gone (late) is ignored: it was already counted.
//
// Thread affinity: coroutines on the io_context given. The run's state lives in
// RunQueuingDelay's frame; the sender and receiver branches borrow it, and the race waits for both
// before the frame goes on, so after cancellation (the scheduler closing a probe whose node left
// the map) no callback runs and nothing touches freed memory.
#include <openssl/rand.h>

#include <algorithm>
#include <deque>
#include <variant>

#include "probe/check_common.h"
#include "probe/checks.h"

namespace derpkit::probe {
namespace {

using check_detail::Clock;
using check_detail::PairClients;
using check_detail::PairProgress;

constexpr std::size_t kQdPacketBytes = 260;  // a CallMeMaybe's size, as the reference sends
// The median is taken over at most this many recent delays, so a run of days stays bounded.
constexpr std::size_t kMedianWindow = 4096;

struct SentRecord {
  std::uint64_t seq = 0;
  Clock::time_point at{};
};

struct QdRun {
  std::deque<SentRecord> ring;  // sent, not yet arrived nor expired; ascending seq
  std::size_t ring_capacity = 1;
  std::chrono::nanoseconds period{};
  std::chrono::milliseconds packet_timeout{};
  std::deque<double> recent_delays_seconds;  // newest last, at most kMedianWindow
  std::uint64_t delays = 0;
  std::uint64_t drops = 0;
  std::uint64_t sent = 0;
  std::function<void(double)> on_delay;
  std::function<void()> on_drop;

  void Drop() {
    ring.pop_front();
    ++drops;
    if (on_drop) on_drop();
  }
  // Expires entries older than packet_timeout, and makes room for one more.
  void Expire(Clock::time_point now) {
    while (!ring.empty() && now - ring.front().at >= packet_timeout) Drop();
    while (ring.size() >= ring_capacity) Drop();
  }
  void Arrived(std::uint64_t seq, Clock::time_point now) {
    const auto it =
        std::lower_bound(ring.begin(), ring.end(), seq,
                         [](const SentRecord& r, std::uint64_t s) { return r.seq < s; });
    if (it == ring.end() || it->seq != seq) return;  // late: already counted as a drop
    const double delay_seconds = std::chrono::duration<double>(now - it->at).count();
    ring.erase(it);
    ++delays;
    recent_delays_seconds.push_back(delay_seconds);
    if (recent_delays_seconds.size() > kMedianWindow) recent_delays_seconds.pop_front();
    if (on_delay) on_delay(delay_seconds);
  }
  std::chrono::nanoseconds Median() const {
    if (recent_delays_seconds.empty()) return std::chrono::nanoseconds(0);
    std::vector<double> sorted(recent_delays_seconds.begin(), recent_delays_seconds.end());
    const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
    std::nth_element(sorted.begin(), middle, sorted.end());
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(*middle));
  }
};

void StoreBigEndian64(std::span<std::byte> out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}

std::uint64_t LoadBigEndian64(ByteSpan in) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint64_t>(in[i]);
  return v;
}

// Sends one packet per period on a fixed schedule (no drift; after a stall it starts again from
// now instead of bursting). Returns only on a send error or when cancelled.
asio::awaitable<std::string> QdSend(PairClients& pair, const derpmap::Node& from, QdRun& run) {
  co_await asio::this_coro::throw_if_cancelled(false);
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer tick(executor);
  Bytes packet(kQdPacketBytes);
  RAND_bytes(reinterpret_cast<unsigned char*>(packet.data()), static_cast<int>(packet.size()));
  const derp::PublicKey to_key = pair.receiver->public_key();
  Clock::time_point next = Clock::now();
  for (std::uint64_t seq = 0;; ++seq) {
    const Clock::time_point now = Clock::now();
    run.Expire(now);
    run.ring.push_back({seq, now});
    ++run.sent;
    StoreBigEndian64(packet, seq);
    const ByteSpan bytes = packet;
    const std::error_code ec = co_await pair.sender->SendPacket(to_key, bytes);
    const bool cancelled = co_await check_detail::Cancelled();
    if (cancelled) co_return "cancelled";
    if (ec) co_return "send through " + from.name + ": " + ec.message();
    next += run.period;
    if (next < Clock::now() - run.period) next = Clock::now();
    tick.expires_at(next);
    co_await tick.async_wait(net::kAsTuple);
    const bool cancelled_in_wait = co_await check_detail::Cancelled();
    if (cancelled_in_wait) co_return "cancelled";
  }
}

// Receives until an error or cancellation; anything but our 260-byte packets from the sender
// (keepalives, straggling warm-up copies) is ignored.
asio::awaitable<std::string> QdReceive(PairClients& pair, const derpmap::Node& to, QdRun& run) {
  co_await asio::this_coro::throw_if_cancelled(false);
  const derp::PublicKey from_key = pair.sender->public_key();
  for (;;) {
    auto message = co_await pair.receiver->Recv();
    const bool cancelled = co_await check_detail::Cancelled();
    if (cancelled) co_return "cancelled";
    if (!message) {
      co_return "receive at " + to.name + ": " + check_detail::ReceiveErrorText(message.error());
    }
    const auto* packet = std::get_if<derpclient::RecvPacketMessage>(&*message);
    if (packet == nullptr || packet->src != from_key || packet->packet.size() != kQdPacketBytes) {
      continue;
    }
    run.Arrived(LoadBigEndian64(packet->packet), Clock::now());
  }
}

asio::awaitable<ProbeResult> QueuingDelayRun(asio::io_context& io, derpmap::Node from,
                                             derpmap::Node to, QdCheckOptions options,
                                             std::function<void(double)> on_delay,
                                             std::function<void()> on_drop) {
  ProbeResult result;
  const std::string label = check_detail::PairLabel(from, to);
  if (options.packets_per_second <= 0) {
    result.error = label + ": the queuing-delay probe needs packets_per_second above 0";
    co_return result;
  }
  if (options.packet_timeout.count() <= 0) {
    result.error = label + ": the queuing-delay probe needs a packet timeout above 0";
    co_return result;
  }
  PairClients pair = check_detail::MakePairClients(io, from, to, options.derp, /*is_prober=*/false);
  PairProgress progress;

  // Connect and see one packet through, within the usual timeout.
  auto set_up = check_detail::ConnectAndDeliver(pair, from, to, progress);
  auto ready = co_await check_detail::RunBounded(
      std::move(set_up), Clock::now() + options.derp.timeout, [&pair] { pair.Close(); });
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  if (!progress.arrived) {
    pair.Close();
    result.error =
        label + ": " +
        check_detail::PairFailureText(from, to, progress, ready, state, options.derp.timeout);
    co_return result;
  }
  if (state.cancelled() != asio::cancellation_type::none) {
    pair.Close();
    result.error = label + ": cancelled";
    co_return result;
  }

  QdRun run;
  run.period = std::chrono::nanoseconds(std::chrono::seconds(1)) / options.packets_per_second;
  run.packet_timeout = options.packet_timeout;
  const auto timeout_ms = options.packet_timeout.count();
  run.ring_capacity = static_cast<std::size_t>(std::max<long long>(
      1, (static_cast<long long>(options.packets_per_second) * timeout_ms + 999) / 1000));
  run.on_delay = std::move(on_delay);
  run.on_drop = std::move(on_drop);

  const Clock::time_point end =
      options.run_for.count() > 0 ? Clock::now() + options.run_for : Clock::time_point::max();
  // Sender and receiver together: the stream ends when either does (an error, or cancellation).
  auto receive = QdReceive(pair, to, run);
  auto send = QdSend(pair, from, run);
  auto stream = check_detail::FirstToFinish(std::move(receive), std::move(send));
  // At the end of the run the clients are closed: the race then stops both branches at once.
  auto finished =
      co_await check_detail::RunBounded(std::move(stream), end, [&pair] { pair.Close(); });
  pair.Close();
  const asio::cancellation_state after = co_await asio::this_coro::cancellation_state;
  result.latency = run.Median();
  if (finished.timed_out) {
    if (run.delays == 0) {
      result.error = label + ": none of the " + std::to_string(run.sent) + " packets sent in the " +
                     check_detail::DurationText(options.run_for) + " run arrived at " + to.name;
      co_return result;
    }
    result.ok = true;
  } else if (after.cancelled() != asio::cancellation_type::none || !finished.exception.empty()) {
    result.error = label + ": cancelled";
  } else if (finished.value) {
    result.error = label + ": " + *finished.value;
  } else {
    result.error = label + ": the stream ended without a reason";
  }
  co_return result;
}

}  // namespace

// Runs the body with throw_if_cancelled off, so that cancellation ends the run with a result
// instead of an exception, then restores the caller's setting (it belongs to the whole coroutine
// thread, which may be the caller's).
asio::awaitable<ProbeResult> RunQueuingDelay(asio::io_context& io, derpmap::Node from,
                                             derpmap::Node to, QdCheckOptions options,
                                             std::function<void(double)> on_delay,
                                             std::function<void()> on_drop) {
  const bool throws = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto run = QueuingDelayRun(io, std::move(from), std::move(to), std::move(options),
                             std::move(on_delay), std::move(on_drop));
  ProbeResult result = co_await std::move(run);
  co_await asio::this_coro::throw_if_cancelled(throws);
  co_return result;
}

}  // namespace derpkit::probe
