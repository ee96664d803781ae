// A raw TCP peer for tests that must send exact bytes (malformed input, captured transcripts)
// and read exactly what comes back. Thread: the test's own, driving the io_context it was built
// with. Every read stops at EOF or an error and at a deadline, and a read that comes up short
// fails the test with the reason and what did arrive: a relay that closes early never makes a
// test spin until ctest's timeout.
#pragma once

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <string>
#include <utility>

#include "lib/net/stream.h"
#include "lib/util/bytes.h"
#include "tests/support/run.h"

namespace derpkit::testing {

// A raw TCP peer: sends exactly what the test says and reads what comes back.
class RawPeer {
 public:
  // Larger than any head the relay writes (it refuses request heads over 16 KiB).
  static constexpr std::size_t kMaxHeadBytes = 16 * 1024;

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
    if (!ended_.empty()) return {"", true};
    std::string got;
    auto read_all = [&]() -> asio::awaitable<void> {
      std::array<char, 4096> buf;
      for (;;) {  // ends at EOF or an error, or is cancelled at the deadline
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf), net::kAsTuple);
        got.append(buf.data(), n);
        if (ec) {
          NoteEnd(ec);
          co_return;
        }
      }
    };
    RunWithDeadline(read_all(), timeout);
    return {got, !ended_.empty()};
  }

  // Reads exactly n bytes, or fails the test saying why (EOF, error, deadline) and returns what
  // arrived padded with NULs to n bytes.
  std::string ReadExactly(std::size_t n, std::chrono::milliseconds timeout = 5000ms) {
    std::string out(n, '\0');
    std::size_t got = 0;
    std::string failure;
    auto read = [&]() -> asio::awaitable<void> {
      auto [ec, count] = co_await asio::async_read(socket_, asio::buffer(out), net::kAsTuple);
      got = count;
      if (ec) failure = NoteEnd(ec);
    };
    if (!ended_.empty()) {
      failure = "the connection had already ended: " + ended_;
    } else if (!RunWithDeadline(read(), timeout)) {
      failure = "nothing more within " + std::to_string(timeout.count()) + " ms";
    }
    EXPECT_EQ(got, n) << "wanted " << n << " bytes, got " << got << ": " << failure;
    return out;
  }

  // Reads one HTTP head, up to and including its blank line, a byte at a time so that nothing
  // after it (the ServerKey frame often shares the segment) is consumed. Stops at the blank line,
  // at EOF or an error, after kMaxHeadBytes, or at `timeout`; all but the first fail the test
  // with the reason and the bytes read so far, which are returned.
  std::string ReadHead(std::chrono::milliseconds timeout = 3000ms) {
    std::string head;
    std::string failure;
    auto read = [&]() -> asio::awaitable<void> {
      char c = 0;
      while (!head.ends_with("\r\n\r\n")) {
        if (head.size() >= kMaxHeadBytes) {
          failure = "no blank line in the first " + std::to_string(kMaxHeadBytes) + " bytes";
          co_return;
        }
        auto [ec, n] = co_await asio::async_read(socket_, asio::buffer(&c, 1), net::kAsTuple);
        if (ec) {
          failure = "the connection ended before the head did: " + NoteEnd(ec);
          co_return;
        }
        head += c;
      }
    };
    if (!ended_.empty()) {
      failure = "the connection had already ended: " + ended_;
    } else if (!RunWithDeadline(read(), timeout)) {
      failure = "no complete head within " + std::to_string(timeout.count()) + " ms";
    }
    EXPECT_EQ(failure, "") << "HTTP head so far: " << head;
    return head;
  }

 private:
  // Remembers why the connection ended (EOF, reset), so that later reads fail at once: asio does
  // not promise to report EOF twice. Returns the reason. A cancellation is not an end.
  std::string NoteEnd(const asio::error_code& ec) {
    if (ec != asio::error::operation_aborted && ended_.empty()) ended_ = ec.message();
    return ec.message();
  }

  // Runs `op` on this peer's io_context until it finishes or `timeout` passes. At the deadline
  // `op` is cancelled and run to its end here, so nothing it references is touched after this
  // returns. Returns false when the deadline came first.
  bool RunWithDeadline(asio::awaitable<void> op, std::chrono::milliseconds timeout) {
    using namespace asio::experimental::awaitable_operators;
    auto race = [&]() -> asio::awaitable<bool> {
      asio::steady_timer deadline(socket_.get_executor(), timeout);
      auto first = co_await (std::move(op) || deadline.async_wait(asio::use_awaitable));
      co_return first.index() == 0;
    };
    // The race ends by itself at `timeout`; Await's own limit is only a backstop.
    return Await(io(), race(), timeout + 5000ms);
  }

  asio::io_context& io() {
    return static_cast<asio::io_context&>(socket_.get_executor().context());
  }

  asio::ip::tcp::socket socket_;
  std::string ended_;  // why the connection ended; empty while it is open
};

}  // namespace derpkit::testing
