// The certificate thread: file reloads and ACME renewals (see cert_manager.h).
#include "relay/cert_manager.h"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "lib/net/atomic_file.h"
#include "lib/net/log.h"

namespace derpkit::relay {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SystemClock = std::chrono::system_clock;

// A renewal that would be due again right after an issuance (a --acme-renew-before longer than
// the CA's lifetime) still waits this long, so a misconfiguration cannot hammer the CA.
constexpr seconds kMinRenewGap{10};
constexpr seconds kAcmeMaxBackoff{3600};
constexpr seconds kDefaultRenewBefore{30 * 24 * 3600};
// Long sleeps are cut into pieces so that a wall-clock jump (suspend, NTP) delays a renewal by at
// most this much.
constexpr milliseconds kMaxSleep{std::chrono::minutes(10)};
constexpr milliseconds kAcmeRequestTimeout{10000};
constexpr const char* kAccountKeyName = "acme_account+key";

std::int64_t UnixNow() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string UtcText(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string DescribeServed(const ServedCert* cert) {
  if (cert == nullptr) return "no certificate yet";
  return "serial " + cert->serial_hex + ", valid until " + UtcText(cert->not_after_unix);
}

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

CertManager::CertManager(const RelayConfig& config, const net::RawKey& server_key)
    : config_(config), acme_(config.cert_mode == "letsencrypt") {
  context_options_.meta_cert_der = net::MakeMetaCertDer(server_key);
  files_ = net::ManualCertPaths(config_.cert_dir, config_.hostname);
  if (config_.cert_mode == "selfsigned") {
    auto ensured = net::EnsureSelfSignedCert(config_.cert_dir, config_.hostname);
    files_ = ensured.files;
    if (ensured.created) {
      LOG_INFO("generated a self-signed certificate for %s in %s", config_.hostname.c_str(),
               config_.cert_dir.c_str());
    }
  }
  // Before reading the files, so that a change made while we read them is noticed later.
  loaded_state_ = ReadState();
  std::shared_ptr<const ServedCert> cert;
  if (!acme_) {
    auto loaded = ReadCertPair(files_, config_.hostname);
    if (!loaded) throw std::runtime_error("TLS server: " + loaded.error().message);
    cert = *loaded;
    if (!cert->covers_hostname) {
      LOG_WARN(
          "TLS certificate %s is not valid for --hostname %s: clients that check the name "
          "will refuse it",
          files_.cert_file.c_str(), config_.hostname.c_str());
    }
    if (cert->not_after_unix <= UnixNow()) {
      LOG_WARN("TLS certificate %s expired on %s", files_.cert_file.c_str(),
               UtcText(cert->not_after_unix).c_str());
    }
  } else {
    board_ = std::make_shared<ChallengeBoard>();
    context_options_.challenges = board_;
    std::error_code ec;
    if (std::filesystem::create_directories(config_.cert_dir, ec)) {
      std::filesystem::permissions(config_.cert_dir, std::filesystem::perms::owner_all, ec);
    }
    if (ec) {
      throw std::runtime_error("--certdir " + config_.cert_dir +
                               ": cannot create: " + ec.message());
    }
    account_key_file_ = (std::filesystem::path(config_.cert_dir) / kAccountKeyName).string();
    if (std::filesystem::exists(account_key_file_, ec)) {
      auto key = acme::AccountKey::FromPem(ReadFileText(account_key_file_));
      if (!key) throw std::runtime_error(account_key_file_ + ": " + key.error());
      account_key_ = std::move(*key);
    } else {
      auto key = acme::AccountKey::Generate();
      if (!key) throw std::runtime_error(key.error());
      if (auto err = net::WriteFileAtomically(account_key_file_, key->ToPem(), 0600)) {
        throw std::runtime_error("cannot store the ACME account key: " + *err);
      }
      account_key_ = std::move(*key);
      LOG_INFO("created the ACME account key %s", account_key_file_.c_str());
    }
    if (std::filesystem::exists(files_.cert_file, ec) ||
        std::filesystem::exists(files_.key_file, ec)) {
      auto loaded = ReadCertPair(files_, config_.hostname);
      if (!loaded) {
        LOG_WARN("ACME: not using the stored certificate: %s; requesting a new one",
                 loaded.error().message.c_str());
      } else if (auto why = RefuseAsReplacement(**loaded, nullptr, config_.hostname,
                                                files_.cert_file, UnixNow())) {
        LOG_WARN("ACME: not using the stored certificate: %s; requesting a new one",
                 why->message.c_str());
      } else if (!(*loaded)->covers_hostname) {
        LOG_WARN("ACME: the stored certificate %s is not valid for %s; requesting a new one",
                 files_.cert_file.c_str(), config_.hostname.c_str());
      } else {
        cert = *loaded;
      }
    }
  }
  auto ctx = BuildServerContext(cert, context_options_);
  if (!ctx) throw std::runtime_error(ctx.error());
  context_ = std::move(*ctx);
  cert_ = cert;
  stats_.not_after_unix.store(cert ? cert->not_after_unix : 0);
}

CertManager::~CertManager() { Stop(); }

void CertManager::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void CertManager::Stop() {
  {
    std::lock_guard lock(wake_mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CertManager::RequestReload() {
  if (acme_) {
    LOG_INFO("TLS certificate: reload requested; --certmode letsencrypt renews by itself");
    return;
  }
  {
    std::lock_guard lock(wake_mu_);
    reload_ = true;
  }
  wake_.notify_all();
}

std::shared_ptr<asio::ssl::context> CertManager::context() const {
  std::lock_guard lock(mu_);
  return context_;
}

std::shared_ptr<const ServedCert> CertManager::current() const {
  std::lock_guard lock(mu_);
  return cert_;
}

std::string CertManager::cert_sha256() const {
  std::lock_guard lock(mu_);
  return cert_ ? cert_->sha256_der_hex : std::string();
}

bool CertManager::Sleep(milliseconds duration, bool wake_on_reload) {
  std::unique_lock lock(wake_mu_);
  wake_.wait_for(lock, duration, [&] { return stop_ || (wake_on_reload && reload_); });
  return !stop_;
}

CertManager::PairState CertManager::ReadState() const {
  PairState state{};
  const std::string* paths[2] = {&files_.cert_file, &files_.key_file};
  for (std::size_t i = 0; i < 2; ++i) {
    struct stat st {};
    if (::stat(paths[i]->c_str(), &st) != 0) continue;
    state[i].ok = true;
    state[i].dev = st.st_dev;
    state[i].ino = st.st_ino;
    state[i].size = static_cast<std::uint64_t>(st.st_size);
    state[i].mtime_ns =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  return state;
}

void CertManager::Run() {
  if (acme_) {
    RunAcme();
  } else {
    RunFiles();
  }
}

void CertManager::RunFiles() {
  for (;;) {
    bool forced = false;
    {
      std::unique_lock lock(wake_mu_);
      wake_.wait_for(lock, config_.cert_poll_interval, [&] { return stop_ || reload_; });
      if (stop_) return;
      forced = std::exchange(reload_, false);
    }
    CheckFiles(forced);
  }
}

void CertManager::CheckFiles(bool forced) {
  const PairState state = ReadState();
  if (!forced) {
    if (state == loaded_state_) {
      pending_state_.reset();
      return;
    }
    // Act on a change once it has held still for a whole poll: a pair copied file by file, or
    // a file written in place, is then read complete.
    if (pending_state_ != state) {
      pending_state_ = state;
      return;
    }
  }
  pending_state_.reset();
  loaded_state_ = state;
  const std::string how = forced ? "reload requested" : "files changed";
  auto next = ReadCertPair(files_, config_.hostname);
  if (!next) return Refuse(next.error());
  const std::shared_ptr<const ServedCert> now_serving = current();
  if (now_serving && (*next)->sha256_der_hex == now_serving->sha256_der_hex) {
    LOG_INFO("TLS certificate: %s; %s is unchanged (%s)", how.c_str(), files_.cert_file.c_str(),
             DescribeServed(now_serving.get()).c_str());
    return;
  }
  if (auto why = RefuseAsReplacement(**next, now_serving.get(), config_.hostname, files_.cert_file,
                                     UnixNow())) {
    return Refuse(*why);
  }
  Install(*next, how + ": loaded " + files_.cert_file);
}

void CertManager::Refuse(const CertError& error) {
  stats_.refused[static_cast<std::size_t>(error.problem)].fetch_add(1);
  const std::shared_ptr<const ServedCert> now_serving = current();
  LOG_ERROR("TLS certificate: refusing the new pair (%s): %s; still serving the previous one (%s)",
            std::string(CertProblemLabel(error.problem)).c_str(), error.message.c_str(),
            DescribeServed(now_serving.get()).c_str());
}

bool CertManager::Install(std::shared_ptr<const ServedCert> cert, const std::string& how) {
  auto ctx = BuildServerContext(cert, context_options_);
  if (!ctx) {
    LOG_ERROR("TLS certificate: %s, but %s; still serving the previous one", how.c_str(),
              ctx.error().c_str());
    return false;
  }
  {
    std::lock_guard lock(mu_);
    context_ = std::move(*ctx);
    cert_ = cert;
  }
  stats_.installs.fetch_add(1);
  stats_.not_after_unix.store(cert->not_after_unix);
  LOG_INFO("TLS certificate: %s: new connections get %s; open connections keep theirs", how.c_str(),
           DescribeServed(cert.get()).c_str());
  LOG_INFO("derp-relay: certificate for %s, CertName sha256-raw:%s", config_.hostname.c_str(),
           cert->sha256_der_hex.c_str());
  return true;
}

SystemClock::time_point CertManager::RenewalTime(const ServedCert& cert) const {
  const seconds lifetime{cert.not_after_unix - cert.not_before_unix};
  const seconds before = config_.acme_renew_before.count() > 0
                             ? config_.acme_renew_before
                             : std::min(kDefaultRenewBefore, lifetime / 3);
  return SystemClock::from_time_t(static_cast<std::time_t>(cert.not_after_unix)) - before;
}

void CertManager::RunAcme() {
  int failures = 0;
  std::shared_ptr<const ServedCert> serving = current();
  SystemClock::time_point next = serving ? RenewalTime(*serving) : SystemClock::now();
  for (;;) {
    stats_.acme_next_attempt_unix.store(SystemClock::to_time_t(next));
    if (serving && failures == 0 && next > SystemClock::now()) {
      LOG_INFO("ACME: the certificate for %s (%s) renews at %s", config_.hostname.c_str(),
               DescribeServed(serving.get()).c_str(),
               UtcText(SystemClock::to_time_t(next)).c_str());
    }
    for (auto now = SystemClock::now(); now < next; now = SystemClock::now()) {
      const auto left = std::chrono::duration_cast<milliseconds>(next - now) + milliseconds(1);
      if (!Sleep(std::min(left, kMaxSleep), false)) return;
    }
    const std::optional<acme::Failure> failure = IssueOnce();
    serving = current();
    if (!failure) {
      failures = 0;
      next = RenewalTime(*serving);
      if (next < SystemClock::now() + kMinRenewGap) {
        LOG_WARN(
            "ACME: the new certificate is already due for renewal (--acme-renew-before "
            "longer than its lifetime?); renewing again in %llds",
            static_cast<long long>(kMinRenewGap.count()));
        next = SystemClock::now() + kMinRenewGap;
      }
      continue;
    }
    if (failure->kind == acme::FailureKind::kStopped) return;
    ++failures;
    stats_.acme_failures[static_cast<std::size_t>(failure->kind)].fetch_add(1);
    const auto backoff = std::min<milliseconds>(
        config_.acme_retry_min * (1LL << std::min(failures - 1, 20)), kAcmeMaxBackoff);
    LOG_ERROR(
        "ACME: %s of the certificate for %s failed (%s, attempt %d): %s; serving %s; "
        "next attempt in %.1fs",
        serving ? "renewal" : "issuance", config_.hostname.c_str(),
        std::string(acme::FailureKindLabel(failure->kind)).c_str(), failures,
        failure->message.c_str(), DescribeServed(serving.get()).c_str(),
        std::chrono::duration<double>(backoff).count());
    next = SystemClock::now() + backoff;
  }
}

std::optional<acme::Failure> CertManager::IssueOnce() {
  acme::ClientOptions options;
  options.directory_url = config_.acme_directory;
  options.ca_file = config_.acme_ca_file;
  options.email = config_.acme_email;
  options.request_timeout = kAcmeRequestTimeout;
  options.user_agent = std::string("derpkit/") + DERPKIT_VERSION;
  acme::Client client(options, *account_key_);
  Http01Responder http01(*board_);
  TlsAlpnResponder tls_alpn(*board_);
  acme::ChallengeResponder& responder = config_.acme_challenge == "tls-alpn-01"
                                            ? static_cast<acme::ChallengeResponder&>(tls_alpn)
                                            : http01;
  LOG_INFO("ACME: requesting a certificate for %s from %s (%s)", config_.hostname.c_str(),
           config_.acme_directory.c_str(), std::string(responder.type()).c_str());
  auto issued =
      client.Issue(config_.hostname, responder, [this](milliseconds d) { return Sleep(d, false); });
  if (!issued) return issued.error();
  auto cert = ParseCertPair(issued->chain_pem, issued->key_pem, config_.hostname,
                            "the CA's certificate", "the new key");
  if (!cert) return acme::Failure{acme::FailureKind::kBadResponse, cert.error().message};
  if (!(*cert)->covers_hostname) {
    return acme::Failure{acme::FailureKind::kBadResponse,
                         "the CA's certificate is not valid for " + config_.hostname};
  }
  // Key first: a crash between the two writes leaves a pair that does not match, which the next
  // start refuses and replaces, rather than a certificate without its key.
  auto stored = net::WriteFileAtomically(files_.key_file, issued->key_pem, 0600);
  if (!stored) stored = net::WriteFileAtomically(files_.cert_file, issued->chain_pem, 0644);
  if (stored) {
    stats_.acme_failures[static_cast<std::size_t>(acme::FailureKind::kLocal)].fetch_add(1);
    LOG_ERROR(
        "ACME: cannot store the new certificate: %s; serving it from memory (a restart "
        "requests another)",
        stored->c_str());
  }
  if (!Install(*cert, "issued by " + config_.acme_directory)) {
    return acme::Failure{acme::FailureKind::kLocal, "cannot build a TLS context"};
  }
  stats_.acme_issued.fetch_add(1);
  return std::nullopt;
}

}  // namespace derpkit::relay
