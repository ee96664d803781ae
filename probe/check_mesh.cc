// The mesh and bw checks (checks.h), and the client-pair steps they share with qd
// (check_common.h): connect two clients, see ServerInfo first on each, and push small copies
// through with backoff until the relays have learnt the receiver, which replaces the reference's
// fixed 100 ms sleep (that raced the mesh). bw then streams its payload with at most 30 packets in
// flight and checks order and bytes.
//
// Thread affinity: coroutines on the io_context given. Each check keeps its clients and state in
// its own frame; the branches of its races borrow them, and a race resumes only after every
// branch has finished, so no operation outlives what it touches.
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <variant>

#include "lib/derp/protocol.h"
#include "lib/derpclient/node_options.h"
#include "probe/check_common.h"
#include "probe/checks.h"

namespace derpkit::probe {
namespace check_detail {
namespace {

constexpr std::size_t kCopyBytes = 8;  // the reference's meshProbePacketSize
constexpr std::chrono::milliseconds kFirstResend{50};
constexpr std::chrono::milliseconds kMaxResend{1000};
// Messages a receiver may skip while waiting (keepalives, PeerGone, ...) before calling it broken.
constexpr int kMaxIgnoredMessages = 100000;

Bytes RandomBytes(std::size_t n) {
  Bytes out(n);
  RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

}  // namespace

std::string ReceiveErrorText(const std::string& error) {
  // A relay that goes away closes TCP without a TLS close_notify; OpenSSL's words for that are
  // cryptic.
  if (error == "stream truncated") return "connection closed by the relay (TLS stream truncated)";
  return error;
}

namespace {

std::string MessageName(const derpclient::Message& m) {
  static constexpr const char* kNames[] = {
      "ServerInfo", "RecvPacket", "PeerGone", "PeerPresent", "Ping",
      "Pong",       "KeepAlive",  "Health",   "Restarting",  "an unknown frame"};
  return kNames[m.index()];
}

asio::awaitable<Expected<void, std::string>> ExpectServerInfo(derpclient::Client& client,
                                                              const derpmap::Node& node) {
  auto first = co_await client.Recv();
  if (!first) co_return Unexpected{node.name + ": reading ServerInfo: " + first.error()};
  if (!std::holds_alternative<derpclient::ServerInfoMessage>(*first)) {
    co_return Unexpected{node.name + ": expected ServerInfo first, got " + MessageName(*first)};
  }
  co_return Expected<void, std::string>{};
}

// One end of ConnectPair: connect `client` to `node`, then its first message must be ServerInfo.
asio::awaitable<Expected<void, std::string>> ConnectOne(derpclient::Client& client,
                                                        const derpmap::Node& node,
                                                        PairProgress& progress) {
  progress.step = "connecting to " + node.name;
  auto connected = co_await client.Connect();
  if (!connected) co_return Unexpected{"connect to " + node.name + ": " + connected.error()};
  progress.step = "waiting for ServerInfo from " + node.name;
  auto info = co_await ExpectServerInfo(client, node);
  co_return info;
}

// The sending half of DeliverOneCopy: a fresh copy, then a pause that doubles up to kMaxResend.
// Returns only on a send error or when cancelled (the receiving half won the race).
asio::awaitable<Expected<void, std::string>> SendCopies(PairClients& pair,
                                                        const derpmap::Node& from,
                                                        PairProgress& progress) {
  co_await asio::this_coro::throw_if_cancelled(false);
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer pause(executor);
  std::chrono::milliseconds wait = kFirstResend;
  const derp::PublicKey to_key = pair.receiver->public_key();
  for (;;) {
    progress.copies.push_back({RandomBytes(kCopyBytes), Clock::now()});
    const ByteSpan payload = progress.copies.back().payload;
    const std::error_code ec = co_await pair.sender->SendPacket(to_key, payload);
    const bool cancelled = co_await Cancelled();
    if (cancelled) co_return Unexpected{std::string("cancelled")};
    if (ec) co_return Unexpected{"send through " + from.name + ": " + ec.message()};
    pause.expires_after(wait);
    co_await pause.async_wait(net::kAsTuple);
    const bool cancelled_in_pause = co_await Cancelled();
    if (cancelled_in_pause) co_return Unexpected{std::string("cancelled")};
    wait = std::min(wait * 2, kMaxResend);
  }
}

// The receiving half: waits for any copy from the sender's key.
asio::awaitable<Expected<void, std::string>> ReceiveCopy(PairClients& pair, const derpmap::Node& to,
                                                         PairProgress& progress) {
  co_await asio::this_coro::throw_if_cancelled(false);
  const derp::PublicKey from_key = pair.sender->public_key();
  for (int i = 0; i < kMaxIgnoredMessages; ++i) {
    auto message = co_await pair.receiver->Recv();
    if (!message) {
      co_return Unexpected{"receive at " + to.name + ": " + ReceiveErrorText(message.error())};
    }
    const auto* packet = std::get_if<derpclient::RecvPacketMessage>(&*message);
    if (packet == nullptr) continue;
    const auto copy =
        std::find_if(progress.copies.begin(), progress.copies.end(),
                     [&](const PairProgress::Copy& c) { return c.payload == packet->packet; });
    if (copy == progress.copies.end()) continue;
    if (packet->src != from_key) {
      co_return Unexpected{"the packet arrived at " + to.name + " from " + packet->src.ToText() +
                           ", not from the sender " + from_key.ToText()};
    }
    progress.latency = Clock::now() - copy->sent_at;
    progress.arrived = true;
    co_return Expected<void, std::string>{};
  }
  co_return Unexpected{"receive at " + to.name + ": " + std::to_string(kMaxIgnoredMessages) +
                       " other messages and none of our packets"};
}

}  // namespace

void PairClients::Close() {
  if (sender) sender->Close();
  if (receiver) receiver->Close();
}

bool PairProgress::IsCopy(ByteSpan packet) const {
  return std::any_of(copies.begin(), copies.end(), [&](const Copy& c) {
    return c.payload.size() == packet.size() &&
           std::equal(c.payload.begin(), c.payload.end(), packet.begin());
  });
}

std::string PairLabel(const derpmap::Node& from, const derpmap::Node& to) {
  return from.name + "→" + to.name;
}

PairClients MakePairClients(asio::io_context& io, const derpmap::Node& from,
                            const derpmap::Node& to, const DerpCheckOptions& options,
                            bool is_prober) {
  derpclient::NodeClientSettings settings;
  settings.ca_file = options.ca_file;
  settings.connect_timeout = options.timeout;
  auto make = [&](const derpmap::Node& node, const std::optional<derp::PrivateKey>& key) {
    derpclient::ClientOptions o =
        derpclient::NodeClientOptions(node, key ? *key : derp::PrivateKey::Generate(), settings);
    o.is_prober = is_prober;
    o.mesh_key = options.mesh_key;
    return std::make_unique<derpclient::Client>(io, std::move(o));
  };
  PairClients pair;
  pair.sender = make(from, options.sender_key);
  pair.receiver = make(to, options.receiver_key);
  return pair;
}

asio::awaitable<Expected<void, std::string>> ConnectPair(PairClients& pair,
                                                         const derpmap::Node& from,
                                                         const derpmap::Node& to,
                                                         PairProgress& progress) {
  auto sender = co_await ConnectOne(*pair.sender, from, progress);
  if (!sender) co_return sender;
  auto receiver = co_await ConnectOne(*pair.receiver, to, progress);
  co_return receiver;
}

asio::awaitable<Expected<void, std::string>> DeliverOneCopy(PairClients& pair,
                                                            const derpmap::Node& from,
                                                            const derpmap::Node& to,
                                                            PairProgress& progress) {
  progress.step = "sending a packet to " + to.name;
  auto receive = ReceiveCopy(pair, to, progress);
  auto send = SendCopies(pair, from, progress);
  auto race = FirstToFinish(std::move(receive), std::move(send));
  auto delivered = co_await std::move(race);
  co_return delivered;
}

asio::awaitable<Expected<void, std::string>> ConnectAndDeliver(PairClients& pair,
                                                               const derpmap::Node& from,
                                                               const derpmap::Node& to,
                                                               PairProgress& progress) {
  co_await asio::this_coro::throw_if_cancelled(false);
  auto connected = co_await ConnectPair(pair, from, to, progress);
  if (!connected) co_return connected;
  auto delivered = co_await DeliverOneCopy(pair, from, to, progress);
  co_return delivered;
}

std::string NoCopyArrivedText(const derpmap::Node& from, const derpmap::Node& to,
                              const PairProgress& progress, Clock::time_point now) {
  const std::size_t n = progress.copies.size();
  std::string text = "sent " + std::to_string(n) + (n == 1 ? " copy" : " copies");
  if (n > 0) text += " over " + DurationText(now - progress.copies.front().sent_at);
  if (from.name == to.name) {
    return text + ", none came back through " + to.name +
           ": the relay accepted them but delivered none (overloaded, or dropping packets?)";
  }
  return text + ", none arrived at " + to.name + ": are " + from.name + " and " + to.name +
         " meshed (--mesh-with) with the same mesh key?";
}

std::string PairTimeoutText(const derpmap::Node& from, const derpmap::Node& to,
                            const PairProgress& progress, std::chrono::milliseconds timeout) {
  if (!progress.copies.empty() && !progress.arrived) {
    return NoCopyArrivedText(from, to, progress, Clock::now());
  }
  return "timed out after " + DurationText(timeout) + " " + progress.step;
}

std::string PairFailureText(const derpmap::Node& from, const derpmap::Node& to,
                            const PairProgress& progress,
                            const Bounded<Expected<void, std::string>>& bounded,
                            const asio::cancellation_state& state,
                            std::chrono::milliseconds timeout) {
  if (bounded.timed_out) return PairTimeoutText(from, to, progress, timeout);
  if (state.cancelled() != asio::cancellation_type::none || !bounded.exception.empty()) {
    return "cancelled while " + progress.step;
  }
  if (bounded.value && !*bounded.value) return bounded.value->error();
  return "ended early while " + progress.step;
}

}  // namespace check_detail

namespace {

using check_detail::Clock;
using check_detail::PairClients;
using check_detail::PairProgress;

// The most bw packets sent and not yet received: just under the relay's 32-packet queue.
constexpr int kMaxInFlight = 30;

// bw's payload, generated rather than stored so that a large --bw-probe-size-bytes costs no
// memory: packet i is a SplitMix64 stream seeded from a per-run random seed and i.
struct BwPayload {
  std::uint64_t seed = 0;
  std::uint64_t size_bytes = 0;
  std::uint64_t packets = 0;

  std::size_t PacketBytes(std::uint64_t i) const {
    const std::uint64_t start = i * derp::kMaxPacketSize;
    return static_cast<std::size_t>(
        std::min<std::uint64_t>(derp::kMaxPacketSize, size_bytes - start));
  }
  void Fill(std::uint64_t i, Bytes& out) const {
    out.resize(PacketBytes(i));
    std::uint64_t state = seed ^ (i * 0x9e3779b97f4a7c15ULL);
    for (std::size_t at = 0; at < out.size(); at += 8) {
      state += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      z ^= z >> 31;
      const std::size_t n = std::min<std::size_t>(8, out.size() - at);
      std::memcpy(out.data() + at, &z, n);
    }
  }
};

struct BwState {
  explicit BwState(asio::io_context& io) : wake(io, asio::steady_timer::time_point::max()) {}
  BwPayload payload;
  std::uint64_t next_to_send = 0;
  std::uint64_t received = 0;
  std::uint64_t bytes_received = 0;
  int in_flight = 0;
  bool started = false;
  Clock::time_point start{};
  Clock::time_point end{};
  asio::steady_timer wake;  // cancelled by the receiver on every arrival: "room in flight"
};

// Sends every packet, waiting for room whenever kMaxInFlight are on their way. Returns only on a
// send error or when cancelled (the receiver finished), so a finished sender never ends the race.
asio::awaitable<Expected<void, std::string>> BwSend(PairClients& pair, const derpmap::Node& from,
                                                    BwState& bw) {
  co_await asio::this_coro::throw_if_cancelled(false);
  const derp::PublicKey to_key = pair.receiver->public_key();
  Bytes packet;
  for (;;) {
    const bool cancelled = co_await check_detail::Cancelled();
    if (cancelled) co_return Unexpected{std::string("cancelled")};
    if (bw.next_to_send < bw.payload.packets && bw.in_flight < kMaxInFlight) {
      bw.payload.Fill(bw.next_to_send, packet);
      if (!bw.started) {
        bw.started = true;
        bw.start = Clock::now();
      }
      ++bw.in_flight;
      ++bw.next_to_send;
      const std::error_code ec = co_await pair.sender->SendPacket(to_key, packet);
      if (ec) {
        co_return Unexpected{"sending packet " + std::to_string(bw.next_to_send) + " of " +
                             std::to_string(bw.payload.packets) + " through " + from.name + ": " +
                             ec.message()};
      }
      continue;
    }
    co_await bw.wake.async_wait(net::kAsTuple);  // woken by an arrival, or cancelled
  }
}

// Receives the packets in order and compares them byte for byte; straggling warm-up copies are
// skipped.
asio::awaitable<Expected<void, std::string>> BwReceive(PairClients& pair, const derpmap::Node& to,
                                                       const PairProgress& progress, BwState& bw) {
  co_await asio::this_coro::throw_if_cancelled(false);
  const derp::PublicKey from_key = pair.sender->public_key();
  Bytes expected;
  while (bw.received < bw.payload.packets) {
    auto message = co_await pair.receiver->Recv();
    if (!message) {
      co_return Unexpected{"receive at " + to.name + " after " + std::to_string(bw.received) +
                           " of " + std::to_string(bw.payload.packets) +
                           " packets: " + check_detail::ReceiveErrorText(message.error())};
    }
    const auto* packet = std::get_if<derpclient::RecvPacketMessage>(&*message);
    if (packet == nullptr || packet->src != from_key || progress.IsCopy(packet->packet)) continue;
    bw.payload.Fill(bw.received, expected);
    if (packet->packet != expected) {
      co_return Unexpected{"packet " + std::to_string(bw.received + 1) + " of " +
                           std::to_string(bw.payload.packets) + " arrived at " + to.name +
                           " different from what was sent (" +
                           std::to_string(packet->packet.size()) + " bytes, expected " +
                           std::to_string(expected.size()) + "): out of order or corrupted"};
    }
    ++bw.received;
    bw.bytes_received += packet->packet.size();
    --bw.in_flight;
    bw.end = Clock::now();
    bw.wake.cancel();
  }
  co_return Expected<void, std::string>{};
}

asio::awaitable<Expected<void, std::string>> BwBody(PairClients& pair, const derpmap::Node& from,
                                                    const derpmap::Node& to, PairProgress& progress,
                                                    BwState& bw) {
  co_await asio::this_coro::throw_if_cancelled(false);
  auto ready = co_await check_detail::ConnectAndDeliver(pair, from, to, progress);
  if (!ready) co_return ready;
  progress.step = "sending " + std::to_string(bw.payload.size_bytes) + " bytes to " + to.name;
  auto receive = BwReceive(pair, to, progress, bw);
  auto send = BwSend(pair, from, bw);
  auto race = check_detail::FirstToFinish(std::move(receive), std::move(send));
  auto finished = co_await std::move(race);
  co_return finished;
}

asio::awaitable<ProbeResult> MeshCheck(asio::io_context& io, derpmap::Node from, derpmap::Node to,
                                       DerpCheckOptions options) {
  ProbeResult result;
  const std::string label = check_detail::PairLabel(from, to);
  PairClients pair = check_detail::MakePairClients(io, from, to, options, /*is_prober=*/true);
  PairProgress progress;
  auto body = check_detail::ConnectAndDeliver(pair, from, to, progress);
  auto bounded = co_await check_detail::RunBounded(std::move(body), Clock::now() + options.timeout,
                                                   [&pair] { pair.Close(); });
  pair.Close();
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  if (progress.arrived) {
    result.ok = true;
    result.latency = progress.latency;
  } else {
    result.error =
        label + ": " +
        check_detail::PairFailureText(from, to, progress, bounded, state, options.timeout);
  }
  co_return result;
}

asio::awaitable<ProbeResult> BandwidthCheck(asio::io_context& io, derpmap::Node from,
                                            derpmap::Node to, std::uint64_t size_bytes,
                                            DerpCheckOptions options) {
  ProbeResult result;
  const std::string label = check_detail::PairLabel(from, to);
  if (size_bytes == 0) {
    result.error = label + ": the bandwidth probe needs a size above 0 bytes";
    co_return result;
  }
  PairClients pair = check_detail::MakePairClients(io, from, to, options, /*is_prober=*/false);
  PairProgress progress;
  BwState bw(io);
  RAND_bytes(reinterpret_cast<unsigned char*>(&bw.payload.seed), sizeof bw.payload.seed);
  bw.payload.size_bytes = size_bytes;
  bw.payload.packets = (size_bytes + derp::kMaxPacketSize - 1) / derp::kMaxPacketSize;

  auto body = BwBody(pair, from, to, progress, bw);
  auto bounded = co_await check_detail::RunBounded(std::move(body), Clock::now() + options.timeout,
                                                   [&pair] { pair.Close(); });
  pair.Close();
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;

  const bool done = bw.received == bw.payload.packets;
  result.bw_bytes = bw.bytes_received;
  if (bw.started) result.bw_transfer_time = (done ? bw.end : Clock::now()) - bw.start;
  if (done) {
    result.ok = true;
    result.latency = result.bw_transfer_time;
    co_return result;
  }
  result.error = label + ": " +
                 check_detail::PairFailureText(from, to, progress, bounded, state, options.timeout);
  if (bw.started) {
    result.error += " (" + std::to_string(bw.bytes_received) + " of " + std::to_string(size_bytes) +
                    " bytes had arrived)";
  }
  co_return result;
}

}  // namespace

// The public checks run their bodies with throw_if_cancelled off, so that a cancelled run ends
// with a result instead of an exception, and then restore the caller's setting (it belongs to
// the whole coroutine thread, which may be the caller's).
asio::awaitable<ProbeResult> CheckMesh(asio::io_context& io, derpmap::Node from, derpmap::Node to,
                                       DerpCheckOptions options) {
  const bool throws = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto check = MeshCheck(io, std::move(from), std::move(to), std::move(options));
  ProbeResult result = co_await std::move(check);
  co_await asio::this_coro::throw_if_cancelled(throws);
  co_return result;
}

asio::awaitable<ProbeResult> CheckBandwidth(asio::io_context& io, derpmap::Node from,
                                            derpmap::Node to, std::uint64_t size_bytes,
                                            DerpCheckOptions options) {
  const bool throws = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto check = BandwidthCheck(io, std::move(from), std::move(to), size_bytes, std::move(options));
  ProbeResult result = co_await std::move(check);
  co_await asio::this_coro::throw_if_cancelled(throws);
  co_return result;
}

}  // namespace derpkit::probe
