// The relay's STUN responder: one UDP socket that answers RFC 5389 Binding Requests with the
// sender's address (derp-protocol.md §11). Stateless; the codec lives in lib/stun.
#pragma once

#include <sys/socket.h>

#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace derpkit::relay {

struct StunServerConfig {
  // An IP literal to bind to; empty means the wildcard, dual-stack if the host has IPv6 ([::]
  // with IPV6_V6ONLY off), else 0.0.0.0. Host names are not resolved.
  std::string listen_host = "";
  std::uint16_t port = 3478;  // 0 picks an ephemeral port (tests); read it back with port()
  // true: answer only what derper answers (Tailscale's 40-byte request with SOFTWARE "tailnode"
  // and a valid FINGERPRINT). false: answer any valid Binding Request, so generic STUN tools
  // (coturn's turnutils_stunclient, browsers) work too.
  bool strict = false;
};

// What happened to one received datagram; derper's stun_requests{disposition} label values.
enum class StunDisposition : std::uint8_t { kSuccess, kNotStun, kWriteError, kReadError };
inline constexpr std::size_t kStunDispositionCount = 4;
inline constexpr std::array<std::string_view, kStunDispositionCount> kStunDispositionLabel = {
    "success", "not_stun", "write_error", "read_error"};

// The family of an answered client, after unmapping ::ffff:a.b.c.d; derper's
// stun_addrfamily{family} label values. (derper itself counts mapped IPv4 clients of its
// dual-stack socket as ipv6; we count what the client is.)
enum class StunAddrFamily : std::uint8_t { kIpv4, kIpv6 };
inline constexpr std::size_t kStunAddrFamilyCount = 2;
inline constexpr std::array<std::string_view, kStunAddrFamilyCount> kStunAddrFamilyLabel = {"ipv4",
                                                                                            "ipv6"};

// Upper bounds in seconds of the responder-latency histogram: the time from recvmmsg returning a
// batch to the sendmmsg that sent a reply returning, per reply.
inline constexpr std::array<double, 12> kStunResponseBounds = {
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1};

struct StunStatsSnapshot {
  std::array<std::uint64_t, kStunDispositionCount> requests{};
  std::array<std::uint64_t, kStunAddrFamilyCount> addr_family{};
  // Replies per latency bucket (not cumulative; the last is +Inf), and the sum of their latencies.
  std::array<std::uint64_t, kStunResponseBounds.size() + 1> response_buckets{};
  double response_seconds_sum = 0;

  std::uint64_t Requests(StunDisposition d) const { return requests[static_cast<std::size_t>(d)]; }
  std::uint64_t AddrFamily(StunAddrFamily f) const {
    return addr_family[static_cast<std::size_t>(f)];
  }
};

// Counters of one StunServer. Written by the server's thread only; read from any thread
// (relaxed atomics: each counter is exact, a Snapshot is not one consistent cut).
class StunStats {
 public:
  void Record(StunDisposition d, std::uint64_t n = 1) {
    requests_[static_cast<std::size_t>(d)].fetch_add(n, std::memory_order_relaxed);
  }
  void RecordAddrFamily(StunAddrFamily f) {
    addr_family_[static_cast<std::size_t>(f)].fetch_add(1, std::memory_order_relaxed);
  }
  // Records `n` replies sent `latency` after their batch was read. The one writer's relaxed
  // load+store, not a locked add: this runs once per sendmmsg.
  void ObserveResponses(std::chrono::nanoseconds latency, std::uint64_t n);
  StunStatsSnapshot Snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, kStunDispositionCount> requests_{};
  std::array<std::atomic<std::uint64_t>, kStunAddrFamilyCount> addr_family_{};
  std::array<std::atomic<std::uint64_t>, kStunResponseBounds.size() + 1> response_buckets_{};
  std::atomic<std::uint64_t> response_nanoseconds_sum_{0};
};

// Answers Binding Requests on one UDP socket. Owns the socket; borrows `io` and `stats`, which
// must outlive it.
//
// Threading: the constructor may run on any thread; Start(), Stop() and all I/O run on the thread
// running `io` (call Stop() from elsewhere through asio::post). Destroy the server only when no
// handler of it can run any more: after Stop() and the io_context has drained, or after the
// io_context has stopped for good.
//
// Hot path: readiness via async_wait, then recvmmsg/sendmmsg in batches on the non-blocking
// socket; responses are written over the request bytes in preallocated buffers, so nothing is
// allocated per datagram. Requests up to a full datagram (64 KiB) are answered: small ones stay
// in small slots, longer ones continue into a lazily mapped per-server overflow arena.
class StunServer {
 public:
  // Opens and binds the socket, so the server is reachable (datagrams queue in the kernel) once
  // this returns. Throws std::system_error naming the address if the address is not an IP
  // literal or the socket cannot be opened or bound.
  StunServer(asio::io_context& io, const StunServerConfig& config, StunStats& stats);
  ~StunServer();
  StunServer(const StunServer&) = delete;
  StunServer& operator=(const StunServer&) = delete;

  // Returns the bound port (the ephemeral one when the config said 0).
  std::uint16_t port() const { return port_; }

  // Starts answering. Call once.
  void Start();
  // Stops answering and closes the socket; pending handlers finish with operation_aborted.
  // Idempotent. The server cannot be restarted.
  void Stop();

 private:
  struct Batch;  // recvmmsg/sendmmsg buffers, defined in the .cc

  void WaitReadable();
  void Drain();
  void BackOffAfterReadError();
  // Parses datagram `i` of the batch (`size` bytes) and writes the reply over its slot; returns
  // the reply size, or 0 when there is nothing to send.
  std::size_t Answer(std::size_t i, std::size_t size, int msg_flags);

  asio::ip::udp::socket socket_;
  asio::steady_timer backoff_;
  StunStats& stats_;
  const bool strict_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  std::unique_ptr<Batch> batch_;
};

}  // namespace derpkit::relay
