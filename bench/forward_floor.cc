// forward-floor: what the kernel alone charges a relay for one traffic shape on this machine, so
// that a relay row can be read against it. Pairs of loopback TCP connections; a paced sender
// writes each message with its own write() (as Tailscale's client writes one TLS record per
// packet: derp-load --tls-record-per-frame); a forwarder thread reads each inbound socket and
// writes what it read, unparsed and unencrypted, to the pair's outbound socket; a receiver reads
// everything. The forwarder's CPU per delivered Mbit is the floor: a relay does this and more
// (frames, routing, TLS), so no relay row of the same shape can beat it.
//
// Two forwarders, the same work:
//   epoll     the relay's way: edge-triggered epoll; on readiness one recv into a 64 KiB buffer
//             (a short read means the socket is empty), then one send of what came.
//   io_uring  a multishot recv per inbound socket into a provided-buffer ring, each completion
//             sent on by an IORING_OP_SEND from the same buffer, which returns to the ring when
//             the send completes; submission and reaping in one io_uring_submit_and_wait per
//             loop, task work deferred to that call (SINGLE_ISSUER | DEFER_TASKRUN).
// This is the io_uring measurement of issue #11 (bench/MEASUREMENTS.md): liburing
// here, because asio's io_uring backend has no multishot receive or provided buffers.
//
// --mode latency is derp-load --mode latency's shape with no relay: A pings B every --interval
// through one pair, B echoes each ping back through a second, A records the round trips. A and B
// share one thread and one epoll (as derp-load's latency pair shares one event loop), so a round
// trip is the same four wake-ups as through a relay: forwarder, B, forwarder, A. Its percentiles
// are the floor of the relay's latency rows on this machine.
//
// Threads: the main thread builds the sockets and reads the clocks at the window's edges; the
// sender, the forwarder and the receiver are one thread each, stopped in that order (the sender
// first, so that no write blocks on a forwarder that has gone). In latency mode the pinger (A
// and B) takes the sender's and the receiver's place.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bench/proc_stats.h"
#include "bench/report.h"
#include "bench/round_trips.h"

namespace derpkit::bench {
namespace {

constexpr const char* kTool = "forward-floor";
constexpr std::size_t kForwardBufferSize = 64 * 1024;
// What a 1400 B packet costs on the wire beyond its payload in derp-load's TLS rows: a DERP
// SendPacket/RecvPacket frame header (5 B) and key (32 B), and a TLS 1.3 record's header, inner
// content type and tag (5 + 1 + 16 B).
constexpr int kDefaultOverhead = 5 + 32 + 5 + 1 + 16;

[[noreturn]] void FailSystem(const std::string& what, int err) {
  std::fprintf(stderr, "%s: %s: %s\n", kTool, what.c_str(), std::strerror(err));
  std::exit(1);
}

struct Sockets {
  std::vector<int> send, forward_in, forward_out, receive;
  ~Sockets() {
    for (const auto* v : {&send, &forward_in, &forward_out, &receive})
      for (int fd : *v) ::close(fd);
  }
};

// One loopback TCP connection through `listener`: {the connecting end, the accepted end}, both
// with TCP_NODELAY (as the relay and Go's clients set it).
std::pair<int, int> ConnectedPair(int listener, const sockaddr_in& addr) {
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client < 0) FailSystem("socket", errno);
  if (::connect(client, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0)
    FailSystem("connect to 127.0.0.1", errno);
  const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (accepted < 0) FailSystem("accept", errno);
  const int one = 1;
  for (int fd : {client, accepted}) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {client, accepted};
}

void MakeSockets(std::size_t pairs, Sockets& s) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) FailSystem("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0 ||
      ::listen(listener, 128) < 0)
    FailSystem("listen on 127.0.0.1", errno);
  for (std::size_t i = 0; i < pairs; ++i) {
    auto [sender, in] = ConnectedPair(listener, addr);
    auto [receiver, out] = ConnectedPair(listener, addr);
    s.send.push_back(sender);
    s.forward_in.push_back(in);
    s.forward_out.push_back(out);
    s.receive.push_back(receiver);
  }
  ::close(listener);
  // A sender blocked for 2 s means the forwarder is gone: fail rather than hang.
  const timeval two_seconds{2, 0};
  for (int fd : s.send) ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two_seconds, sizeof two_seconds);
}

struct Counters {
  std::atomic<bool> stop_sender{false};
  std::atomic<bool> stop{false};
  std::atomic<long long> sent_messages{0};
  std::atomic<long long> received_bytes{0};
};

// Every millisecond, each pair's due messages leave with one write() each (derp-load's paced
// sender with --tls-record-per-frame). Rate 0: as fast as the sockets take them.
void RunSender(const std::vector<int>& fds, double rate_mbps, std::size_t payload, std::size_t wire,
               Counters& c) {
  std::vector<char> message(wire, 'x');
  const double per_pair_per_ms =
      rate_mbps * 1e6 / 8 / static_cast<double>(payload) / 1000 / static_cast<double>(fds.size());
  std::vector<double> owed(fds.size(), 0);
  timespec next{};
  ::clock_gettime(CLOCK_MONOTONIC, &next);
  while (!c.stop_sender.load(std::memory_order_relaxed)) {
    if (rate_mbps > 0) {
      next.tv_nsec += 1'000'000;
      if (next.tv_nsec >= 1'000'000'000) {
        next.tv_nsec -= 1'000'000'000;
        ++next.tv_sec;
      }
      ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      owed[i] = rate_mbps > 0 ? owed[i] + per_pair_per_ms : 1;
      for (; owed[i] >= 1; owed[i] -= 1) {
        std::size_t done = 0;
        while (done < wire) {
          const ssize_t n = ::write(fds[i], message.data() + done, wire - done);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) FailSystem("sender write", errno);
          done += static_cast<std::size_t>(n);
        }
        c.sent_messages.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

void RunReceiver(const std::vector<int>& fds, Counters& c) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) FailSystem("epoll_create1", errno);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fds[i];
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  std::vector<char> buffer(kForwardBufferSize);
  epoll_event events[64];
  while (!c.stop.load(std::memory_order_relaxed)) {
    const int n = ::epoll_wait(ep, events, 64, 100);
    for (int k = 0; k < n; ++k) {
      const ssize_t got = ::recv(events[k].data.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (got > 0) c.received_bytes.fetch_add(got, std::memory_order_relaxed);
    }
  }
  ::close(ep);
}

// Sends all of `data` on a non-blocking socket, waiting for room if the receiver lags.
void SendAll(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      std::this_thread::yield();
      continue;
    }
    if (n < 0) FailSystem("forwarder send", errno);
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void ForwardWithEpoll(const Sockets& s, Counters& c) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) FailSystem("epoll_create1", errno);
  for (std::size_t i = 0; i < s.forward_in.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, s.forward_in[i], &ev);
  }
  std::vector<char> buffer(kForwardBufferSize);
  epoll_event events[64];
  while (!c.stop.load(std::memory_order_relaxed)) {
    const int n = ::epoll_wait(ep, events, 64, 100);
    for (int k = 0; k < n; ++k) {
      const std::size_t i = events[k].data.u64;
      for (;;) {
        const ssize_t got = ::recv(s.forward_in[i], buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got <= 0) break;
        SendAll(s.forward_out[i], buffer.data(), static_cast<std::size_t>(got));
        if (static_cast<std::size_t>(got) < buffer.size()) break;
      }
    }
  }
  ::close(ep);
}

void ForwardWithIoUring(const Sockets& s, Counters& c) {
  constexpr unsigned kBuffers = 256;
  constexpr int kGroup = 1;
  io_uring ring{};
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (const int e = ::io_uring_queue_init_params(1024, &ring, &params); e < 0)
    FailSystem("io_uring_queue_init_params (SINGLE_ISSUER|DEFER_TASKRUN: Linux 6.1 or later)", -e);
  // liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring: the ring's memory is ours.
  void* ring_memory = nullptr;
  if (const int e = ::posix_memalign(&ring_memory, 4096, kBuffers * sizeof(io_uring_buf)); e != 0)
    FailSystem("posix_memalign", e);
  auto* buffer_ring = static_cast<io_uring_buf_ring*>(ring_memory);
  ::io_uring_buf_ring_init(buffer_ring);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<std::uintptr_t>(buffer_ring);
  registration.ring_entries = kBuffers;
  registration.bgid = kGroup;
  if (const int e = ::io_uring_register_buf_ring(&ring, &registration, 0); e < 0)
    FailSystem("io_uring_register_buf_ring (provided buffer rings: Linux 5.19 or later)", -e);
  std::vector<char> buffers(std::size_t{kBuffers} * kForwardBufferSize);
  const int mask = ::io_uring_buf_ring_mask(kBuffers);
  auto give_back = [&](unsigned id, int offset) {
    ::io_uring_buf_ring_add(buffer_ring, buffers.data() + id * kForwardBufferSize,
                            kForwardBufferSize, static_cast<unsigned short>(id), mask, offset);
  };
  for (unsigned id = 0; id < kBuffers; ++id) give_back(id, static_cast<int>(id));
  ::io_uring_buf_ring_advance(buffer_ring, kBuffers);

  // A receive's user_data is its pair; a send's is kSendTag | its buffer id, and what the send
  // still owes is kept per buffer (one send in flight per buffer). A short send's remainder may
  // leave after the pair's next buffer: the receiver counts bytes and never reads them, so the
  // floor does not keep a per-pair queue that a relay would need.
  constexpr std::uint64_t kSendTag = std::uint64_t{1} << 63;
  struct Sending {
    std::size_t pair = 0;
    unsigned length = 0, done = 0;
  };
  std::vector<Sending> sending(kBuffers);
  auto get_sqe = [&] {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
    if (sqe == nullptr) {  // the queue is full: hand it to the kernel and take a fresh entry
      ::io_uring_submit(&ring);
      sqe = ::io_uring_get_sqe(&ring);
    }
    return sqe;
  };
  auto arm_receive = [&](std::size_t pair) {
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_recv_multishot(sqe, s.forward_in[pair], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    ::io_uring_sqe_set_data64(sqe, pair);
  };
  auto send = [&](unsigned id) {
    const Sending& out = sending[id];
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_send(sqe, s.forward_out[out.pair],
                         buffers.data() + id * kForwardBufferSize + out.done, out.length - out.done,
                         MSG_NOSIGNAL);
    ::io_uring_sqe_set_data64(sqe, kSendTag | id);
  };
  for (std::size_t i = 0; i < s.forward_in.size(); ++i) arm_receive(i);

  __kernel_timespec tick{0, 100'000'000};
  while (!c.stop.load(std::memory_order_relaxed)) {
    io_uring_cqe* cqe = nullptr;
    ::io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &tick, nullptr);
    unsigned head = 0, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::uint64_t data = ::io_uring_cqe_get_data64(cqe);
      if (data & kSendTag) {
        const auto id = static_cast<unsigned>(data & 0xffff);
        Sending& out = sending[id];
        if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR)
          FailSystem("forwarder send", -cqe->res);
        if (cqe->res > 0) out.done += static_cast<unsigned>(cqe->res);
        if (out.done < out.length) {
          send(id);
        } else {
          give_back(id, 0);
          ::io_uring_buf_ring_advance(buffer_ring, 1);
        }
        continue;
      }
      const auto pair = static_cast<std::size_t>(data);
      if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        const unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        sending[id] = {pair, static_cast<unsigned>(cqe->res), 0};
        send(id);
      } else if (cqe->res < 0 && cqe->res != -ENOBUFS) {
        FailSystem("forwarder multishot recv", -cqe->res);
      }
      // The kernel ends a multishot receive when it runs out of buffers (ENOBUFS); start again.
      if (cqe->res != 0 && !(cqe->flags & IORING_CQE_F_MORE)) arm_receive(pair);
    }
    ::io_uring_cq_advance(&ring, seen);
  }
  ::io_uring_queue_exit(&ring);
  std::free(ring_memory);
}

// The latency pair's thread (--mode latency): A writes a ping of `wire` bytes (its send time and
// sequence number in the first 16) to pair 0 on a timerfd every `interval`; B echoes whatever it
// reads from pair 0 into pair 1; A takes each whole ping from pair 1 and records its round trip.
// The first `warmup` pings are not recorded. After the last ping, answers are awaited up to
// 500 ms.
RoundTrips RunPingPong(const Sockets& s, std::size_t wire, std::chrono::nanoseconds interval,
                       int warmup, int samples) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (ep < 0 || timer < 0) FailSystem("epoll_create1/timerfd_create", errno);
  const int b_in = s.receive[0], a_in = s.receive[1];
  for (int fd : {timer, b_in, a_in}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  itimerspec every{};
  every.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1'000'000'000);
  every.it_interval.tv_nsec = static_cast<long>(interval.count() % 1'000'000'000);
  every.it_value = every.it_interval;
  ::timerfd_settime(timer, 0, &every, nullptr);

  auto now_ns = [] {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  RoundTrips trips;
  std::vector<char> ping(wire, 'p'), buffer(kForwardBufferSize), pongs;
  const std::int64_t total = warmup + samples;
  std::int64_t next_seq = 0, answered = 0;
  std::int64_t give_up_ns = 0;  // set when the last ping has left
  epoll_event events[4];
  while (answered < total && (give_up_ns == 0 || now_ns() < give_up_ns)) {
    const int n = ::epoll_wait(ep, events, 4, 100);
    for (int k = 0; k < n; ++k) {
      const int fd = events[k].data.fd;
      if (fd == timer) {
        std::uint64_t expirations = 0;
        if (::read(timer, &expirations, sizeof expirations) < 0 || next_seq >= total) continue;
        const std::int64_t stamp[2] = {now_ns(), next_seq};
        std::memcpy(ping.data(), stamp, sizeof stamp);
        SendAll(s.send[0], ping.data(), wire);
        if (next_seq >= warmup) ++trips.sent;
        if (++next_seq == total) give_up_ns = now_ns() + 500'000'000;
      } else if (fd == b_in) {
        const ssize_t got = ::recv(b_in, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got > 0) SendAll(s.send[1], buffer.data(), static_cast<std::size_t>(got));
      } else {
        const ssize_t got = ::recv(a_in, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got <= 0) continue;
        const std::int64_t arrived_ns = now_ns();
        pongs.insert(pongs.end(), buffer.data(), buffer.data() + got);
        std::size_t taken = 0;
        for (; pongs.size() - taken >= wire; taken += wire) {
          std::int64_t stamp[2];
          std::memcpy(stamp, pongs.data() + taken, sizeof stamp);
          ++answered;
          if (stamp[1] >= warmup) trips.sorted_ns.push_back(arrived_ns - stamp[0]);
        }
        pongs.erase(pongs.begin(), pongs.begin() + static_cast<std::ptrdiff_t>(taken));
      }
    }
  }
  ::close(timer);
  ::close(ep);
  std::sort(trips.sorted_ns.begin(), trips.sorted_ns.end());
  return trips;
}

double ThreadCpuSeconds(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// The forwarder thread of either kind, on `sockets` until `counters.stop`.
std::thread StartForwarder(const std::string& loop, const Sockets& sockets, Counters& counters) {
  return std::thread([&loop, &sockets, &counters] {
    if (loop == "io_uring")
      ForwardWithIoUring(sockets, counters);
    else
      ForwardWithEpoll(sockets, counters);
  });
}

// --mode latency: the forwarder on two pairs, the ping-pong thread on their ends.
int RunLatency(const std::string& loop, std::size_t payload, std::size_t wire,
               std::chrono::nanoseconds interval, int samples, bool json) {
  Sockets sockets;
  MakeSockets(2, sockets);
  Counters counters;
  std::thread forwarder = StartForwarder(loop, sockets, counters);
  const RoundTrips trips = RunPingPong(sockets, wire, interval, 100, samples);
  counters.stop = true;
  forwarder.join();
  if (json) {
    nlohmann::json out = {{"tool", kTool},
                          {"mode", "latency"},
                          {"loop", loop},
                          {"wire_bytes_per_packet", wire},
                          {"latency", RoundTripsJson(trips, payload, interval)}};
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    Table table;
    table.AddRow({"forwarder", loop});
    table.AddRow({"ping", std::to_string(payload) + " B payload, " + std::to_string(wire) +
                              " B on the wire, every " +
                              Fixed(static_cast<double>(interval.count()) / 1000.0, 0) + " us"});
    AddRoundTripRows(table, trips);
    table.Print(stdout);
    if (!trips.sorted_ns.empty()) std::printf("summary: %s\n", RoundTripSummary(trips).c_str());
  }
  return trips.sorted_ns.empty() ? 1 : 0;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "forward-floor: the kernel's cost of forwarding one traffic shape over loopback TCP, with "
      "an epoll or an io_uring forwarder that neither parses nor encrypts: the floor that relay "
      "rows of the same shape (derp-load --tls-record-per-frame) are read against. Prints "
      "delivered Mbit/s and Mbit per forwarder CPU-second; with --mode latency, the round trips "
      "of pings through the forwarder (the floor of derp-load --mode latency)."};
  app.footer(
      "Example:\n"
      "  forward-floor --loop epoll --rate-mbps 1000\n"
      "  forward-floor --loop io_uring --rate-mbps 500 --duration 5s --json\n"
      "  forward-floor --mode latency --samples 2000 --interval 1ms\n"
      "Exit status: 0 when the run completed, 1 when a socket or io_uring failed, 2 for bad "
      "flags.");
  std::string mode = "throughput";
  std::string loop = "epoll";
  int samples = 2000;
  std::string interval_text = "1ms";
  double rate_mbps = 1000;
  std::size_t pairs = 10;
  std::size_t payload = 1400;
  int overhead = kDefaultOverhead;
  std::string duration_text = "5s", warmup_text = "1s";
  bool json = false;
  app.add_option("--mode", mode,
                 "throughput: paced pairs, Mbit per forwarder CPU-second; latency: round trips "
                 "of pings, as derp-load --mode latency.")
      ->check(CLI::IsMember({"throughput", "latency"}));
  app.add_option("--samples", samples, "Latency mode: pings recorded (after 100 not recorded).")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--interval", interval_text, "Latency mode: time between pings (Go duration).");
  app.add_option("--loop", loop, "Forwarder: epoll (the relay's way) or io_uring.")
      ->check(CLI::IsMember({"epoll", "io_uring"}));
  app.add_option("-r,--rate-mbps", rate_mbps,
                 "Aggregate offered payload rate in Mbit/s, paced per pair every 1 ms; 0 = "
                 "unpaced.")
      ->check(CLI::Range(0.0, 100000.0));
  app.add_option("-p,--pairs", pairs, "Pairs (one inbound and one outbound connection each).")
      ->check(CLI::Range(1, 1000));
  CLI::Option* size_flag =
      app.add_option("-s,--size", payload,
                     "Payload bytes per message (counted in Mbit/s; latency mode: default 64, "
                     "as derp-load's pings).")
          ->check(CLI::Range(16, 65536));
  app.add_option("--overhead", overhead,
                 "Wire bytes per message beyond the payload (default: a DERP frame's header and "
                 "key and a TLS 1.3 record's overhead, as in derp-load's TLS rows).")
      ->check(CLI::Range(0, 65536));
  app.add_option("-d,--duration", duration_text, "Measurement window (Go duration).");
  app.add_option("--warmup", warmup_text, "Load before the window starts (Go duration).");
  app.add_flag("--json", json, "Print one JSON object instead of the table.");
  if (!ParseFlags(app, argc, argv, kTool)) return 0;
  const auto window = ParseDurationFlag(kTool, "duration", duration_text);
  const auto warmup = ParseDurationFlag(kTool, "warmup", warmup_text);
  if (window <= std::chrono::nanoseconds::zero()) FailUsage(kTool, "--duration must be positive");
  if (mode == "latency" && size_flag->count() == 0) payload = 64;
  const std::size_t wire = payload + static_cast<std::size_t>(overhead);
  if (mode == "latency") {
    const auto interval = ParseDurationFlag(kTool, "interval", interval_text);
    if (interval <= std::chrono::nanoseconds::zero())
      FailUsage(kTool, "--interval must be positive");
    return RunLatency(loop, payload, wire, interval, samples, json);
  }

  Sockets sockets;
  MakeSockets(pairs, sockets);
  Counters counters;
  std::thread forwarder = StartForwarder(loop, sockets, counters);
  clockid_t forwarder_clock{};
  ::pthread_getcpuclockid(forwarder.native_handle(), &forwarder_clock);
  std::thread receiver([&] { RunReceiver(sockets.receive, counters); });
  std::thread sender([&] { RunSender(sockets.send, rate_mbps, payload, wire, counters); });

  std::this_thread::sleep_for(warmup);
  const long long sent_before = counters.sent_messages.load();
  const long long received_before = counters.received_bytes.load();
  const double forwarder_before = ThreadCpuSeconds(forwarder_clock);
  const CpuTimes window_start = SelfCpuTimes();
  std::this_thread::sleep_for(window);
  const long long sent = counters.sent_messages.load() - sent_before;
  const long long received = counters.received_bytes.load() - received_before;
  const double forwarder_cpu = ThreadCpuSeconds(forwarder_clock) - forwarder_before;
  const CpuTimes window_end = SelfCpuTimes();
  counters.stop_sender = true;
  sender.join();
  counters.stop = true;
  forwarder.join();
  receiver.join();

  const double seconds = std::chrono::duration<double>(window).count();
  const double payload_share = static_cast<double>(payload) / static_cast<double>(wire);
  const double delivered_mbps = static_cast<double>(received) * 8 * payload_share / 1e6 / seconds;
  const double sent_mbps =
      static_cast<double>(sent) * static_cast<double>(payload) * 8 / 1e6 / seconds;
  const double per_cpu = forwarder_cpu > 0 ? delivered_mbps * seconds / forwarder_cpu : 0;
  // The sender and the receiver: the process's CPU less the forwarder's, over their two threads.
  const double loadgen_cpu = window_end.total() - window_start.total() - forwarder_cpu;
  if (json) {
    nlohmann::json out = {{"tool", kTool},
                          {"loop", loop},
                          {"pairs", pairs},
                          {"packet_size_bytes", payload},
                          {"wire_bytes_per_packet", wire},
                          {"offered_mbps", rate_mbps > 0 ? nlohmann::json(rate_mbps) : nullptr},
                          {"sent_mbps", sent_mbps},
                          {"delivered_mbps", delivered_mbps},
                          {"window_seconds", seconds},
                          {"forwarder_cpu_seconds", forwarder_cpu},
                          {"mbit_per_forwarder_cpu_second", per_cpu},
                          {"loadgen_cpu_seconds", loadgen_cpu},
                          {"loadgen_busy_fraction", loadgen_cpu / (2 * seconds)}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  Table table;
  table.AddRow({"forwarder", loop});
  table.AddRow({"offered", rate_mbps > 0 ? Fixed(rate_mbps, 0) + " Mbit/s" : "unpaced"});
  table.AddRow({"sent", Fixed(sent_mbps, 1) + " Mbit/s"});
  table.AddRow({"delivered", Fixed(delivered_mbps, 1) + " Mbit/s"});
  table.AddRow({"forwarder CPU", Fixed(forwarder_cpu / seconds * 100, 0) + "% of one core"});
  table.AddRow({"Mbit per forwarder CPU-second", Fixed(per_cpu, 0)});
  table.Print(stdout);
  return 0;
}

}  // namespace
}  // namespace derpkit::bench

int main(int argc, char** argv) { return derpkit::bench::Main(argc, argv); }
