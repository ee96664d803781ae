// derp-load's event loops: one io_context per thread, the coroutines spawned on it, and the
// connect step every client goes through (connect, then wait for ServerInfo).
//
// Threads: a Loop is created by the main thread; its io_context runs on one thread of
// RunLoops() at a time and everything spawned on it stays on that thread.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "lib/derpclient/client.h"

namespace derpkit::bench {

// One event loop and its thread. `live` counts coroutines still running so that the watchdog
// that ends a stuck run can be cancelled when everything finished normally.
struct Loop {
  asio::io_context io{1};
  int live = 0;
  std::unique_ptr<asio::steady_timer> watchdog;
  std::vector<derpclient::Client*> clients;
};

// Runs `aw` on `loop`, keeping loop.live up to date; an exception is printed, not rethrown.
void Spawn(Loop& loop, asio::awaitable<void> aw);

// Runs every loop on a thread of its own until each runs out of work.
void RunLoops(std::vector<std::unique_ptr<Loop>>& loops);

// Connects `c` and waits for its ServerInfo, all within `timeout`. On failure sets `error`.
asio::awaitable<void> ConnectOne(derpclient::Client& c, std::chrono::nanoseconds timeout,
                                 std::string& error);

// Arms, on every loop, a timer that closes the loop's clients at `stop` (which ends their
// coroutines) and a watchdog that stops the loop if work is still left 3 s later.
void ArmStop(std::vector<std::unique_ptr<Loop>>& loops,
             std::vector<std::unique_ptr<asio::steady_timer>>& timers,
             std::chrono::steady_clock::time_point stop);

}  // namespace derpkit::bench
