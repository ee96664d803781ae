// AsyncWaitReadableDrained: waits until a TCP socket that its reader has just read empty is
// readable again, without the epoll_ctl(EPOLL_CTL_MOD) that asio's async_wait(wait_read) makes
// on every call.
//
// Why: asio 1.22 registers every socket with its epoll reactor once, edge-triggered, and
// async_wait re-arms it with EPOLL_CTL_MOD each time, so that readiness which came before the
// wait is reported too. A reader that has just seen the socket empty does not need that: the
// next byte to arrive is a new edge. Under one-frame-per-write traffic that MOD was one syscall
// of every three the relay made per packet (recv, sendmsg, epoll_ctl), and epoll_ctl is dear on
// a VM; BENCHMARKS.md has the gain. No asio call does this (async_wait and null_buffers
// receives both re-arm; a real async_read_some would need a read buffer per idle connection),
// so this is a reactor operation of asio's own, written here.
//
// How: the wait is queued on the socket's epoll reactor the way asio queues a speculative read.
// If asio saw the socket become readable while no operation waited for it, the wait completes
// at once; otherwise it waits for the next EPOLLIN, EPOLLERR or EPOLLHUP. It reports itself
// "exhausted", so asio forgets the readiness it consumed, as after a short read of its own.
//
// Contract: call it only when, since this socket's last readiness wait completed, a read found
// the socket empty (a recv returned fewer bytes than it asked for, or EAGAIN). Otherwise bytes
// that are already there wait for the next arrival. The wait ends with operation_aborted when
// the socket is closed or cancel()led; the first wait on a socket completes at once (asio
// starts out taking a new socket for readable); per-operation cancellation (cancellation slots) is
// not supported. The handler runs as asio's own handlers do (on the socket's executor).
//
// Thread affinity: the thread that runs the socket's io_context.
#pragma once

#include <asio.hpp>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace derpkit::net {

namespace drained_wait_detail {

static_assert(std::is_same_v<asio::detail::reactor, asio::detail::epoll_reactor>,
              "AsyncWaitReadableDrained is written for asio's epoll reactor");

// basic_socket keeps its implementation protected; a pointer to member named through a derived
// class reaches it without a cast.
struct SocketAccess : asio::ip::tcp::socket {
  static auto& Impl(asio::ip::tcp::socket& socket) { return socket.*(&SocketAccess::impl_); }
};

// asio's reactive_wait_op, except that it reports done_and_exhausted (see above).
template <typename Handler, typename IoExecutor>
class DrainedWaitOp : public asio::detail::reactor_op {
 public:
  ASIO_DEFINE_HANDLER_PTR(DrainedWaitOp);

  DrainedWaitOp(Handler& handler, const IoExecutor& io_ex)
      : reactor_op(std::error_code(), &DrainedWaitOp::Perform, &DrainedWaitOp::Complete),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  static status Perform(reactor_op*) { return done_and_exhausted; }

  static void Complete(void* owner, asio::detail::operation* base, const std::error_code&,
                       std::size_t) {
    auto* op = static_cast<DrainedWaitOp*>(base);
    ptr p = {std::addressof(op->handler_), op, op};
    asio::detail::handler_work<Handler, IoExecutor> work(std::move(op->work_));
    // The handler moves out before the operation's memory is freed: it may own that memory.
    asio::detail::binder1<Handler, std::error_code> bound(op->handler_, op->ec_);
    p.h = std::addressof(bound.handler_);
    p.reset();
    if (owner != nullptr) {
      asio::detail::fenced_block fence(asio::detail::fenced_block::half);
      work.complete(bound, bound.handler_);
    }
  }

 private:
  Handler handler_;
  asio::detail::handler_work<Handler, IoExecutor> work_;
};

template <typename Handler>
void Start(asio::detail::reactor& reactor, asio::ip::tcp::socket& socket, Handler& handler) {
  using Op = DrainedWaitOp<Handler, asio::ip::tcp::socket::executor_type>;
  auto& impl = SocketAccess::Impl(socket);
  auto& state = impl.get_implementation();
  typename Op::ptr p = {std::addressof(handler), Op::ptr::allocate(handler), nullptr};
  p.p = new (p.v) Op(handler, impl.get_executor());
  reactor.start_op(asio::detail::reactor::read_op, state.socket_, state.reactor_data_, p.p,
                   /*is_continuation=*/false, /*allow_speculative=*/true);
  p.v = p.p = nullptr;
}

}  // namespace drained_wait_detail

// The epoll reactor that a socket's waits go to. The lookup takes a lock and walks the
// io_context's list of services, so a socket's owner keeps the result for its later waits.
using SocketReactor = asio::detail::reactor;
inline SocketReactor& ReactorOf(asio::ip::tcp::socket& socket) {
  return asio::use_service<SocketReactor>(
      asio::query(socket.get_executor(), asio::execution::context));
}

// Completes with an empty error_code once the socket is readable (bytes, EOF or an error to
// read), or operation_aborted when it is closed. See the contract above. `reactor` is
// ReactorOf(socket).
template <typename Token>
auto AsyncWaitReadableDrained(SocketReactor& reactor, asio::ip::tcp::socket& socket,
                              Token&& token) {
  return asio::async_initiate<Token, void(std::error_code)>(
      [&reactor, &socket](auto&& handler) {
        std::decay_t<decltype(handler)> owned(std::move(handler));
        drained_wait_detail::Start(reactor, socket, owned);
      },
      token);
}

template <typename Token>
auto AsyncWaitReadableDrained(asio::ip::tcp::socket& socket, Token&& token) {
  return AsyncWaitReadableDrained(ReactorOf(socket), socket, std::forward<Token>(token));
}

}  // namespace derpkit::net
