// stun-load: fires Tailscale-form STUN binding requests at a responder from several UDP sockets
// and reports answers per second and, with --responder-pid, the responder's CPU per answer.
//
// Each socket keeps a fixed window of requests outstanding. A slot's request is built once (its
// transaction ID names the socket and the slot, so an answer finds its slot without a lookup)
// and sent again as soon as its answer arrives, or after --timeout, when it counts as lost.
// Sends and receives go through sendmmsg/recvmmsg on non-blocking sockets in one tight loop, so
// the generator spends its time in the kernel rather than in per-datagram system calls.
//
// Threads: --threads loops, each owning every --threads'th socket and its own counts, which the
// main thread adds up after joining them; the main thread only reads the CPU clocks at the edges
// of the measurement window. One thread is enough to keep one responder thread busy; a
// responder with several threads (derp-relay --workers N) needs as many here, on as many cores.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/proc_stats.h"
#include "bench/report.h"
#include "lib/stun/stun.h"
#include "lib/util/bytes.h"
#include "lib/util/netaddr.h"

namespace derpkit::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kTool = "stun-load";
constexpr std::size_t kRecvBatch = 64;
constexpr std::size_t kMaxDatagram = 512;

struct StunLoadConfig {
  std::string target = "127.0.0.1:3478";
  int sockets = 4;
  int window = 32;
  int threads = 1;
  int pad_bytes = 0;
  std::chrono::nanoseconds duration = 5s;
  std::chrono::nanoseconds warmup = 500ms;
  std::chrono::nanoseconds timeout = 200ms;
  pid_t relay_pid = 0;
  bool bare = false;
  bool json = false;
};

struct Slot {
  Bytes request;
  stun::TxId txid;
  bool outstanding = false;
  Clock::time_point sent_at;
};

struct Socket {
  int fd = -1;
  std::vector<Slot> slots;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

struct Counts {
  std::uint64_t sent = 0;
  std::uint64_t answers = 0;
  std::uint64_t lost = 0;     // no answer within --timeout
  std::uint64_t late = 0;     // an answer for a slot no longer waiting (after a timeout)
  std::uint64_t invalid = 0;  // datagrams that are not a Binding Success for one of ours
  std::uint64_t send_errors = 0;

  Counts& operator+=(const Counts& o) {
    sent += o.sent;
    answers += o.answers;
    lost += o.lost;
    late += o.late;
    invalid += o.invalid;
    send_errors += o.send_errors;
    return *this;
  }
};

// What one load thread did.
struct ThreadResult {
  Counts total;     // the whole run, warm-up included
  Counts measured;  // inside the window
  std::string refused;
};

// Drives sockets first, first + stride, ... of `socks` until `measure_end` (or until any thread
// sees the responder's port closed, which sets `stop`).
void RunLoadThread(std::vector<Socket>& socks, std::size_t first, std::size_t stride,
                   const StunLoadConfig& cfg, Clock::time_point measure_start,
                   Clock::time_point measure_end, std::atomic<bool>& stop, ThreadResult& out) {
  std::vector<mmsghdr> send_msgs(static_cast<std::size_t>(cfg.window));
  std::vector<iovec> send_iov(static_cast<std::size_t>(cfg.window));
  std::vector<std::size_t> send_slot(static_cast<std::size_t>(cfg.window));
  std::vector<std::array<std::byte, kMaxDatagram>> recv_buf(kRecvBatch);
  std::array<iovec, kRecvBatch> recv_iov;
  std::array<mmsghdr, kRecvBatch> recv_msgs;
  std::vector<pollfd> pfds;
  for (std::size_t s = first; s < socks.size(); s += stride)
    pfds.push_back({socks[s].fd, POLLIN, 0});
  Counts& total = out.total;
  Counts& measured = out.measured;
  std::string& refused = out.refused;

  while (!stop.load(std::memory_order_relaxed)) {
    const auto now = Clock::now();
    if (now >= measure_end) break;
    const bool in_window = now >= measure_start;
    bool received_any = false;
    for (std::size_t s = first; s < socks.size(); s += stride) {
      Socket& sock = socks[s];
      std::size_t n = 0;
      for (std::size_t i = 0; i < sock.slots.size(); ++i) {
        Slot& slot = sock.slots[i];
        if (slot.outstanding) {
          if (now - slot.sent_at < cfg.timeout) continue;
          slot.outstanding = false;
          ++total.lost;
          if (in_window) ++measured.lost;
        }
        send_iov[n] = {slot.request.data(), slot.request.size()};
        send_msgs[n] = {};
        send_msgs[n].msg_hdr.msg_iov = &send_iov[n];
        send_msgs[n].msg_hdr.msg_iovlen = 1;
        send_slot[n++] = i;
      }
      if (n > 0) {
        const int sent = ::sendmmsg(sock.fd, send_msgs.data(), static_cast<unsigned>(n), 0);
        if (sent < 0) {
          if (errno == ECONNREFUSED) {
            refused =
                "the responder's port is closed (ICMP port unreachable): nothing listens on " +
                cfg.target;
            break;
          }
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) ++total.send_errors;
        } else {
          for (int k = 0; k < sent; ++k) {
            Slot& slot = sock.slots[send_slot[static_cast<std::size_t>(k)]];
            slot.outstanding = true;
            slot.sent_at = now;
          }
          total.sent += static_cast<std::uint64_t>(sent);
          if (in_window) measured.sent += static_cast<std::uint64_t>(sent);
        }
      }
      for (std::size_t k = 0; k < kRecvBatch; ++k) {
        recv_iov[k] = {recv_buf[k].data(), recv_buf[k].size()};
        recv_msgs[k] = {};
        recv_msgs[k].msg_hdr.msg_iov = &recv_iov[k];
        recv_msgs[k].msg_hdr.msg_iovlen = 1;
      }
      const int got = ::recvmmsg(sock.fd, recv_msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
      if (got < 0) {
        if (errno == ECONNREFUSED) {
          refused = "the responder's port is closed (ICMP port unreachable): nothing listens on " +
                    cfg.target;
          break;
        }
        continue;
      }
      received_any = received_any || got > 0;
      for (int k = 0; k < got; ++k) {
        const ByteSpan datagram(recv_buf[static_cast<std::size_t>(k)].data(),
                                recv_msgs[static_cast<std::size_t>(k)].msg_len);
        auto resp = stun::ParseBindingResponse(datagram);
        const auto& id = resp ? resp->txid.bytes : stun::TxId{}.bytes;
        const std::size_t sock_index =
            resp ? (std::to_integer<std::size_t>(id[8]) << 8 | std::to_integer<std::size_t>(id[9]))
                 : 0;
        const std::size_t slot_index =
            resp
                ? (std::to_integer<std::size_t>(id[10]) << 8 | std::to_integer<std::size_t>(id[11]))
                : 0;
        if (!resp || sock_index != s || slot_index >= sock.slots.size() ||
            !(sock.slots[slot_index].txid == resp->txid)) {
          ++total.invalid;
          if (in_window) ++measured.invalid;
          continue;
        }
        Slot& slot = sock.slots[slot_index];
        if (!slot.outstanding) {
          ++total.late;
          if (in_window) ++measured.late;
          continue;
        }
        slot.outstanding = false;
        ++total.answers;
        if (in_window) ++measured.answers;
      }
    }
    if (!refused.empty()) {
      stop.store(true, std::memory_order_relaxed);
      break;
    }
    if (!received_any) ::poll(pfds.data(), pfds.size(), 1);
  }
}

// The transaction ID of slot `slot` of socket `sock`: a per-run random tag, then the indices.
stun::TxId MakeTxId(const std::array<std::byte, 8>& tag, std::uint16_t sock, std::uint16_t slot) {
  std::array<std::byte, stun::kTxIdSize> b{};
  std::memcpy(b.data(), tag.data(), tag.size());
  b[8] = static_cast<std::byte>(sock >> 8);
  b[9] = static_cast<std::byte>(sock & 0xff);
  b[10] = static_cast<std::byte>(slot >> 8);
  b[11] = static_cast<std::byte>(slot & 0xff);
  return stun::TxId::FromSpan(b);
}

// RFC 5780's PADDING attribute: what a client adds to make a request long.
constexpr std::uint16_t kAttrPadding = 0x0026;
constexpr int kMaxPadBytes = 60000;

// Tailscale's request with a PADDING attribute of `pad_bytes` between SOFTWARE and FINGERPRINT:
// a long request (as ICE agents send) that derper and the relay's strict mode still answer.
Bytes BuildPaddedRequest(const stun::TxId& txid, std::size_t pad_bytes) {
  const std::size_t padded = (pad_bytes + 3) & ~std::size_t{3};
  const std::size_t attrs = 4 + stun::kTailscaleSoftware.size() + 4 + padded + 8;
  Bytes out;
  AppendBigEndian16(out, stun::kTypeBindingRequest);
  AppendBigEndian16(out, static_cast<std::uint16_t>(attrs));
  AppendBigEndian32(out, stun::kMagicCookie);
  AppendBytes(out, txid.bytes);
  AppendBigEndian16(out, stun::kAttrSoftware);
  AppendBigEndian16(out, static_cast<std::uint16_t>(stun::kTailscaleSoftware.size()));
  AppendBytes(out, AsBytes(stun::kTailscaleSoftware));
  AppendBigEndian16(out, kAttrPadding);
  AppendBigEndian16(out, static_cast<std::uint16_t>(pad_bytes));
  out.resize(out.size() + padded, std::byte{0});
  const std::uint32_t fingerprint = stun::Fingerprint(out);
  AppendBigEndian16(out, stun::kAttrFingerprint);
  AppendBigEndian16(out, 4);
  AppendBigEndian32(out, fingerprint);
  return out;
}

int Main(int argc, char** argv) {
  StunLoadConfig cfg;
  std::string duration = "5s", warmup = "500ms", timeout = "200ms";
  CLI::App app{
      "stun-load: fires Tailscale-form STUN binding requests (40 bytes, SOFTWARE \"tailnode\" + "
      "FINGERPRINT) at a responder from several UDP sockets, keeping a window of requests "
      "outstanding per socket, and reports valid answers per second and the responder's CPU."};
  app.footer(
      "Example:\n"
      "  stun-load --target 127.0.0.1:3478 --sockets 4 --duration 5s --relay-pid $(pidof "
      "derp-relay)\n"
      "Exit status: 0 when answers came back, 1 when none did, 2 for bad flags.");
  app.option_defaults()->always_capture_default();
  app.add_option("--target", cfg.target, "The responder's UDP address, host:port (IP literal).");
  app.add_option("--sockets", cfg.sockets, "UDP sockets (distinct source ports).");
  app.add_option("--window", cfg.window, "Requests outstanding per socket.");
  app.add_option("--threads", cfg.threads,
                 "Load threads; socket i belongs to thread i mod --threads. Give a responder with "
                 "N threads N here (and the cores to run them).");
  app.add_option("-d,--duration", duration, "Measurement window (Go duration).");
  app.add_option("--warmup", warmup, "Load before the window starts, not counted.");
  app.add_option("--timeout", timeout,
                 "A request unanswered this long counts as lost and is resent.");
  app.add_option("--relay-pid,--responder-pid", cfg.relay_pid,
                 "Process id of the responder: report its CPU seconds over the window.");
  app.add_option("--pad-bytes", cfg.pad_bytes,
                 "Add a PADDING attribute of this many bytes to each request (long requests, as "
                 "ICE agents send; they cost the responder more than the generator).");
  app.add_flag("--bare", cfg.bare,
               "Send the 20-byte RFC 5389 request without attributes (derper ignores those).");
  app.add_flag("--json", cfg.json, "Print one JSON object instead of the table.");
  if (!ParseFlags(app, argc, argv, kTool)) return 0;
  cfg.duration = ParseDurationFlag(kTool, "duration", duration);
  cfg.warmup = ParseDurationFlag(kTool, "warmup", warmup);
  cfg.timeout = ParseDurationFlag(kTool, "timeout", timeout);
  if (cfg.sockets < 1 || cfg.sockets > 1024) FailUsage(kTool, "--sockets must be 1..1024");
  if (cfg.window < 1 || cfg.window > 4096) FailUsage(kTool, "--window must be 1..4096");
  if (cfg.threads < 1 || cfg.threads > cfg.sockets) {
    FailUsage(kTool, "--threads must be 1..--sockets (" + std::to_string(cfg.sockets) + ")");
  }
  if (cfg.duration <= 0s) FailUsage(kTool, "--duration must be positive");
  if (cfg.pad_bytes < 0 || cfg.pad_bytes > kMaxPadBytes) {
    FailUsage(kTool, "--pad-bytes must be 0.." + std::to_string(kMaxPadBytes));
  }
  if (cfg.pad_bytes > 0 && cfg.bare) FailUsage(kTool, "--pad-bytes and --bare exclude each other");
  if (cfg.relay_pid != 0) {
    if (auto ok = CheckProcess(cfg.relay_pid); !ok) FailUsage(kTool, "--relay-pid: " + ok.error());
  }
  auto hp = netaddr::ParseHostPort(cfg.target);
  if (!hp)
    FailUsage(kTool, "--target " + cfg.target + ": " + std::string(netaddr::Describe(hp.error())));
  auto ip = netaddr::ParseIp(hp->host);
  if (!ip) FailUsage(kTool, "--target " + cfg.target + ": the host must be an IP address");

  sockaddr_storage dst{};
  socklen_t dst_len = 0;
  if (ip->is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&dst);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(hp->port);
    const auto b = ip->v4_bytes();
    std::memcpy(&sin->sin_addr, b.data(), 4);
    dst_len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&dst);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(hp->port);
    std::memcpy(&sin6->sin6_addr, ip->raw().data(), 16);
    dst_len = sizeof(sockaddr_in6);
  }

  std::random_device rd;
  std::array<std::byte, 8> tag;
  for (auto& b : tag) b = static_cast<std::byte>(rd());
  std::vector<Socket> socks(static_cast<std::size_t>(cfg.sockets));
  for (std::size_t s = 0; s < socks.size(); ++s) {
    Socket& sock = socks[s];
    sock.fd = ::socket(dst.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock.fd < 0) FailUsage(kTool, std::string("socket: ") + std::strerror(errno));
    // Connected: the kernel filters other senders, and send/recv need no address.
    if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&dst), dst_len) != 0) {
      FailUsage(kTool, "connect " + cfg.target + ": " + std::strerror(errno));
    }
    const int buf = 4 << 20;
    ::setsockopt(sock.fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    ::setsockopt(sock.fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    sock.slots.resize(static_cast<std::size_t>(cfg.window));
    for (std::size_t i = 0; i < sock.slots.size(); ++i) {
      Slot& slot = sock.slots[i];
      slot.txid = MakeTxId(tag, static_cast<std::uint16_t>(s), static_cast<std::uint16_t>(i));
      slot.request =
          cfg.pad_bytes > 0
              ? BuildPaddedRequest(slot.txid, static_cast<std::size_t>(cfg.pad_bytes))
              : stun::BuildBindingRequest(
                    slot.txid, cfg.bare ? stun::RequestForm::kBare : stun::RequestForm::kTailscale);
    }
  }

  const auto start = Clock::now();
  const auto measure_start = start + cfg.warmup;
  const auto measure_end = measure_start + cfg.duration;
  std::optional<CpuTimes> relay_before, relay_after;
  std::string relay_error;
  auto read_relay = [&]() -> std::optional<CpuTimes> {
    if (!cfg.relay_pid) return std::nullopt;
    auto c = ReadCpuTimes(cfg.relay_pid);
    if (!c) {
      relay_error = c.error();
      return std::nullopt;
    }
    return *c;
  };

  std::atomic<bool> stop{false};
  std::vector<ThreadResult> results(static_cast<std::size_t>(cfg.threads));
  std::vector<std::thread> threads;
  const auto stride = static_cast<std::size_t>(cfg.threads);
  for (std::size_t t = 0; t < stride; ++t) {
    threads.emplace_back([&, t] {
      RunLoadThread(socks, t, stride, cfg, measure_start, measure_end, stop, results[t]);
    });
  }
  // The window's CPU readings, taken here while the load threads run. Short sleeps, so that a
  // closed port (a thread sets `stop`) ends the run at once.
  const auto sleep_until = [&stop](Clock::time_point t) {
    while (!stop.load(std::memory_order_relaxed) && Clock::now() < t) {
      std::this_thread::sleep_for(std::min<Clock::duration>(10ms, t - Clock::now()));
    }
  };
  sleep_until(measure_start);
  const CpuTimes self_before = SelfCpuTimes();
  relay_before = read_relay();
  sleep_until(measure_end);
  const CpuTimes self_after = SelfCpuTimes();
  relay_after = read_relay();
  for (auto& th : threads) th.join();

  Counts measured;
  std::string refused;
  for (const ThreadResult& r : results) {
    measured += r.measured;
    if (refused.empty()) refused = r.refused;
  }

  const double window_seconds = std::chrono::duration<double>(measure_end - measure_start).count();
  std::optional<double> relay_cpu;
  if (relay_before && relay_after) relay_cpu = relay_after->total() - relay_before->total();
  const double self_cpu = self_after.total() - self_before.total();
  const double answers_per_second = static_cast<double>(measured.answers) / window_seconds;
  std::optional<double> per_cpu;
  if (relay_cpu && *relay_cpu > 0) per_cpu = static_cast<double>(measured.answers) / *relay_cpu;

  if (cfg.json) {
    nlohmann::json j;
    j["tool"] = kTool;
    j["target"] = cfg.target;
    j["form"] = cfg.bare ? "bare" : "tailscale";
    j["request_bytes"] = socks.front().slots.front().request.size();
    j["sockets"] = cfg.sockets;
    j["window_per_socket"] = cfg.window;
    j["threads"] = cfg.threads;
    j["window_seconds"] = window_seconds;
    j["sent"] = measured.sent;
    j["answers"] = measured.answers;
    j["answers_per_second"] = answers_per_second;
    j["lost"] = measured.lost;
    j["late"] = measured.late;
    j["invalid"] = measured.invalid;
    j["loadgen_cpu_seconds"] = self_cpu;
    if (cfg.relay_pid) {
      j["relay_pid"] = cfg.relay_pid;
      j["relay_cpu_seconds"] = relay_cpu ? nlohmann::json(*relay_cpu) : nlohmann::json();
      j["answers_per_relay_cpu_second"] = per_cpu ? nlohmann::json(*per_cpu) : nlohmann::json();
    }
    j["error"] = refused.empty() ? nlohmann::json() : nlohmann::json(refused);
    std::printf("%s\n", j.dump(2).c_str());
  } else if (refused.empty()) {
    std::printf(
        "stun-load against %s: %d socket(s) x %d outstanding, %d thread(s), %s requests (%zu "
        "bytes)\n",
        cfg.target.c_str(), cfg.sockets, cfg.window, cfg.threads,
        cfg.bare ? "bare" : "Tailscale-form", socks.front().slots.front().request.size());
    Table t;
    t.AddRow({"requests sent", std::to_string(measured.sent)});
    t.AddRow({"valid answers", std::to_string(measured.answers)});
    t.AddRow({"answers/s", Fixed(answers_per_second, 0)});
    t.AddRow({"lost (no answer in " +
                  std::to_string(
                      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.timeout).count()) +
                  " ms)",
              std::to_string(measured.lost)});
    if (measured.late + measured.invalid > 0) {
      t.AddRow({"late / invalid answers",
                std::to_string(measured.late) + " / " + std::to_string(measured.invalid)});
    }
    t.AddRow({"window", Fixed(window_seconds, 2) + " s"});
    if (cfg.relay_pid) {
      t.AddRow({"responder CPU", relay_cpu ? Fixed(*relay_cpu, 2) + " s (" +
                                                 Fixed(*relay_cpu / window_seconds * 100, 0) +
                                                 "% of one core)"
                                           : "n/a: " + relay_error});
      t.AddRow({"answers per responder CPU-second", per_cpu ? Fixed(*per_cpu, 0) : "n/a"});
    } else {
      t.AddRow({"responder CPU", "not measured (give --relay-pid)"});
    }
    t.AddRow({"load generator CPU", Fixed(self_cpu, 2) + " s"});
    t.Print(stdout);
    std::printf("summary: %.0f answers/s", answers_per_second);
    if (per_cpu) std::printf(", %.0f answers per responder CPU-second", *per_cpu);
    std::printf("\n");
  }
  if (!refused.empty()) {
    std::fprintf(stderr, "%s: %s\n", kTool.data(), refused.c_str());
    return 1;
  }
  if (measured.answers == 0) {
    std::fprintf(stderr, "%s: no valid answer from %s in %.1f s\n", kTool.data(),
                 cfg.target.c_str(), window_seconds);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace derpkit::bench

int main(int argc, char** argv) { return derpkit::bench::Main(argc, argv); }
