// StunSocket: one UDP socket that sends STUN Binding Requests (lib/stun) to any number of servers
// and matches the answers to their requests by transaction ID, for stunc, netcheck and derp-probe.
// Several transactions may be outstanding at once on the same socket: that is how netcheck sees
// whether a NAT maps one local port to different public ports per destination.
//
// Thread affinity: one io_context; every call from its thread. The socket's reader runs as a
// coroutine on that context while transactions are outstanding and stops when none are, so
// io_context::run() returns once the caller's own work is done. Errors are values, never
// exceptions (Open returns a message; Transact returns a StunFailure).
//
// ICMP errors: the socket sets IP_RECVERR / IPV6_RECVERR, so an ICMP port unreachable for one
// server fails only the transactions sent to that server (kRefused), at once, even though the
// socket is not connected; other servers' transactions on the same socket carry on.
//
// Lifetime: destroying the socket (or Close()) completes every outstanding Transact with kClosed;
// their coroutines then finish without touching the destroyed object. A Transact awaitable that
// has not started running yet refers to the socket like any member call: start it first.
//
//   auto sock = StunSocket::Open(io, {.family = Family::kIpv4});
//   auto answer = co_await (*sock)->Transact(server_endpoint, {.timeout = 3s});
//   if (answer) print(answer->mapped_ip, answer->mapped_port, answer->rtt);
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>

#include "lib/stun/stun.h"
#include "lib/util/expected.h"
#include "lib/util/netaddr.h"

namespace derpkit::net {

struct StunSocketOptions {
  // kIpv6 sockets are IPv6-only (IPV6_V6ONLY): one socket per family, never IPv4-mapped peers.
  enum class Family { kIpv4, kIpv6 } family = Family::kIpv4;
  // Local address and port to bind; empty address = the family's wildcard, port 0 = ephemeral.
  std::string bind_address = {};  // "= {}": GCC 12 then accepts {.family = ...} without warning
  std::uint16_t bind_port = 0;
};

struct StunTransactOptions {
  stun::RequestForm form = stun::RequestForm::kTailscale;
  // Give up after this long without a matching answer.
  std::chrono::milliseconds timeout{3000};
  // Resend the same request (same transaction ID) every `resend_interval` until answered or timed
  // out; 0 sends once. derpprobe resends after 2 s without an answer.
  std::chrono::milliseconds resend_interval{0};
};

struct StunAnswer {
  netaddr::IpAddress mapped_ip;  // the public address the server saw (unmapped to IPv4)
  std::uint16_t mapped_port = 0;
  asio::ip::udp::endpoint from;     // who answered
  asio::ip::udp::endpoint sent_to;  // where the request went
  std::chrono::nanoseconds rtt{0};  // from the first send to the matching answer
  std::size_t response_bytes = 0;   // 32 or 44 for derper, other sizes for other servers
  stun::TxId txid;
};

struct StunFailure {
  enum class Kind {
    kTimeout,     // nothing matching arrived in time
    kSendFailed,  // the kernel refused the datagram (no route, family mismatch, ...)
    kRefused,     // ICMP port unreachable came back (ECONNREFUSED on the socket)
    kBadAnswer,   // a datagram with our transaction ID that is not a usable Binding Success
    kClosed,      // the socket was closed while waiting
  } kind = Kind::kTimeout;
  std::string message;  // one line, says what and where: "no answer from 127.0.0.1:3478 within 3s"
};

class StunSocket {
 public:
  // Opens and binds the socket. Errors say which address could not be bound and why.
  static Expected<std::unique_ptr<StunSocket>, std::string> Open(asio::io_context& io,
                                                                 const StunSocketOptions& options);
  ~StunSocket();
  StunSocket(const StunSocket&) = delete;
  StunSocket& operator=(const StunSocket&) = delete;

  // Sends one Binding Request with a fresh random transaction ID to `server` and waits for its
  // answer. Answers from other addresses are accepted (a server may answer from another address,
  // as derper on a wildcard socket does) as long as the transaction ID matches.
  asio::awaitable<Expected<StunAnswer, StunFailure>> Transact(asio::ip::udp::endpoint server,
                                                              StunTransactOptions options);

  // Sends `payload` raw to `to` (netcheck's hairpin check sends to its own public address).
  std::error_code SendRaw(const asio::ip::udp::endpoint& to, std::span<const std::byte> payload);

  asio::ip::udp::endpoint local_endpoint() const;

  // Fails every outstanding transaction with kClosed and closes the socket. Idempotent.
  void Close();

 private:
  explicit StunSocket(asio::io_context& io);
  struct Pending;  // one outstanding transaction; lives in its Transact coroutine's frame
  struct TxIdLess {
    bool operator()(const stun::TxId& a, const stun::TxId& b) const { return a.bytes < b.bytes; }
  };

  // Runs while pending_ is non-empty; `alive` is false once *this is destroyed.
  asio::awaitable<void> ReadLoop(std::shared_ptr<bool> alive);
  void EnsureReader();
  // Stops the reader (by cancelling its receive) when no transaction is outstanding.
  void StopReaderIfIdle();
  // Matches one received datagram against pending_.
  void HandleDatagram(std::span<const std::byte> datagram, const asio::ip::udp::endpoint& from,
                      std::chrono::steady_clock::time_point received_at);
  // Reads the socket's error queue (ICMP errors, IP_RECVERR) and fails the transactions sent to
  // each refused or unreachable destination.
  void DrainErrorQueue();
  void FailAll(StunFailure::Kind kind, const std::string& message);
  // Records the result of `p`, removes it from pending_ and wakes its coroutine.
  void Complete(Pending& p, Expected<StunAnswer, StunFailure> result);
  // Sends `payload` without blocking; retries once after draining a stale ICMP error.
  std::error_code SendNow(const asio::ip::udp::endpoint& to, std::span<const std::byte> payload);
  stun::TxId NewTxId() const;

  asio::io_context& io_;
  asio::ip::udp::socket socket_;
  std::map<stun::TxId, Pending*, TxIdLess> pending_;  // outstanding transactions, by txid
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool v6_ = false;  // the socket's family
  bool reading_ = false;
  bool closed_ = false;
};

}  // namespace derpkit::net
