// Helpers for tests of lib/net streams (DirectTlsStream, Tls13Stream): a loopback socket pair,
// test patterns, and reads that end after an exact byte count, by ReadSome or the way the relay
// reads (WaitReadable, then TryRead). Single-threaded: each runs on the test's io_context.
#pragma once

#include <gtest/gtest.h>

#include <asio.hpp>
#include <cstddef>
#include <span>

#include "lib/net/stream.h"
#include "lib/util/bytes.h"

namespace derpkit::net::stream_test {

using asio::ip::tcp;

inline Bytes Pattern(std::size_t size, unsigned seed) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; ++i) {
    out[i] = static_cast<std::byte>((i * 131 + seed + (i >> 11)) & 0xff);
  }
  return out;
}

struct SocketPair {
  tcp::socket client;
  tcp::socket server;
};

// Two ends of a loopback TCP connection. With `buffer_bytes`, the client's receive buffer and the
// server's send buffer are that small, so that a server write fills them quickly.
inline asio::awaitable<SocketPair> ConnectedSockets(int buffer_bytes = 0) {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket client(ex);
  if (buffer_bytes > 0) {
    client.open(tcp::v4());
    client.set_option(asio::socket_base::receive_buffer_size(buffer_bytes));
  }
  co_await client.async_connect(acceptor.local_endpoint(), asio::use_awaitable);
  tcp::socket server = co_await acceptor.async_accept(asio::use_awaitable);
  if (buffer_bytes > 0) server.set_option(asio::socket_base::send_buffer_size(buffer_bytes));
  co_return SocketPair{std::move(client), std::move(server)};
}

inline asio::awaitable<IoResult> WriteBytes(Stream& s, ByteSpan data) {
  const asio::const_buffer b = asio::buffer(data.data(), data.size());
  co_return co_await s.WriteAll(std::span(&b, 1));
}

// Reads exactly `size` bytes with ReadSome.
inline asio::awaitable<Bytes> ReadExactly(Stream& s, std::size_t size, std::size_t chunk = 16384) {
  Bytes out;
  Bytes buf(chunk);
  while (out.size() < size) {
    const std::size_t want = std::min(chunk, size - out.size());
    const IoResult r = co_await s.ReadSome(std::span(buf).first(want));
    if (r.ec) {
      ADD_FAILURE() << "ReadSome after " << out.size() << " bytes: " << r.ec.message();
      break;
    }
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.bytes));
  }
  co_return out;
}

// Reads exactly `size` bytes the way the relay does: WaitReadable, then TryRead into a big buffer
// until it says would_block.
inline asio::awaitable<Bytes> TryReadExactly(Stream& s, std::size_t size) {
  Bytes out;
  Bytes buf(64 * 1024);
  while (out.size() < size) {
    const std::error_code wec = co_await s.WaitReadable();
    if (wec) {
      ADD_FAILURE() << "WaitReadable after " << out.size() << " bytes: " << wec.message();
      break;
    }
    for (int round = 0; round < 1000 && out.size() < size; ++round) {
      const std::size_t want = std::min(buf.size(), size - out.size());
      const IoResult r = s.TryRead(std::span(buf).first(want));
      if (r.ec == asio::error::would_block) break;
      if (r.ec) {
        ADD_FAILURE() << "TryRead after " << out.size() << " bytes: " << r.ec.message();
        co_return out;
      }
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.bytes));
    }
  }
  co_return out;
}

}  // namespace derpkit::net::stream_test
