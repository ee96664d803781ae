// Runs coroutines to completion on a test's own io_context with a bounded wait: tests never
// sleep, and a hung step fails the test instead of hanging CI.
#pragma once

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

namespace derpkit::testing {

using namespace std::chrono_literals;

// Runs `aw` on `io` until it completes or `timeout` passes. Returns nullopt on timeout (the
// operation is then still pending on `io`: close what it waits on before reusing `io`).
template <typename T>
std::optional<T> AwaitFor(asio::io_context& io, asio::awaitable<T> aw,
                          std::chrono::milliseconds timeout = 5000ms) {
  std::optional<T> result;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result.emplace(std::move(value));
    done = true;
  });
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(deadline - std::chrono::steady_clock::now());
  }
  if (error) std::rethrow_exception(error);
  return result;
}

// Like AwaitFor, but a timeout is a test failure (thrown, so the test stops there).
template <typename T>
T Await(asio::io_context& io, asio::awaitable<T> aw, std::chrono::milliseconds timeout = 5000ms) {
  auto r = AwaitFor(io, std::move(aw), timeout);
  if (!r) throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + " ms");
  return std::move(*r);
}

// Polls `pred` (cheap, thread-safe reads such as relay counters) until true or the timeout.
template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

}  // namespace derpkit::testing
