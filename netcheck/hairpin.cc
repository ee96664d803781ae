// The hairpin check (see hairpin.h). Runs on the caller's io_context; owns one UDP socket.
#include "netcheck/hairpin.h"

#include <openssl/rand.h>

#include <array>
#include <asio/experimental/as_tuple.hpp>

#include "lib/net/as_tuple.h"
#include "lib/stun/stun.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::udp;
using ::derpkit::net::kAsTuple;

stun::TxId RandomTxId() {
  std::array<std::byte, stun::kTxIdSize> bytes{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size()) != 1) {
    // Only when OpenSSL cannot seed at all; the ID then just needs to differ from the probes'.
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(0xA5 ^ i);
  }
  return stun::TxId::FromSpan(bytes);
}

// Receives datagrams until `accept` returns true for one or `deadline` passes. A watchdog timer
// cancels the pending receive at the deadline, which keeps the socket usable for the next step.
template <typename Accept>
asio::awaitable<bool> ReceiveUntil(udp::socket& socket,
                                   std::chrono::steady_clock::time_point deadline, Accept& accept) {
  std::array<std::byte, 1500> buf;
  asio::steady_timer watchdog(socket.get_executor());
  bool expired = false;
  watchdog.expires_at(deadline);
  watchdog.async_wait([&socket, &expired](std::error_code ec) {
    if (ec) return;  // cancelled: the receive loop finished first
    expired = true;
    socket.cancel();
  });
  bool found = false;
  while (!found && !expired) {
    udp::endpoint from;
    auto [ec, n] = co_await socket.async_receive_from(asio::buffer(buf), from, kAsTuple);
    if (ec == asio::error::operation_aborted) break;
    if (ec) continue;  // an ICMP error surfaced as a receive error: keep listening
    found = accept(std::span<const std::byte>(buf.data(), n));
  }
  // The watchdog's handler refers to locals of this frame: make sure it has run before leaving.
  if (!expired) {
    watchdog.cancel();
    co_await asio::post(socket.get_executor(), asio::use_awaitable);
  }
  co_return found;
}

}  // namespace

asio::awaitable<HairpinResult> CheckHairpin(asio::io_context& io, udp::endpoint server,
                                            std::string bind_address,
                                            std::chrono::steady_clock::time_point stun_deadline,
                                            std::chrono::milliseconds wait) {
  HairpinResult result;
  udp::socket socket(io);
  std::error_code ec;
  asio::ip::address bind_ip = asio::ip::address_v4::any();
  if (!bind_address.empty()) {
    bind_ip = asio::ip::make_address(bind_address, ec);
    if (ec || !bind_ip.is_v4()) bind_ip = asio::ip::address_v4::any();
  }
  socket.open(udp::v4(), ec);
  if (!ec) socket.bind(udp::endpoint(bind_ip, 0), ec);
  if (ec) {
    result.note = "hairpin check: cannot open a UDP socket: " + ec.message();
    co_return result;
  }

  // Step 1: where does the NAT show this socket?
  const stun::TxId ask = RandomTxId();
  const Bytes request = stun::BuildBindingRequest(ask);
  socket.send_to(asio::buffer(request.data(), request.size()), server, 0, ec);
  if (ec) {
    result.note =
        "hairpin check: cannot send to " + server.address().to_string() + ": " + ec.message();
    co_return result;
  }
  std::optional<udp::endpoint> public_endpoint;
  auto is_our_answer = [&](std::span<const std::byte> d) {
    auto response = stun::ParseBindingResponse(d);
    if (!response || !(response->txid == ask)) return false;
    const auto ip = response->ip.Unmap();
    if (!ip.is_v4()) return false;
    std::error_code parse_ec;
    const auto addr = asio::ip::make_address(ip.ToString(), parse_ec);
    if (parse_ec) return false;
    public_endpoint = udp::endpoint(addr, response->port);
    return true;
  };
  const bool answered = co_await ReceiveUntil(socket, stun_deadline, is_our_answer);
  if (!answered || !public_endpoint) {
    result.note = "hairpin check: no STUN answer for the check's own socket";
    co_return result;
  }

  // Step 2: send to ourselves through the NAT and see whether it comes back.
  const stun::TxId probe = RandomTxId();
  const Bytes hair = stun::BuildBindingRequest(probe);
  socket.send_to(asio::buffer(hair.data(), hair.size()), *public_endpoint, 0, ec);
  if (ec) {
    // Sending to our own public address can fail outright (no route): that is "no hairpin".
    result.hairpins = false;
    result.note = "hairpin check: sending to " + public_endpoint->address().to_string() + ":" +
                  std::to_string(public_endpoint->port()) + " failed: " + ec.message();
    co_return result;
  }
  const auto hair_deadline = std::chrono::steady_clock::now() + wait;
  auto is_our_request = [&](std::span<const std::byte> d) {
    auto request_back = stun::ParseBindingRequest(d);
    return request_back && request_back->txid == probe;
  };
  const bool came_back = co_await ReceiveUntil(socket, hair_deadline, is_our_request);
  result.hairpins = came_back;
  result.note = "hairpin check: request to " + public_endpoint->address().to_string() + ":" +
                std::to_string(public_endpoint->port()) +
                (came_back ? " came back"
                           : " did not come back within " + std::to_string(wait.count()) + "ms");
  co_return result;
}

}  // namespace derpkit::netcheck
