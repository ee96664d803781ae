// CheckCaptivePortal: plain-HTTP GET /generate_204 with Tailscale's challenge to up to
// max_concurrent DERP nodes at once (the reference asks at most five, all concurrently, and stops
// at the first that looks captive). Request and response heads go through lib/http.
//
// Thread affinity: a coroutine on the caller's executor. Each endpoint is a child coroutine on
// the same executor with its own cancellation signal; cancelling CheckCaptivePortal (asio's `||`)
// cancels every child, and the children own what they touch (shared state by shared_ptr).
#include "netcheck/captive.h"

#include <algorithm>
#include <asio/experimental/awaitable_operators.hpp>
#include <memory>

#include "lib/http/head.h"
#include "lib/net/stream.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

constexpr std::string_view kCacheControl =
    "no-cache, no-store, must-revalidate, no-transform, max-age=0";
constexpr std::size_t kMaxResponseHeadBytes = 16 * 1024;

enum class Verdict { kGood, kCaptive, kNoAnswer };

struct EndpointResult {
  Verdict verdict = Verdict::kNoAnswer;
  std::string note;
};

std::string Describe(const CaptiveTarget& t) {
  const std::string where = t.ipv4 + ":" + std::to_string(t.port);
  return t.node_name.empty() ? where : t.node_name + " (" + where + ")";
}

// One GET and the verdict on its response head. Never throws for network errors.
asio::awaitable<EndpointResult> Exchange(CaptiveTarget target, std::string bind_address,
                                         std::int64_t unix_seconds) {
  const auto executor = co_await asio::this_coro::executor;
  std::error_code ec;
  const auto address = asio::ip::make_address_v4(target.ipv4, ec);
  if (ec) co_return EndpointResult{Verdict::kNoAnswer, "not an IPv4 literal"};
  tcp::socket socket(executor);
  socket.open(tcp::v4(), ec);
  if (!ec && !bind_address.empty()) {
    const auto local = asio::ip::make_address_v4(bind_address, ec);
    if (!ec) socket.bind(tcp::endpoint(local, 0), ec);
  }
  if (ec) co_return EndpointResult{Verdict::kNoAnswer, "socket: " + ec.message()};
  auto [connect_ec] =
      co_await socket.async_connect(tcp::endpoint(address, target.port), net::kAsTuple);
  if (connect_ec) co_return EndpointResult{Verdict::kNoAnswer, "connect: " + connect_ec.message()};

  const std::string challenge = "ts_" + target.ipv4;
  std::string host = target.ipv4;
  if (target.port != 80) host += ":" + std::to_string(target.port);
  std::string request;
  http::AppendRequest(request, "GET", "/generate_204?t=" + std::to_string(unix_seconds),
                      {{"Host", host},
                       {"User-Agent", "derpkit-netcheck"},
                       {"Cache-Control", std::string(kCacheControl)},
                       {"X-Tailscale-Challenge", challenge},
                       {"Connection", "close"}});
  auto [write_ec, written] =
      co_await asio::async_write(socket, asio::buffer(request), net::kAsTuple);
  if (write_ec) co_return EndpointResult{Verdict::kNoAnswer, "send: " + write_ec.message()};

  // Only the head matters (redirects are never followed); the body is left unread.
  Bytes buf;
  std::array<std::byte, 4096> chunk{};
  for (;;) {
    auto [read_ec, n] = co_await socket.async_read_some(asio::buffer(chunk), net::kAsTuple);
    buf.insert(buf.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
    auto head = http::ParseResponseHead(buf, http::Limits{kMaxResponseHeadBytes, 100});
    if (head) {
      const std::string expected = "response " + challenge;
      if (head->status != 204) {
        std::string note =
            "answered " + std::to_string(head->status) + " " + head->reason + " instead of 204";
        if (const std::string* location = head->Find("Location")) {
          note += " (redirect to " + *location + ")";
        }
        co_return EndpointResult{Verdict::kCaptive, note + ": captive portal?"};
      }
      const std::string* response = head->Find("X-Tailscale-Response");
      if (response == nullptr) {
        co_return EndpointResult{
            Verdict::kCaptive,
            "answered 204 without X-Tailscale-Response: something rewrites plain HTTP"};
      }
      if (*response != expected) {
        co_return EndpointResult{Verdict::kCaptive, "answered 204 with X-Tailscale-Response \"" +
                                                        *response + "\", want \"" + expected +
                                                        "\": something rewrites plain HTTP"};
      }
      co_return EndpointResult{Verdict::kGood, "204 with the expected X-Tailscale-Response"};
    }
    if (head.error() != http::ParseError::kIncomplete) {
      co_return EndpointResult{Verdict::kNoAnswer, "malformed HTTP response: " +
                                                       std::string(http::Describe(head.error()))};
    }
    if (read_ec == asio::error::eof) {
      co_return EndpointResult{Verdict::kNoAnswer, "connection closed before a full response"};
    }
    if (read_ec) co_return EndpointResult{Verdict::kNoAnswer, "read: " + read_ec.message()};
  }
}

asio::awaitable<EndpointResult> CheckEndpoint(CaptiveTarget target, CaptiveOptions options,
                                              std::int64_t unix_seconds) {
  const auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, options.timeout);
  auto outcome = co_await (Exchange(target, options.bind_address, unix_seconds) ||
                           timer.async_wait(net::kAsTuple));
  if (outcome.index() == 1) {
    co_return EndpointResult{
        Verdict::kNoAnswer,
        "no response within " + std::to_string(options.timeout.count()) + " ms"};
  }
  co_return std::get<0>(std::move(outcome));
}

// What the children report into; the parent sleeps on `wake` until they are done.
struct Shared {
  explicit Shared(const asio::any_io_executor& executor, std::size_t n)
      : wake(executor, asio::steady_timer::time_point::max()), results(n), signals(n) {}
  asio::steady_timer wake;
  std::vector<std::optional<EndpointResult>> results;
  std::vector<asio::cancellation_signal> signals;
  std::size_t pending = 0;
  bool captive_found = false;
};

}  // namespace

asio::awaitable<CaptiveResult> CheckCaptivePortal(std::vector<CaptiveTarget> targets,
                                                  CaptiveOptions options) {
  CaptiveResult result;
  if (targets.empty()) {
    result.notes.push_back("captive portal: no DERP node with CanPort80 and an IPv4 literal");
    co_return result;
  }
  const std::size_t asked =
      std::min(targets.size(), std::max<std::size_t>(options.max_concurrent, 1));
  const auto executor = co_await asio::this_coro::executor;
  const std::int64_t unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count();
  auto shared = std::make_shared<Shared>(executor, asked);
  shared->pending = asked;
  for (std::size_t i = 0; i < asked; ++i) {
    asio::co_spawn(
        executor, CheckEndpoint(targets[i], options, unix_seconds),
        asio::bind_cancellation_slot(shared->signals[i].slot(),
                                     [shared, i](std::exception_ptr error, EndpointResult r) {
                                       if (error)
                                         r = EndpointResult{Verdict::kNoAnswer, "cancelled"};
                                       if (r.verdict == Verdict::kCaptive)
                                         shared->captive_found = true;
                                       shared->results[i] = std::move(r);
                                       --shared->pending;
                                       if (shared->pending == 0 || shared->captive_found)
                                         shared->wake.cancel();
                                     }));
  }

  // One captive answer is enough (the reference cancels the rest, too).
  bool cancelled = false;
  while (shared->pending > 0 && !shared->captive_found) {
    co_await shared->wake.async_wait(net::kAsTuple);
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      cancelled = true;
      break;
    }
  }
  for (std::size_t i = 0; i < asked; ++i) {
    if (!shared->results[i]) shared->signals[i].emit(asio::cancellation_type::terminal);
  }
  if (cancelled) co_return result;  // the caller stopped the check: it counts as not run

  bool any_good = false;
  for (std::size_t i = 0; i < asked; ++i) {
    const auto& r = shared->results[i];
    if (!r) {
      result.notes.push_back(Describe(targets[i]) + ": not waited for, a captive portal was found");
      continue;
    }
    if (r->verdict == Verdict::kCaptive) result.captive = true;
    if (r->verdict == Verdict::kGood) any_good = true;
    result.notes.push_back(Describe(targets[i]) + ": " + r->note);
  }
  if (!result.captive && any_good) result.captive = false;
  if (targets.size() > asked) {
    result.notes.push_back(std::to_string(targets.size() - asked) +
                           " more endpoints not asked (at most " + std::to_string(asked) +
                           " are, as Tailscale does)");
  }
  co_return result;
}

}  // namespace derpkit::netcheck
