// Counters of the relay's STUN responder (relay/stun_server.h) and their label sets, which are
// derper's. Written by every responder thread, once per recvmmsg batch; read by the metrics code
// on any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace derpkit::relay {

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

// Counters of one responder, shared by its threads. Every counter is exact (atomic adds); a
// Snapshot is not one consistent cut. The responder adds a batch's counts in one go, so the
// adds cost a few atomic operations per recvmmsg, not per datagram.
class StunStats {
 public:
  void Record(StunDisposition d, std::uint64_t n = 1) {
    if (n != 0) requests_[static_cast<std::size_t>(d)].fetch_add(n, std::memory_order_relaxed);
  }
  void RecordAddrFamily(StunAddrFamily f, std::uint64_t n = 1) {
    if (n != 0) addr_family_[static_cast<std::size_t>(f)].fetch_add(n, std::memory_order_relaxed);
  }
  // Records `n` replies sent `latency` after their batch was read.
  void ObserveResponses(std::chrono::nanoseconds latency, std::uint64_t n);
  StunStatsSnapshot Snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, kStunDispositionCount> requests_{};
  std::array<std::atomic<std::uint64_t>, kStunAddrFamilyCount> addr_family_{};
  std::array<std::atomic<std::uint64_t>, kStunResponseBounds.size() + 1> response_buckets_{};
  std::atomic<std::uint64_t> response_nanoseconds_sum_{0};
};

}  // namespace derpkit::relay
