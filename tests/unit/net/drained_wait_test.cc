// Tests of net::AsyncWaitReadableDrained (lib/net/drained_wait.h) on real loopback sockets: it
// wakes for bytes that arrive after the reader emptied the socket, for readiness asio saw while
// no wait was pending, for EOF, ends with operation_aborted on close, frees a wait still pending
// when its io_context goes, and (its reason to exist) makes no epoll_ctl call, which this file
// counts by defining epoll_ctl itself in front of libc's.
#include "lib/net/drained_wait.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>

namespace {

std::atomic<int> g_watched_fd{-1};
std::atomic<int> g_mods_of_watched{0};

}  // namespace

// Every epoll_ctl of this test binary (asio's reactor included) comes here first.
extern "C" int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  using Real = int (*)(int, int, int, struct epoll_event*);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "epoll_ctl"));
  if (op == EPOLL_CTL_MOD && fd == g_watched_fd.load()) g_mods_of_watched.fetch_add(1);
  return real(epfd, op, fd, event);
}

namespace derpkit::net {
namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;

class DrainedWaitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    writer_.connect(acceptor.local_endpoint());
    acceptor.accept(reader_);
    reader_.non_blocking(true);
    g_watched_fd = reader_.native_handle();
    g_mods_of_watched = 0;
    // asio starts out taking a new socket for readable, so the first wait completes at once.
    std::optional<std::error_code> first;
    AsyncWaitReadableDrained(reader_, [&](std::error_code ec) { first = ec; });
    RunUntil(first);
    ASSERT_TRUE(first) << "the first wait on a new socket did not complete at once";
  }
  void TearDown() override { g_watched_fd = -1; }

  // Reads what is there until the socket says EAGAIN; returns the bytes read.
  std::size_t Drain() {
    std::size_t total = 0;
    for (int i = 0; i < 1000; ++i) {
      std::array<char, 256> buf;
      std::error_code ec;
      const std::size_t n = reader_.read_some(asio::buffer(buf), ec);
      total += n;
      if (ec == asio::error::would_block) return total;
      if (ec) {
        ADD_FAILURE() << "read: " << ec.message();
        return total;
      }
    }
    ADD_FAILURE() << "the socket never ran dry";
    return total;
  }

  void WriteByte() { asio::write(writer_, asio::buffer("x", 1)); }

  // Runs the loop until `done` or two seconds have passed.
  void RunUntil(const std::optional<std::error_code>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_one_for(50ms);
    }
  }

  asio::io_context io_;
  tcp::socket writer_{io_};
  tcp::socket reader_{io_};
};

TEST_F(DrainedWaitTest, WakesForBytesSentAfterTheDrainWithoutOneEpollCtl) {
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    Drain();
    std::optional<std::error_code> done;
    AsyncWaitReadableDrained(reader_, [&](std::error_code ec) { done = ec; });
    io_.restart();
    io_.poll();
    ASSERT_FALSE(done) << "round " << round << ": woke before any byte was sent";
    WriteByte();
    RunUntil(done);
    ASSERT_TRUE(done) << "round " << round << ": no wake within 2 s";
    EXPECT_FALSE(*done) << done->message();
    EXPECT_EQ(Drain(), 1u);
  }
  EXPECT_EQ(g_mods_of_watched.load(), 0);
}

// The control for the count above: asio's own async_wait re-arms with EPOLL_CTL_MOD every time.
TEST_F(DrainedWaitTest, AsiosAsyncWaitMakesOneEpollCtlPerWait) {
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    Drain();
    std::optional<std::error_code> done;
    reader_.async_wait(tcp::socket::wait_read, [&](std::error_code ec) { done = ec; });
    WriteByte();
    RunUntil(done);
    ASSERT_TRUE(done) << "round " << round;
  }
  EXPECT_GE(g_mods_of_watched.load(), kRounds);
}

// Bytes arrive after the drain while no wait is pending, and the reactor reports them then (the
// reader was busy elsewhere): the edge is spent, so the wait must complete without a new one.
TEST_F(DrainedWaitTest, CompletesForReadinessTheReactorSawWhileNoWaitWasPending) {
  Drain();
  asio::steady_timer keeps_the_reactor_polling(io_, 1h);
  keeps_the_reactor_polling.async_wait([](std::error_code) {});
  WriteByte();
  for (int i = 0; i < 20; ++i) {
    io_.restart();
    io_.poll();
    std::this_thread::sleep_for(1ms);
  }
  std::optional<std::error_code> done;
  AsyncWaitReadableDrained(reader_, [&](std::error_code ec) { done = ec; });
  RunUntil(done);
  ASSERT_TRUE(done) << "readiness reported while nobody waited was lost";
  EXPECT_FALSE(*done);
  EXPECT_EQ(Drain(), 1u);
  keeps_the_reactor_polling.cancel();
}

TEST_F(DrainedWaitTest, WakesForEndOfStream) {
  Drain();
  std::optional<std::error_code> done;
  AsyncWaitReadableDrained(reader_, [&](std::error_code ec) { done = ec; });
  writer_.shutdown(tcp::socket::shutdown_send);
  RunUntil(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
  std::array<char, 8> buf;
  std::error_code ec;
  reader_.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(DrainedWaitTest, EndsWithOperationAbortedWhenTheSocketIsClosed) {
  Drain();
  std::optional<std::error_code> done;
  AsyncWaitReadableDrained(reader_, [&](std::error_code ec) { done = ec; });
  reader_.close();
  RunUntil(done);
  ASSERT_TRUE(done);
  EXPECT_EQ(*done, asio::error::operation_aborted);
}

TEST_F(DrainedWaitTest, WorksAsAnAwaitable) {
  Drain();
  std::optional<std::error_code> done;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        std::error_code ec;
        co_await AsyncWaitReadableDrained(reader_, asio::redirect_error(asio::use_awaitable, ec));
        done = ec;
      },
      asio::detached);
  io_.restart();
  io_.poll();
  ASSERT_FALSE(done);
  WriteByte();
  RunUntil(done);
  ASSERT_TRUE(done);
  EXPECT_FALSE(*done);
}

// A wait still queued when its io_context is destroyed is freed without being called (the
// sanitizer build checks the freeing).
TEST(DrainedWaitLifetimeTest, APendingWaitIsFreedWithItsContext) {
  auto token = std::make_shared<int>(0);
  bool called = false;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket writer(io);
    tcp::socket reader(io);
    writer.connect(acceptor.local_endpoint());
    acceptor.accept(reader);
    reader.non_blocking(true);
    bool first = false;
    AsyncWaitReadableDrained(reader, [&first](std::error_code) { first = true; });
    io.poll();
    ASSERT_TRUE(first);
    AsyncWaitReadableDrained(reader, [&called, token](std::error_code) { called = true; });
    EXPECT_EQ(token.use_count(), 2);
    io.poll();
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(token.use_count(), 1);
}

}  // namespace
}  // namespace derpkit::net
