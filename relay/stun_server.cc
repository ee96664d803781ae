// StunServer: the responder threads' batch loop and how helpers are called in (see
// stun_server.h for the threading).
#include "relay/stun_server.h"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <span>
#include <system_error>

#include "lib/stun/stun.h"
#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"

namespace derpkit::relay {
namespace {

// Tailscale requests are 40 bytes and generic ones rarely pass 150, so the kernel writes each
// datagram into a small slot first: 64 slots of 256 bytes, 16 KiB that stay in cache. A longer
// request (ICE agents add attributes; derper reads up to 64 KiB) continues, through a second
// iovec, into that slot's own region of a per-thread overflow arena (64 x 64 KiB of address
// space, mapped lazily: only pages that long datagrams reach ever become memory). Answer() copies
// the slot's bytes in front of the tail, so the parser sees one contiguous request. A shared
// 64 KiB overflow would not do: recvmmsg fills every message of a batch before we parse any.
constexpr std::size_t kBatchSize = 64;
constexpr std::size_t kSlotBytes = 256;
// Larger than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6 without jumbograms); a
// datagram that does not fit is truncated by the kernel (MSG_TRUNC) and counted as not_stun.
constexpr std::size_t kMaxDatagramBytes = 64 * 1024;
static_assert(kSlotBytes >= stun::kMaxResponseSize);

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

// One batch's counts, added to the shared StunStats once per batch.
struct StunServer::Tally {
  std::uint64_t not_stun = 0;
  std::array<std::uint64_t, kStunAddrFamilyCount> family{};
};

StunServer::Reader::Reader() : batch(std::make_unique<Batch>()) {}
StunServer::Reader::~Reader() = default;

StunServer::StunServer(const StunServerConfig& config, StunStats& stats)
    : stats_(stats), strict_(config.strict) {
  StunSocket socket = OpenStunSocket(config.listen_host, config.port);
  fd_ = std::move(socket.fd);
  port_ = socket.port;
  const int threads = std::max(config.threads, 1);
  for (int i = 0; i < threads; ++i) readers_.push_back(std::make_unique<Reader>());
}

StunServer::~StunServer() { Stop(); }

std::uint64_t StunServer::answered(std::size_t i) const {
  return readers_.at(i)->answered.load(std::memory_order_relaxed);
}

std::uint64_t StunServer::calls_to_help(std::size_t i) const {
  return readers_.at(i)->calls_to_help.load(std::memory_order_relaxed);
}

void StunServer::Start() {
  std::lock_guard lock(stop_mu_);
  assert(!started_);
  if (started_ || stopping_.load()) return;
  started_ = true;
  for (std::size_t i = 0; i < readers_.size(); ++i) {
    Reader& r = *readers_[i];
    if (i == 0) {
      r.thread = std::thread([this] { RunFirst(); });
    } else {
      r.thread = std::thread([this, i] { RunHelper(i); });
    }
    // "stun-N" in top -H and /proc/PID/task/*/comm (at most 15 characters).
    const std::string name = "stun-" + std::to_string(i);
    ::pthread_setname_np(r.thread.native_handle(), name.c_str());
  }
}

void StunServer::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopping_.exchange(true)) return;
  }
  stop_cv_.notify_all();
  // A UDP socket's SHUT_RD fails with ENOTCONN, but Linux still marks the socket shut down and
  // wakes its readers: the blocked recvmmsg returns at once, and so does every later one. So the
  // first thread needs no receive timeout, and an idle responder never wakes.
  ::shutdown(fd_.get(), SHUT_RD);
  // A parked helper wakes, sees `stopping_` and ends (a surplus permit is harmless).
  for (auto& r : readers_) r->wake.release();
  for (auto& r : readers_) {
    if (r->thread.joinable()) r->thread.join();
  }
  fd_.Reset();
}

bool StunServer::BackOffAfterReadError() {
  std::unique_lock lock(stop_mu_);
  return stop_cv_.wait_for(lock, kReadErrorBackoff, [this] { return stopping_.load(); });
}

bool StunServer::FallingBehind(Reader& r) const {
  std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo{};
  socklen_t len = sizeof meminfo;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_MEMINFO, meminfo.data(), &len) != 0) return true;
  const std::uint32_t drops = meminfo[SK_MEMINFO_DROPS];
  const bool dropped = drops != r.drops_seen;
  r.drops_seen = drops;
  return dropped || std::uint64_t{meminfo[SK_MEMINFO_RMEM_ALLOC]} * 2 >=
                        std::uint64_t{meminfo[SK_MEMINFO_RCVBUF]};
}

void StunServer::MaybeCallInHelper(Reader& caller, std::size_t i) {
  if (i >= readers_.size()) return;
  Reader& helper = *readers_[i];
  if (helper.helping.load(std::memory_order_relaxed) || !FallingBehind(caller)) return;
  if (helper.helping.exchange(true)) return;
  helper.calls_to_help.store(helper.calls_to_help.load(std::memory_order_relaxed) + 1,
                             std::memory_order_relaxed);
  helper.wake.release();
}

// The first thread waits for datagrams. When it reads a full batch and the socket says it is
// falling behind, it calls in the second thread, which in turn may call in the third, and so on.
void StunServer::RunFirst() {
  Reader& r = *readers_[0];
  for (;;) {
    const ReadResult result = ReadAndAnswer(r, MSG_WAITFORONE);
    if (stopping_.load(std::memory_order_relaxed)) return;
    if (result == ReadResult::kFull) MaybeCallInHelper(r, 1);
    if (result == ReadResult::kError && BackOffAfterReadError()) return;
  }
}

// A helper drains the socket without blocking while its batches come back full, and parks as
// soon as one does not: the queue was empty at that moment, and the first thread is waiting.
void StunServer::RunHelper(std::size_t i) {
  Reader& r = *readers_[i];
  for (;;) {
    r.wake.acquire();
    if (stopping_.load()) return;
    ReadResult result;
    do {
      result = ReadAndAnswer(r, MSG_DONTWAIT);
      if (stopping_.load(std::memory_order_relaxed)) return;
      if (result == ReadResult::kFull) MaybeCallInHelper(r, i + 1);
    } while (result == ReadResult::kFull);
    // After this store a new call releases the semaphore again, so none is lost.
    r.helping.store(false);
  }
}

StunServer::ReadResult StunServer::ReadAndAnswer(Reader& r, int flags) {
  Batch& b = *r.batch;
  const int fd = fd_.get();
  for (mmsghdr& m : b.recv_msgs) {
    m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    m.msg_hdr.msg_flags = 0;
  }
  const int received = ::recvmmsg(fd, b.recv_msgs.data(), kBatchSize, flags, nullptr);
  if (received < 0) {
    // EAGAIN: nothing queued (helpers read with MSG_DONTWAIT).
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return ReadResult::kEmpty;
    if (stopping_.load(std::memory_order_relaxed)) return ReadResult::kEmpty;
    stats_.Record(StunDisposition::kReadError);
    return ReadResult::kError;
  }
  // After shutdown(SHUT_RD) recvmmsg reads an empty "datagram" or nothing: not a request.
  if (received == 0 || stopping_.load(std::memory_order_relaxed)) return ReadResult::kEmpty;
  const auto read_at = std::chrono::steady_clock::now();

  Tally tally;
  unsigned replies = 0;
  for (int i = 0; i < received; ++i) {
    msghdr& in = b.recv_msgs[i].msg_hdr;
    const std::size_t size =
        Answer(b, static_cast<std::size_t>(i), b.recv_msgs[i].msg_len, in.msg_flags, tally);
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
  // Counted before the replies leave, so a client holding its reply sees them (tests rely on
  // it); the successes are counted once sendmmsg says they left.
  stats_.Record(StunDisposition::kNotStun, tally.not_stun);
  for (std::size_t f = 0; f < kStunAddrFamilyCount; ++f) {
    stats_.RecordAddrFamily(static_cast<StunAddrFamily>(f), tally.family[f]);
  }

  // sendmmsg stops at the first failing datagram and reports the ones before it; the failing
  // one is counted and dropped, the rest retried. MSG_DONTWAIT: a full send buffer drops the
  // reply (write_error) rather than stalling the socket's reads.
  unsigned done = 0;
  std::uint64_t answered = 0;
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
    answered += static_cast<unsigned>(sent);
  }
  r.answered.store(r.answered.load(std::memory_order_relaxed) + answered,
                   std::memory_order_relaxed);
  return static_cast<std::size_t>(received) == kBatchSize ? ReadResult::kFull
                                                          : ReadResult::kPartial;
}

std::size_t StunServer::Answer(Batch& b, std::size_t i, std::size_t size, int msg_flags,
                               Tally& tally) const {
  if ((msg_flags & MSG_TRUNC) != 0) {
    ++tally.not_stun;
    return 0;
  }
  const auto request = stun::ParseBindingRequest(b.Request(i, size));
  const std::optional<Peer> from = PeerFromSockaddr(b.peers[i]);
  if (!request || (strict_ && !request->is_tailscale) || !from) {
    ++tally.not_stun;
    return 0;
  }
  // On the dual-stack socket IPv4 clients show up as ::ffff:a.b.c.d. derper answers those with
  // family 0x02 and the mapped address (44 bytes); we answer family 0x01 with the plain IPv4
  // address (32 bytes), as a specific-address derper does. Tailscale clients accept both, and
  // generic STUN tools expect the native form.
  const netaddr::IpAddress ip = from->ip.Unmap();
  ++tally.family[static_cast<std::size_t>(ip.is_v4() ? StunAddrFamily::kIpv4
                                                     : StunAddrFamily::kIpv6)];
  // The reply overwrites the request's slot: txid was copied out by the parser.
  return stun::WriteBindingResponse(b.slots[i], request->txid, ip, from->port);
}

}  // namespace derpkit::relay
