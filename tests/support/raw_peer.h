// A raw TCP peer for tests that must send exact bytes (malformed input, captured transcripts)
// and read exactly what comes back, with bounded waits.
#pragma once

#include <asio.hpp>
#include <string>
#include <utility>

#include "lib/net/stream.h"
#include "lib/util/bytes.h"
#include "tests/support/run.h"

namespace derpkit::testing {

// A raw TCP peer: sends exactly what the test says and reads what comes back.
class RawPeer {
 public:
  RawPeer(asio::io_context& io, std::uint16_t port) : socket_(io) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  void Send(std::string_view bytes) {
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()));
  }
  void Send(ByteSpan bytes) { asio::write(socket_, asio::buffer(bytes.data(), bytes.size())); }
  // Reads until the relay closes the connection or `timeout` passes; returns what arrived and
  // whether the connection was closed.
  std::pair<std::string, bool> ReadUntilClosed(std::chrono::milliseconds timeout = 3000ms) {
    std::string got;
    auto& io = static_cast<asio::io_context&>(socket_.get_executor().context());
    bool closed = false;
    auto read_all = [&]() -> asio::awaitable<int> {
      std::array<char, 4096> buf;
      for (;;) {
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), net::kAsTuple);
        got.append(buf.data(), n);
        if (ec) {
          closed = true;
          co_return 0;
        }
      }
    };
    AwaitFor(io, read_all(), timeout);
    return {got, closed};
  }
  // Reads exactly n bytes (bounded).
  std::string ReadExactly(std::size_t n) {
    std::string out(n, '\0');
    auto& io = static_cast<asio::io_context&>(socket_.get_executor().context());
    auto read = [&]() -> asio::awaitable<bool> {
      auto [ec, got] = co_await asio::async_read(socket_, asio::buffer(out), net::kAsTuple);
      co_return !ec && got == n;
    };
    EXPECT_TRUE(Await(io, read()));
    return out;
  }

 private:
  asio::ip::tcp::socket socket_;
};

}  // namespace derpkit::testing
