// kAsTuple: the completion token for Asio coroutines that want (error_code, result...) tuples
// instead of exceptions. One definition for every program (a local copy per file clashed in
// unity builds). Header only; no state, no thread.
#pragma once

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace derpkit::net {

inline constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);

}  // namespace derpkit::net
