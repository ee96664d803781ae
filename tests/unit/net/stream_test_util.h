// Helpers for tests of lib/net streams (WsStream, DirectTlsStream, Tls13Stream): a loopback socket
// pair, test patterns, and reads that end after an exact byte count, by ReadSome or the way the
// relay reads (WaitReadable, then TryRead). Single-threaded: each runs on the test's io_context.
#pragma once

#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <cstddef>
#include <functional>
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

// Reads exactly `size` bytes with ReadSome calls of at most `chunk` bytes.
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
    EXPECT_GT(r.bytes, 0u);
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

// Streams 2 MiB each way at the same time over a TLS pair: the client writes `up` in 256 KiB
// writes and calls `between_writes` (a KeyUpdate, say) before each one after the first; the
// server writes `down` and reads the way the relay does. Then a short server-to-client exchange,
// so that the client has read past the server's last record (a KeyUpdate answer among them).
inline asio::awaitable<void> StreamBothWaysAtOnce(Stream& client, Stream& server,
                                                  const std::function<void()>& between_writes) {
  using namespace asio::experimental::awaitable_operators;
  const Bytes up = Pattern(2 * 1024 * 1024, 10);
  const Bytes down = Pattern(2 * 1024 * 1024, 11);
  auto client_writes = [&]() -> asio::awaitable<std::error_code> {
    constexpr std::size_t kChunk = 256 * 1024;
    for (std::size_t at = 0; at < up.size(); at += kChunk) {
      if (at > 0) between_writes();
      const IoResult r = co_await WriteBytes(client, ByteSpan(up).subspan(at, kChunk));
      if (r.ec) co_return r.ec;
    }
    co_return std::error_code{};
  };
  auto results =
      co_await (client_writes() && WriteBytes(server, down) && TryReadExactly(server, up.size()) &&
                ReadExactly(client, down.size(), 3000));
  EXPECT_FALSE(std::get<0>(results)) << std::get<0>(results).message();
  EXPECT_FALSE(std::get<1>(results).ec) << std::get<1>(results).ec.message();
  EXPECT_TRUE(std::get<2>(results) == up);
  EXPECT_TRUE(std::get<3>(results) == down);
  const Bytes tail = Pattern(100, 12);
  const IoResult w = co_await WriteBytes(server, tail);
  EXPECT_FALSE(w.ec);
  const Bytes got = co_await ReadExactly(client, tail.size());
  EXPECT_EQ(got, tail);
}

}  // namespace derpkit::net::stream_test
