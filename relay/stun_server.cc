#include "relay/stun_server.h"

#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <system_error>

#include "lib/stun/stun.h"
#include "lib/util/netaddr.h"

namespace derpkit::relay {
namespace {

using asio::ip::udp;

// Tailscale requests are 40 bytes and generic ones rarely pass 150, so the kernel writes each
// datagram into a small slot first: 64 slots of 256 bytes, 16 KiB that stay in cache. A longer
// request (ICE agents add attributes; derper reads up to 64 KiB) continues, through a second
// iovec, into that slot's own region of a per-server overflow arena (64 x 64 KiB of address
// space, mapped lazily: only pages that long datagrams reach ever become memory). Answer() copies
// the slot's bytes in front of the tail, so the parser sees one contiguous request. A shared
// 64 KiB overflow would not do: recvmmsg fills every message of a batch before we parse any.
constexpr std::size_t kBatchSize = 64;
constexpr std::size_t kSlotBytes = 256;
// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6 without jumbograms); a
// datagram that does not fit is truncated by the kernel (MSG_TRUNC) and counted as not_stun.
constexpr std::size_t kMaxDatagramBytes = 64 * 1024;
static_assert(kSlotBytes >= stun::kMaxResponseSize);

// Batches handled per wake-up before yielding the thread to other handlers on the io_context.
constexpr int kBatchesPerTurn = 8;

// derper sleeps this long after a read error so that a persistent error cannot spin the CPU.
constexpr std::chrono::seconds kReadErrorBackoff{1};

struct Peer {
  netaddr::IpAddress ip;
  std::uint16_t port = 0;
};

std::optional<Peer> PeerFromSockaddr(const sockaddr_storage& ss) {
  // memcpy rather than casting the storage: the struct types differ and may not alias.
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin;
    std::memcpy(&sin, &ss, sizeof sin);
    std::array<std::byte, 4> b;
    std::memcpy(b.data(), &sin.sin_addr, b.size());
    return Peer{netaddr::IpAddress::V4(b), ntohs(sin.sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &ss, sizeof sin6);
    std::array<std::byte, 16> b;
    std::memcpy(b.data(), &sin6.sin6_addr, b.size());
    return Peer{netaddr::IpAddress::V6(b), ntohs(sin6.sin6_port)};
  }
  return std::nullopt;
}

bool IsIpv6Unavailable(const asio::error_code& ec) {
  return ec == asio::error::address_family_not_supported ||
         ec == std::error_code(EADDRNOTAVAIL, std::system_category());
}

// Opens and binds `socket`; returns the first error, leaving the socket closed.
asio::error_code OpenAndBind(udp::socket& socket, const udp::endpoint& at) {
  asio::error_code ec;
  socket.open(at.protocol(), ec);
  if (ec) return ec;
  if (at.address().is_v6() && at.address().is_unspecified()) {
    // Dual-stack, like derper's ":3478": IPv4 clients then arrive as ::ffff:a.b.c.d.
    socket.set_option(asio::ip::v6_only(false), ec);
  }
  if (!ec) socket.bind(at, ec);
  if (ec) {
    asio::error_code ignored;
    socket.close(ignored);
  }
  return ec;
}

}  // namespace

struct StunServer::Batch {
  std::array<std::array<std::byte, kSlotBytes>, kBatchSize> slots{};
  std::array<sockaddr_storage, kBatchSize> peers{};
  // Per message: the slot, then the slot's overflow region past its first kSlotBytes (where
  // Answer() puts the slot's copy).
  std::array<std::array<iovec, 2>, kBatchSize> recv_iov{};
  std::array<mmsghdr, kBatchSize> recv_msgs{};
  std::array<iovec, kBatchSize> send_iov{};
  std::array<mmsghdr, kBatchSize> send_msgs{};
  // kBatchSize regions of kMaxDatagramBytes. mmap rather than new[]: anonymous pages are
  // guaranteed untouched until written, whatever the allocator's thresholds.
  std::byte* overflow = nullptr;
  static constexpr std::size_t kOverflowBytes = kBatchSize * kMaxDatagramBytes;

  Batch() {
    void* arena = ::mmap(nullptr, kOverflowBytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
      throw std::system_error(errno, std::system_category(), "STUN receive buffers");
    }
    overflow = static_cast<std::byte*>(arena);
    for (std::size_t i = 0; i < kBatchSize; ++i) {
      recv_iov[i][0] = {slots[i].data(), slots[i].size()};
      recv_iov[i][1] = {Region(i) + kSlotBytes, kMaxDatagramBytes - kSlotBytes};
      recv_msgs[i].msg_hdr.msg_iov = recv_iov[i].data();
      recv_msgs[i].msg_hdr.msg_iovlen = recv_iov[i].size();
      recv_msgs[i].msg_hdr.msg_name = &peers[i];
    }
  }
  ~Batch() { ::munmap(overflow, kOverflowBytes); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  std::byte* Region(std::size_t i) const { return overflow + i * kMaxDatagramBytes; }

  // The datagram received into message `i`, `size` bytes, as one span: the slot itself when it
  // fit, else the overflow region with the slot's bytes copied in front of the tail.
  ByteSpan Request(std::size_t i, std::size_t size) {
    if (size <= kSlotBytes) return std::span(slots[i]).first(size);
    std::memcpy(Region(i), slots[i].data(), kSlotBytes);
    return ByteSpan(Region(i), size);
  }
};

void StunStats::ObserveResponses(std::chrono::nanoseconds latency, std::uint64_t n) {
  const double seconds = std::chrono::duration<double>(latency).count();
  std::size_t i = 0;
  while (i < kStunResponseBounds.size() && seconds > kStunResponseBounds[i]) ++i;
  auto add = [](std::atomic<std::uint64_t>& a, std::uint64_t v) {
    a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  };
  add(response_buckets_[i], n);
  add(response_nanoseconds_sum_, static_cast<std::uint64_t>(latency.count()) * n);
}

StunStatsSnapshot StunStats::Snapshot() const {
  StunStatsSnapshot s;
  for (std::size_t i = 0; i < s.response_buckets.size(); ++i) {
    s.response_buckets[i] = response_buckets_[i].load(std::memory_order_relaxed);
  }
  s.response_seconds_sum =
      static_cast<double>(response_nanoseconds_sum_.load(std::memory_order_relaxed)) / 1e9;
  for (std::size_t i = 0; i < kStunDispositionCount; ++i) {
    s.requests[i] = requests_[i].load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < kStunAddrFamilyCount; ++i) {
    s.addr_family[i] = addr_family_[i].load(std::memory_order_relaxed);
  }
  return s;
}

StunServer::StunServer(asio::io_context& io, const StunServerConfig& config, StunStats& stats)
    : socket_(io),
      backoff_(io),
      stats_(stats),
      strict_(config.strict),
      batch_(std::make_unique<Batch>()) {
  asio::error_code ec;
  udp::endpoint at;
  if (config.listen_host.empty()) {
    at = udp::endpoint(udp::v6(), config.port);
    ec = OpenAndBind(socket_, at);
    if (IsIpv6Unavailable(ec)) {
      at = udp::endpoint(udp::v4(), config.port);
      ec = OpenAndBind(socket_, at);
    }
  } else {
    const asio::ip::address addr = asio::ip::make_address(config.listen_host, ec);
    if (ec) {
      throw std::system_error(
          ec, "STUN listen address \"" + config.listen_host + "\" is not an IP address");
    }
    at = udp::endpoint(addr, config.port);
    ec = OpenAndBind(socket_, at);
  }
  if (ec) {
    const std::string host = at.address().to_string();
    throw std::system_error(
        ec, "cannot listen for STUN on UDP " + netaddr::JoinHostPort(host, config.port));
  }
  socket_.non_blocking(true);
  port_ = socket_.local_endpoint().port();
}

StunServer::~StunServer() { Stop(); }

void StunServer::Start() {
  assert(!stopped_);
  WaitReadable();
}

void StunServer::Stop() {
  stopped_ = true;
  asio::error_code ignored;
  backoff_.cancel();
  socket_.close(ignored);
}

void StunServer::WaitReadable() {
  socket_.async_wait(udp::socket::wait_read, [this](const asio::error_code& ec) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      BackOffAfterReadError();
      return;
    }
    Drain();
  });
}

void StunServer::BackOffAfterReadError() {
  stats_.Record(StunDisposition::kReadError);
  backoff_.expires_after(kReadErrorBackoff);
  backoff_.async_wait([this](const asio::error_code& ec) {
    if (stopped_ || ec) return;
    Drain();
  });
}

// Reads until the socket is empty, because Asio's reactor is edge-triggered: we only re-arm the
// wait once recvmmsg has said EAGAIN. After kBatchesPerTurn full batches we yield through post()
// so that a flood cannot starve other work on this io_context.
void StunServer::Drain() {
  Batch& b = *batch_;
  const int fd = socket_.native_handle();
  for (int turn = 0; turn < kBatchesPerTurn; ++turn) {
    for (mmsghdr& m : b.recv_msgs) {
      m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      m.msg_hdr.msg_flags = 0;
    }
    const int received = ::recvmmsg(fd, b.recv_msgs.data(), kBatchSize, MSG_DONTWAIT, nullptr);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return WaitReadable();
      return BackOffAfterReadError();
    }
    const auto read_at = std::chrono::steady_clock::now();

    unsigned replies = 0;
    for (int i = 0; i < received; ++i) {
      msghdr& in = b.recv_msgs[i].msg_hdr;
      const std::size_t size =
          Answer(static_cast<std::size_t>(i), b.recv_msgs[i].msg_len, in.msg_flags);
      if (size == 0) continue;
      b.send_iov[replies] = {b.slots[i].data(), size};
      msghdr& out = b.send_msgs[replies].msg_hdr;
      out = {};
      out.msg_name = &b.peers[i];
      out.msg_namelen = in.msg_namelen;
      out.msg_iov = &b.send_iov[replies];
      out.msg_iovlen = 1;
      ++replies;
    }

    // sendmmsg stops at the first failing datagram and reports the ones before it; the failing
    // one is counted and dropped, the rest retried.
    unsigned done = 0;
    while (done < replies) {
      const int sent = ::sendmmsg(fd, &b.send_msgs[done], replies - done, MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        stats_.Record(StunDisposition::kWriteError);
        ++done;
        continue;
      }
      stats_.Record(StunDisposition::kSuccess, static_cast<std::uint64_t>(sent));
      stats_.ObserveResponses(std::chrono::steady_clock::now() - read_at,
                              static_cast<std::uint64_t>(sent));
      done += static_cast<unsigned>(sent);
    }
  }
  asio::post(socket_.get_executor(), [this] {
    if (!stopped_) Drain();
  });
}

std::size_t StunServer::Answer(std::size_t i, std::size_t size, int msg_flags) {
  if ((msg_flags & MSG_TRUNC) != 0) {
    stats_.Record(StunDisposition::kNotStun);
    return 0;
  }
  Batch& b = *batch_;
  const auto request = stun::ParseBindingRequest(b.Request(i, size));
  const std::optional<Peer> from = PeerFromSockaddr(b.peers[i]);
  if (!request || (strict_ && !request->is_tailscale) || !from) {
    stats_.Record(StunDisposition::kNotStun);
    return 0;
  }
  // On the dual-stack socket IPv4 clients show up as ::ffff:a.b.c.d. derper answers those with
  // family 0x02 and the mapped address (44 bytes); we answer family 0x01 with the plain IPv4
  // address (32 bytes), as a specific-address derper does. Tailscale clients accept both, and
  // generic STUN tools expect the native form.
  const netaddr::IpAddress ip = from->ip.Unmap();
  stats_.RecordAddrFamily(ip.is_v4() ? StunAddrFamily::kIpv4 : StunAddrFamily::kIpv6);
  // The reply overwrites the request's slot: txid was copied out by the parser.
  return stun::WriteBindingResponse(b.slots[i], request->txid, ip, from->port);
}

}  // namespace derpkit::relay
