// The relay's TLS certificate over its lifetime: the context every new handshake takes, swapped
// while the relay runs without touching established connections.
//
// --certmode manual / selfsigned: the pair <certdir>/<hostname>.crt/.key is checked every
// cert_poll_interval (inode, size, mtime of both files; a change is acted on once it has held
// still for one more poll, so a pair copied file by file is read whole) and on RequestReload()
// (SIGHUP). A pair that fails to parse, does not match, has expired, or no longer covers the host
// name is refused with one log line and a metric, and the old pair keeps serving.
// --certmode letsencrypt: a built-in ACME client (lib/acme) obtains the certificate, stores it in
// the same two files (atomically, key first), serves it, and renews it before it expires, with
// exponential backoff after failures. The account key is <certdir>/acme_account+key, the name
// Go's autocert (and so derper) uses.
//
// Threads: the constructor, Start() and Stop() run on the controlling thread; one certificate
// thread of our own does all file and network I/O; context(), cert_sha256() and the stats are
// read from any thread. Publishing is a shared_ptr swap under a mutex: each accepted connection
// takes a copy of the current context, and an SSL keeps its SSL_CTX alive by reference count, so
// a swap never affects a handshake in progress or an established connection.
#pragma once

#include <array>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "lib/acme/client.h"
#include "lib/net/certs.h"
#include "lib/net/tls.h"
#include "relay/acme_challenges.h"
#include "relay/config.h"
#include "relay/tls_cert.h"

namespace derpkit::relay {

// Counters and gauges of the certificate thread, read by metrics on any thread.
struct CertStats {
  std::atomic<std::uint64_t> installs{0};  // certificates put in service after start-up
  std::array<std::atomic<std::uint64_t>, kCertProblemCount> refused{};  // by CertProblem
  std::atomic<std::int64_t> not_after_unix{0};  // of the certificate in service; 0: none
  std::atomic<std::uint64_t> acme_issued{0};
  std::array<std::atomic<std::uint64_t>, acme::kFailureKindCount> acme_failures{};
  std::atomic<std::int64_t> acme_next_attempt_unix{0};
};

class CertManager {
 public:
  // Loads the pair for config.cert_mode (selfsigned: generating it when missing; letsencrypt: a
  // stored one when present and unexpired, else none yet) and loads or creates the ACME account
  // key. Throws std::runtime_error with an operator-facing message (start-up only).
  CertManager(const RelayConfig& config, const net::RawKey& server_key);
  ~CertManager();
  CertManager(const CertManager&) = delete;
  CertManager& operator=(const CertManager&) = delete;

  // Starts the certificate thread (after the listeners are bound: HTTP-01 and TLS-ALPN-01 are
  // answered on them).
  void Start();
  // Stops and joins the certificate thread. An ACME request in flight finishes first (bounded by
  // its timeout).
  void Stop();
  // Re-reads the certificate files now (SIGHUP). Any thread; no effect in letsencrypt mode.
  void RequestReload();

  // The context for a new handshake. Any thread.
  std::shared_ptr<asio::ssl::context> context() const;
  // Lowercase hex SHA-256 of the leaf in service ("sha256-raw:" CertName); "" when none yet.
  std::string cert_sha256() const;
  bool acme() const { return acme_; }
  const CertStats& stats() const { return stats_; }
  // letsencrypt mode: HTTP-01 answers; null otherwise.
  const ChallengeBoard* challenges() const { return board_.get(); }

 private:
  struct FileState {
    bool ok = false;
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileState&) const = default;
  };
  using PairState = std::array<FileState, 2>;

  void Run();
  void RunFiles();
  void RunAcme();
  void CheckFiles(bool forced);
  // Obtains, stores and installs a certificate; returns the failure, if any.
  std::optional<acme::Failure> IssueOnce();
  // Builds the context for `cert` and publishes it. Returns false (logged) when OpenSSL fails.
  bool Install(std::shared_ptr<const ServedCert> cert, const std::string& how);
  void Refuse(const CertError& error);
  // Sleeps up to `duration`; returns false as soon as Stop() is called. A reload request also
  // ends the sleep early when `wake_on_reload` is set.
  bool Sleep(std::chrono::milliseconds duration, bool wake_on_reload);
  std::chrono::system_clock::time_point RenewalTime(const ServedCert& cert) const;
  PairState ReadState() const;
  std::shared_ptr<const ServedCert> current() const;

  const RelayConfig config_;
  const bool acme_;
  net::CertFiles files_;
  std::string account_key_file_;
  std::optional<acme::AccountKey> account_key_;
  std::shared_ptr<ChallengeBoard> board_;
  ServerContextOptions context_options_;
  CertStats stats_;

  mutable std::mutex mu_;  // guards context_ and cert_
  std::shared_ptr<asio::ssl::context> context_;
  std::shared_ptr<const ServedCert> cert_;

  std::mutex wake_mu_;  // guards stop_ and reload_
  std::condition_variable wake_;
  bool stop_ = false;
  bool reload_ = false;
  std::thread thread_;

  // Certificate thread only.
  PairState loaded_state_{};
  std::optional<PairState> pending_state_;
};

}  // namespace derpkit::relay
