// The relay's STUN responder: answers RFC 5389 Binding Requests with the sender's address
// (derp-protocol.md §11) on one UDP socket. Stateless; the codec lives in lib/stun, the socket is
// opened by relay/stun_sockets.h, the counters live in relay/stun_stats.h.
//
// Threading: the responder owns its threads (not the shards': a STUN flood then never delays
// DERP frames on a shard's loop). The first always waits in a blocking recvmmsg; with no event
// loop the socket has no epoll entry, which every datagram sent or received would otherwise
// wake. Each further thread (up to --workers) is called in only when the one before it reads
// full batches and still falls behind (the kernel drops requests, or the queue is half full),
// and parks again when a batch comes back short. A load one thread carries therefore costs what
// it costs with one thread: one SO_REUSEPORT socket per thread was measured here and spread such
// a load over threads that each woke for a third of the datagrams, tripling the system calls per
// answer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "relay/stun_sockets.h"
#include "relay/stun_stats.h"

namespace derpkit::relay {

struct StunServerConfig {
  // An IP literal to bind to; empty means the wildcard, dual-stack if the host has IPv6 ([::]
  // with IPV6_V6ONLY off), else 0.0.0.0. Host names are not resolved.
  std::string listen_host = "";
  std::uint16_t port = 3478;  // 0 picks an ephemeral port (tests); read it back with port()
  // true: answer only what derper answers (Tailscale's 40-byte request with SOFTWARE "tailnode"
  // and a valid FINGERPRINT). false: answer any valid Binding Request, so generic STUN tools
  // (coturn's turnutils_stunclient, browsers) work too.
  bool strict = false;
  // Threads that may answer (the relay passes --workers); see the threading note above.
  int threads = 1;
};

// Answers Binding Requests. Owns its socket and threads; borrows `stats`, which must outlive it.
//
// The constructor, Start() and Stop() may run on any thread except the responder's own.
//
// Hot path, per thread: recvmmsg of up to a batch, the replies written over the requests in
// preallocated buffers, one sendmmsg; nothing is allocated per datagram, and the counters and the
// latency clock are touched once per batch. Requests up to a full datagram (64 KiB) are
// answered: small ones stay in small slots, longer ones continue into a lazily mapped
// per-thread overflow arena.
class StunServer {
 public:
  // Opens and binds the socket, so the server is reachable (datagrams queue in the kernel) once
  // this returns. Throws std::system_error naming the address if the address is not an IP
  // literal or the socket cannot be opened or bound.
  StunServer(const StunServerConfig& config, StunStats& stats);
  ~StunServer();
  StunServer(const StunServer&) = delete;
  StunServer& operator=(const StunServer&) = delete;

  // Returns the bound port (the ephemeral one when the config said 0).
  std::uint16_t port() const { return port_; }
  std::size_t thread_count() const { return readers_.size(); }
  // Replies sent by thread `i` so far, and how often thread `i` (>= 1) was called in to help.
  // Any thread may read them.
  std::uint64_t answered(std::size_t i) const;
  std::uint64_t calls_to_help(std::size_t i) const;

  // Starts the threads. Call once.
  void Start();
  // Stops the threads, waits for them, and closes the socket. Idempotent. The server cannot be
  // restarted.
  void Stop();

 private:
  struct Batch;  // recvmmsg/sendmmsg buffers, defined in the .cc
  struct Tally;  // one batch's counts
  // One thread: its buffers and, for threads after the first, how it is called in.
  struct Reader {
    Reader();
    ~Reader();
    std::unique_ptr<Batch> batch;
    std::thread thread;
    // Released once per call to help (and by Stop()); `helping` keeps the count at most 1
    // between calls: only a caller that flips it from false releases.
    std::counting_semaphore<> wake{0};
    std::atomic<bool> helping{false};
    std::atomic<std::uint64_t> answered{0};       // written by `thread` only
    std::atomic<std::uint64_t> calls_to_help{0};  // written by the thread before it only
    std::uint32_t drops_seen = 0;                 // SK_MEMINFO_DROPS at this thread's last look
  };
  enum class ReadResult { kEmpty, kPartial, kFull, kError };

  // The first thread's loop, and a helper's (`i` >= 1).
  void RunFirst();
  void RunHelper(std::size_t i);
  // Calls thread `i` in, unless there is none, it is already helping, or `caller` is keeping up.
  void MaybeCallInHelper(Reader& caller, std::size_t i);
  // Whether one more thread is needed, by the socket's SO_MEMINFO: the kernel dropped requests
  // since `r` last looked (the queue overflowed), or the queue is at least half full. A batch
  // that merely came back full is not enough: a client with many requests in flight fills a
  // batch without one thread falling behind, and a helper called in then costs wake-ups and, on
  // a machine with no idle core, gains nothing. One getsockopt, after full batches only.
  bool FallingBehind(Reader& r) const;
  // One recvmmsg (with `flags`) and the answers to what it read.
  ReadResult ReadAndAnswer(Reader& r, int flags);
  // Parses datagram `i` of the batch (`size` bytes) and writes the reply over its slot; returns
  // the reply size, or 0 when there is nothing to send. Counts into `tally`.
  std::size_t Answer(Batch& b, std::size_t i, std::size_t size, int msg_flags, Tally& tally) const;
  // After a read error, waits as derper does (1 s) so that a persistent error cannot spin the
  // CPU, or less if Stop() is called; returns true if stopping.
  bool BackOffAfterReadError();

  StunStats& stats_;
  const bool strict_;
  OwnedFd fd_;
  std::uint16_t port_ = 0;
  std::vector<std::unique_ptr<Reader>> readers_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace derpkit::relay
