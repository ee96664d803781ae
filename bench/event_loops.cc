// derp-load's event loops (see event_loops.h). Spawn and ConnectOne run on the loop's thread;
// RunLoops and ArmStop are called by the main thread.
#include "bench/event_loops.h"

#include <cstdio>
#include <exception>
#include <thread>
#include <variant>

#include "bench/load_config.h"
#include "lib/net/as_tuple.h"

namespace derpkit::bench {

void Spawn(Loop& loop, asio::awaitable<void> aw) {
  ++loop.live;
  asio::co_spawn(loop.io, std::move(aw), [&loop](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "%s: internal error: %s\n", kLoadTool.data(), ex.what());
      }
    }
    if (--loop.live == 0 && loop.watchdog) loop.watchdog->cancel();
  });
}

void RunLoops(std::vector<std::unique_ptr<Loop>>& loops) {
  std::vector<std::thread> threads;
  for (auto& l : loops) {
    l->io.restart();
    threads.emplace_back([&l] { l->io.run(); });
  }
  for (auto& t : threads) t.join();
}

asio::awaitable<void> ConnectOne(derpclient::Client& c, std::chrono::nanoseconds timeout,
                                 std::string& error) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(timeout);
  bool timed_out = false;
  timer.async_wait([&](const std::error_code& ec) {
    if (ec) return;
    timed_out = true;
    c.Close();
  });
  auto ok = co_await c.Connect();
  if (!ok) {
    error = ok.error();
    co_return;
  }
  for (;;) {
    auto m = co_await c.Recv();
    if (!m) {
      error = timed_out ? "no ServerInfo within the connect timeout"
                        : "waiting for ServerInfo: " + m.error();
      co_return;
    }
    if (std::holds_alternative<derpclient::ServerInfoMessage>(*m)) break;
  }
  // The cancelled handler still runs, but only looks at its error code.
  timer.cancel();
}

void ArmStop(std::vector<std::unique_ptr<Loop>>& loops,
             std::vector<std::unique_ptr<asio::steady_timer>>& timers,
             std::chrono::steady_clock::time_point stop) {
  using namespace std::chrono_literals;
  for (auto& l : loops) {
    auto t = std::make_unique<asio::steady_timer>(l->io, stop);
    Loop* lp = l.get();
    l->watchdog = std::make_unique<asio::steady_timer>(l->io, stop + 3s);
    t->async_wait([lp](const std::error_code&) {
      for (auto* c : lp->clients) c->Close();
      if (lp->live == 0) lp->watchdog->cancel();
    });
    l->watchdog->async_wait([lp](const std::error_code& ec) {
      if (!ec) {
        std::fprintf(stderr,
                     "%s: %d coroutine(s) of an event loop still running 3 s after the run; "
                     "stopping it\n",
                     kLoadTool.data(), lp->live);
        lp->io.stop();
      }
    });
    timers.push_back(std::move(t));
  }
}

}  // namespace derpkit::bench
