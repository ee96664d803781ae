// StunSocket: STUN Binding transactions over one UDP socket (see stun_client.h).
//
// Thread affinity: everything runs on the io_context passed to Open(); no locks.
#include "lib/net/stun_client.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/v6_only.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lib/net/as_tuple.h"

namespace derpkit::net {
namespace {

using asio::ip::udp;
using Clock = std::chrono::steady_clock;

// Big enough for any answer a STUN server sends over a 1500-byte path; a longer datagram is
// truncated by the kernel and then fails to parse (kBadAnswer if the txid is ours).
constexpr std::size_t kReceiveBufferBytes = 2048;

// Bounds on one drain of the ICMP error queue, so a flood of ICMP cannot starve the loop.
constexpr int kMaxErrorsPerDrain = 64;

std::string EndpointText(const udp::endpoint& ep) {
  return netaddr::JoinHostPort(ep.address().to_string(), ep.port());
}

// "3s", "250ms", "1.5s": Go's spelling for the durations people pass to --timeout.
std::string DurationText(std::chrono::milliseconds d) {
  const long long ms = d.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ms) / 1000.0);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  return s + "s";
}

bool SameDestination(const udp::endpoint& a, const udp::endpoint& b) {
  return a.port() == b.port() && a.address() == b.address();
}

}  // namespace

struct StunSocket::Pending {
  explicit Pending(asio::io_context& io) : wake(io) {}
  stun::TxId txid;
  udp::endpoint server;
  Clock::time_point first_send;
  asio::steady_timer wake;  // the coroutine sleeps on it; Complete() cancels it
  std::optional<Expected<StunAnswer, StunFailure>> result;
};

StunSocket::StunSocket(asio::io_context& io) : io_(io), socket_(io) {}

StunSocket::~StunSocket() {
  Close();
  *alive_ = false;
}

Expected<std::unique_ptr<StunSocket>, std::string> StunSocket::Open(
    asio::io_context& io, const StunSocketOptions& options) {
  using Err = Unexpected<std::string>;
  const bool v6 = options.family == StunSocketOptions::Family::kIpv6;
  const char* family_name = v6 ? "IPv6" : "IPv4";
  std::unique_ptr<StunSocket> s(new StunSocket(io));
  s->v6_ = v6;

  asio::ip::address bind_ip = v6 ? asio::ip::address(asio::ip::address_v6::any())
                                 : asio::ip::address(asio::ip::address_v4::any());
  asio::error_code ec;
  if (!options.bind_address.empty()) {
    bind_ip = asio::ip::make_address(options.bind_address, ec);
    if (ec) return Err{"bind address \"" + options.bind_address + "\" is not an IP address"};
    if (bind_ip.is_v6() != v6) {
      return Err{"bind address " + options.bind_address + " is not an " + family_name + " address"};
    }
  }
  const udp::endpoint at(bind_ip, options.bind_port);

  s->socket_.open(v6 ? udp::v6() : udp::v4(), ec);
  if (ec) return Err{std::string("cannot open a UDP/") + family_name + " socket: " + ec.message()};
  if (v6) s->socket_.set_option(asio::ip::v6_only(true), ec);
  if (!ec) s->socket_.bind(at, ec);
  if (ec) return Err{"cannot bind UDP " + EndpointText(at) + ": " + ec.message()};
  s->socket_.non_blocking(true, ec);
  if (ec) return Err{"cannot make the UDP socket non-blocking: " + ec.message()};

  // Without this, Linux reports ICMP errors only on connected UDP sockets. Not fatal when
  // unsupported: a closed port then costs the timeout instead of failing at once.
  const int on = 1;
  if (v6) {
    ::setsockopt(s->socket_.native_handle(), IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
  } else {
    ::setsockopt(s->socket_.native_handle(), IPPROTO_IP, IP_RECVERR, &on, sizeof on);
  }
  return s;
}

udp::endpoint StunSocket::local_endpoint() const {
  asio::error_code ec;
  udp::endpoint ep = socket_.local_endpoint(ec);
  return ec ? udp::endpoint() : ep;
}

void StunSocket::Close() {
  if (closed_) return;
  closed_ = true;
  FailAll(StunFailure::Kind::kClosed, "the STUN socket was closed");
  asio::error_code ignored;
  socket_.close(ignored);
}

stun::TxId StunSocket::NewTxId() const {
  std::array<std::byte, stun::kTxIdSize> bytes{};
  for (;;) {
    // RAND_bytes only fails when OpenSSL cannot seed its CSPRNG at all: nothing sensible to do.
    if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size()) != 1) {
      std::fprintf(stderr, "StunSocket: RAND_bytes failed: no CSPRNG\n");
      std::abort();
    }
    stun::TxId txid = stun::TxId::FromSpan(bytes);
    if (!pending_.contains(txid)) return txid;
  }
}

std::error_code StunSocket::SendRaw(const udp::endpoint& to, std::span<const std::byte> payload) {
  if (closed_) return asio::error::bad_descriptor;
  return SendNow(to, payload);
}

std::error_code StunSocket::SendNow(const udp::endpoint& to, std::span<const std::byte> payload) {
  asio::error_code ec;
  for (int attempt = 0; attempt < 2; ++attempt) {
    socket_.send_to(asio::buffer(payload.data(), payload.size()), to, 0, ec);
    // A pending ICMP error from an earlier datagram (to some other server, perhaps) makes the
    // next send fail with it; it belongs to that datagram, not to this one.
    if (ec != asio::error::connection_refused && ec != asio::error::host_unreachable &&
        ec != asio::error::network_unreachable) {
      break;
    }
    DrainErrorQueue();
  }
  return ec;
}

void StunSocket::EnsureReader() {
  if (reading_) return;
  reading_ = true;
  asio::co_spawn(io_, ReadLoop(alive_), asio::detached);
}

void StunSocket::StopReaderIfIdle() {
  if (!pending_.empty() || !reading_) return;
  asio::error_code ignored;
  socket_.cancel(ignored);  // the reader re-checks pending_ when its receive is aborted
}

void StunSocket::Complete(Pending& p, Expected<StunAnswer, StunFailure> result) {
  pending_.erase(p.txid);
  p.result = std::move(result);
  p.wake.cancel();
}

void StunSocket::FailAll(StunFailure::Kind kind, const std::string& message) {
  while (!pending_.empty()) {
    Pending& p = *pending_.begin()->second;
    Complete(p, Unexpected{StunFailure{kind, message}});
  }
}

asio::awaitable<Expected<StunAnswer, StunFailure>> StunSocket::Transact(
    udp::endpoint server, StunTransactOptions options) {
  using Fail = Unexpected<StunFailure>;
  using Kind = StunFailure::Kind;
  if (closed_) co_return Fail{{Kind::kClosed, "the STUN socket is closed"}};
  if (server.address().is_v6() != v6_) {
    co_return Fail{{Kind::kSendFailed, "cannot send to " + EndpointText(server) + " from an " +
                                           (v6_ ? "IPv6" : "IPv4") + " socket"}};
  }

  Pending p(io_);
  p.txid = NewTxId();
  p.server = server;
  const Bytes request = stun::BuildBindingRequest(p.txid, options.form);
  pending_.emplace(p.txid, &p);
  // `p` lives in this coroutine's frame, which can be destroyed without resuming (an
  // io_context torn down before this socket, at shutdown): it must not stay in pending_ then,
  // or Close() would complete a freed Pending.
  struct ForgetOnExit {
    StunSocket& socket;
    std::shared_ptr<bool> alive;
    Pending& pending;
    ~ForgetOnExit() {
      if (!*alive) return;
      auto it = socket.pending_.find(pending.txid);
      if (it != socket.pending_.end() && it->second == &pending) socket.pending_.erase(it);
    }
  } forget{*this, alive_, p};
  EnsureReader();

  p.first_send = Clock::now();
  const Clock::time_point deadline = p.first_send + options.timeout;
  Clock::time_point last_send = p.first_send;
  if (const std::error_code ec = SendNow(server, request)) {
    if (!p.result) {
      Complete(p,
               Fail{{Kind::kSendFailed, "send to " + EndpointText(server) + ": " + ec.message()}});
    }
  }
  const std::shared_ptr<bool> alive = alive_;
  while (!p.result) {
    Clock::time_point wake_at = deadline;
    if (options.resend_interval.count() > 0) {
      wake_at = std::min(deadline, last_send + options.resend_interval);
    }
    p.wake.expires_at(wake_at);
    auto [ec] = co_await p.wake.async_wait(kAsTuple);
    (void)ec;            // cancelled by Complete(), or expired: p.result tells which
    if (!*alive) break;  // *this is gone; Close() has set p.result
    if (p.result) break;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      Complete(p, Fail{{Kind::kTimeout, "no answer from " + EndpointText(server) + " within " +
                                            DurationText(options.timeout)}});
      break;
    }
    if (options.resend_interval.count() > 0 && now >= last_send + options.resend_interval) {
      last_send = now;
      if (const std::error_code send_ec = SendNow(server, request); send_ec && !p.result) {
        Complete(p, Fail{{Kind::kSendFailed,
                          "send to " + EndpointText(server) + ": " + send_ec.message()}});
      }
    }
  }
  if (*alive) StopReaderIfIdle();
  co_return std::move(*p.result);
}

asio::awaitable<void> StunSocket::ReadLoop(std::shared_ptr<bool> alive) {
  std::array<std::byte, kReceiveBufferBytes> buf;
  for (;;) {
    // co_spawn only queues this coroutine, so the socket may be gone before its first line.
    if (!*alive) co_return;
    // Checked before every receive: the last transaction may have finished (or failed to send)
    // before this coroutine first ran, and nothing would cancel a receive started after that.
    if (closed_ || pending_.empty()) break;
    udp::endpoint from;
    auto [ec, n] = co_await socket_.async_receive_from(asio::buffer(buf), from, kAsTuple);
    const Clock::time_point received_at = Clock::now();
    if (!*alive) co_return;
    if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
        ec == asio::error::network_unreachable) {
      DrainErrorQueue();
    } else if (ec == asio::error::message_size) {
      // A datagram larger than our buffer: not an answer we could use. Skip it.
    } else if (ec && ec != asio::error::operation_aborted) {
      // Receive errors other than ICMP reports mean the socket itself is broken; looping on it
      // would spin, so every waiting transaction learns why instead.
      FailAll(StunFailure::Kind::kClosed, "receive on the STUN socket failed: " + ec.message());
      break;
    } else if (!ec) {
      HandleDatagram(std::span(buf).first(n), from, received_at);
    }
  }
  reading_ = false;
}

void StunSocket::HandleDatagram(std::span<const std::byte> datagram, const udp::endpoint& from,
                                Clock::time_point received_at) {
  auto response = stun::ParseBindingResponse(datagram);
  if (response) {
    auto it = pending_.find(response->txid);
    if (it == pending_.end()) return;  // late, duplicate or someone else's: ignore
    Pending& p = *it->second;
    StunAnswer answer;
    answer.mapped_ip = response->ip.Unmap();
    answer.mapped_port = response->port;
    answer.from = from;
    answer.sent_to = p.server;
    answer.rtt = received_at - p.first_send;
    answer.response_bytes = datagram.size();
    answer.txid = response->txid;
    Complete(p, std::move(answer));
    return;
  }
  // Not a usable Binding Success. If it is a STUN message carrying one of our transaction IDs
  // (an error response, a success without an address), that transaction has its answer: a bad
  // one. Binding Requests (our own datagrams coming back, hairpinned) are not answers.
  if (datagram.size() < stun::kHeaderSize ||
      LoadBigEndian32(datagram.subspan(4)) != stun::kMagicCookie) {
    return;
  }
  if (LoadBigEndian16(datagram) == stun::kTypeBindingRequest) return;
  const stun::TxId txid = stun::TxId::FromSpan(datagram.subspan(8, stun::kTxIdSize));
  auto it = pending_.find(txid);
  if (it == pending_.end()) return;
  char type[8];
  std::snprintf(type, sizeof type, "0x%04x", LoadBigEndian16(datagram));
  Complete(*it->second,
           Unexpected{StunFailure{StunFailure::Kind::kBadAnswer,
                                  "unusable answer from " + EndpointText(from) + " (type " + type +
                                      ", " + std::to_string(datagram.size()) + " bytes): " +
                                      std::string(stun::Describe(response.error()))}});
}

void StunSocket::DrainErrorQueue() {
  for (int i = 0; i < kMaxErrorsPerDrain; ++i) {
    sockaddr_storage dest{};
    std::array<std::byte, 64> payload;  // the head of our own datagram; not needed
    alignas(cmsghdr) std::array<char, 512> control;
    iovec iov{payload.data(), payload.size()};
    msghdr msg{};
    msg.msg_name = &dest;
    msg.msg_namelen = sizeof dest;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    if (::recvmsg(socket_.native_handle(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;

    int error = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6 ||
          ee.ee_origin == SO_EE_ORIGIN_LOCAL) {
        error = static_cast<int>(ee.ee_errno);
      }
    }
    if (error == 0 || msg.msg_namelen == 0 || msg.msg_namelen > sizeof dest) continue;

    // The kernel names the destination of the datagram that caused the error.
    udp::endpoint to;
    std::memcpy(to.data(), &dest, msg.msg_namelen);
    to.resize(msg.msg_namelen);
    const std::string where = EndpointText(to);
    const StunFailure failure =
        error == ECONNREFUSED
            ? StunFailure{StunFailure::Kind::kRefused,
                          "connection refused by " + where +
                              " (ICMP port unreachable: nothing listens on that UDP port)"}
            : StunFailure{
                  StunFailure::Kind::kSendFailed,
                  "send to " + where + ": " + std::system_category().message(error) + " (ICMP)"};
    std::vector<Pending*> hit;
    for (const auto& [txid, p] : pending_) {
      if (SameDestination(p->server, to)) hit.push_back(p);
    }
    for (Pending* p : hit) Complete(*p, Unexpected{failure});
  }
}

}  // namespace derpkit::net
