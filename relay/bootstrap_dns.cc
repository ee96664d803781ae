// BootstrapDns and the system resolver: see bootstrap_dns.h. The refresh thread owns the
// lookups; the cached answer is read by request handlers on any shard.
#include "relay/bootstrap_dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "lib/net/log.h"
#include "lib/util/go_format.h"

namespace derpkit::relay {

using Clock = std::chrono::steady_clock;
using LookupResult = Expected<std::vector<std::string>, std::string>;

namespace {

constexpr std::size_t kMaxQueriedDomains = 500;  // derper clears its set past this

class SystemResolver final : public DnsResolver {
 public:
  SystemResolver() = default;
  SystemResolver(const std::string& txt_server_ipv4, std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (::inet_pton(AF_INET, txt_server_ipv4.c_str(), &sa.sin_addr) == 1) txt_server_ = sa;
  }

  LookupResult LookupIp(const std::string& name) override {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
    addrinfo* list = nullptr;
    const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
      return Unexpected{std::string(rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc))};
    }
    std::vector<std::string> out;
    for (const addrinfo* a = list; a != nullptr; a = a->ai_next) {
      std::optional<netaddr::IpAddress> ip;
      if (a->ai_family == AF_INET) {
        std::array<std::byte, 4> b;
        std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr, 4);
        ip = netaddr::IpAddress::V4(b);
      } else if (a->ai_family == AF_INET6) {
        std::array<std::byte, 16> b;
        std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr, 16);
        ip = netaddr::IpAddress::V6(b).Unmap();
      }
      if (!ip) continue;
      std::string text = ip->ToString();
      if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(std::move(text));
    }
    ::freeaddrinfo(list);
    if (out.empty()) return Unexpected{std::string("no addresses")};
    return out;
  }

  LookupResult LookupTxt(const std::string& name) override {
    struct __res_state state;
    std::memset(&state, 0, sizeof state);
    if (::res_ninit(&state) != 0) return Unexpected{std::string("cannot read resolver settings")};
    if (txt_server_) {
      state.nscount = 1;
      state.nsaddr_list[0] = *txt_server_;
    }
    std::vector<unsigned char> answer(NS_MAXMSG);
    const int n = ::res_nquery(&state, name.c_str(), ns_c_in, ns_t_txt, answer.data(),
                               static_cast<int>(answer.size()));
    const int herr = state.res_h_errno;
    ::res_nclose(&state);
    if (n < 0) return Unexpected{std::string(::hstrerror(herr))};
    ns_msg msg;
    if (::ns_initparse(answer.data(), n, &msg) != 0) {
      return Unexpected{std::string("malformed DNS answer")};
    }
    std::vector<std::string> out;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
      ns_rr rr;
      if (::ns_parserr(&msg, ns_s_an, i, &rr) != 0) {
        return Unexpected{std::string("malformed DNS answer record")};
      }
      if (ns_rr_type(rr) != ns_t_txt) continue;  // the CNAMEs on the way
      const unsigned char* p = ns_rr_rdata(rr);
      std::size_t left = ns_rr_rdlen(rr);
      std::string joined;
      while (left > 0) {
        const std::size_t len = *p;
        if (len + 1 > left) return Unexpected{std::string("malformed TXT record")};
        joined.append(reinterpret_cast<const char*>(p + 1), len);
        p += len + 1;
        left -= len + 1;
      }
      out.push_back(std::move(joined));
    }
    if (out.empty()) return Unexpected{std::string("no TXT record")};
    return out;
  }

 private:
  std::optional<sockaddr_in> txt_server_;
};

}  // namespace

std::shared_ptr<DnsResolver> SystemDnsResolver() { return std::make_shared<SystemResolver>(); }

std::shared_ptr<DnsResolver> SystemDnsResolver(const std::string& txt_server_ipv4,
                                               std::uint16_t txt_server_port) {
  return std::make_shared<SystemResolver>(txt_server_ipv4, txt_server_port);
}

// The refresh thread and the lookup helpers wait on one condition variable: a helper's result,
// Stop() and the refresh interval all wake it.
struct BootstrapDns::Shared {
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
};

namespace {

// Runs `lookup` on a helper thread and waits for it until `deadline` or Stop(). The helper owns
// its result slot and a reference to `shared`, so giving up on it (detaching) is safe.
template <typename Shared>
std::optional<LookupResult> RunBounded(const std::shared_ptr<Shared>& shared,
                                       std::function<LookupResult()> lookup,
                                       Clock::time_point deadline) {
  struct Slot {
    std::optional<LookupResult> result;
  };
  auto slot = std::make_shared<Slot>();
  std::thread helper([shared, slot, lookup = std::move(lookup)] {
    LookupResult r = lookup();
    std::lock_guard lock(shared->mu);
    slot->result = std::move(r);
    shared->cv.notify_all();
  });
  std::unique_lock lock(shared->mu);
  const bool done = shared->cv.wait_until(
      lock, deadline, [&] { return slot->result.has_value() || shared->stopping; });
  if (done && slot->result) {
    std::optional<LookupResult> out = std::move(slot->result);
    lock.unlock();
    helper.join();
    return out;
  }
  lock.unlock();
  helper.detach();  // it finishes on its own; nothing it touches is ours
  return std::nullopt;
}

}  // namespace

BootstrapDns::BootstrapDns(BootstrapDnsOptions options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  if (!options_.resolver) options_.resolver = SystemDnsResolver();
}

BootstrapDns::~BootstrapDns() { Stop(); }

void BootstrapDns::Start() {
  if (options_.published.empty() && options_.unpublished.empty()) return;
  thread_ = std::thread([this] { RefreshLoop(); });
}

void BootstrapDns::Stop() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    shared_->cv.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void BootstrapDns::RefreshLoop() {
  for (;;) {
    Refresh();
    std::unique_lock lock(shared_->mu);
    if (shared_->cv.wait_for(lock, options_.refresh_interval,
                             [this] { return shared_->stopping; })) {
      return;
    }
  }
}

bool BootstrapDns::Stopping() const {
  std::lock_guard lock(shared_->mu);
  return shared_->stopping;
}

void BootstrapDns::CountFailure(DnsLookupFailure f) {
  std::lock_guard lock(mu_);
  ++stats_.lookup_failures[static_cast<std::size_t>(f)];
}

DnsEntryMap BootstrapDns::ResolveList(const std::vector<std::string>& entries,
                                      Clock::time_point deadline) {
  DnsEntryMap out;
  const std::shared_ptr<DnsResolver> resolver = options_.resolver;
  const std::string limit = GoDurationString(options_.refresh_timeout);
  for (const std::string& entry : entries) {
    if (Stopping()) break;  // shutting down: the result would not be used
    const auto slash = entry.find('/');
    const std::string name = entry.substr(0, slash);
    const std::string txt_name = slash == std::string::npos ? "" : entry.substr(slash + 1);
    auto ips = RunBounded(
        shared_, [resolver, name] { return resolver->LookupIp(name); }, deadline);
    if (!ips && Stopping()) break;
    if (!ips || !*ips) {
      CountFailure(ips ? DnsLookupFailure::kIpError : DnsLookupFailure::kIpTimeout);
      LOG_WARN("bootstrap DNS lookup %s: %s", name.c_str(),
               ips ? (*ips).error().c_str() : ("no answer within " + limit).c_str());
      continue;
    }
    out.ips[name] = std::move(**ips);
    if (txt_name.empty()) {
      out.fraction[name] = 1.0;
      continue;
    }
    auto txt = RunBounded(
        shared_, [resolver, txt_name] { return resolver->LookupTxt(txt_name); }, deadline);
    if (!txt && Stopping()) break;
    if (!txt || !*txt) {
      CountFailure(txt ? DnsLookupFailure::kTxtError : DnsLookupFailure::kTxtTimeout);
      LOG_WARN("bootstrap DNS lookup TXT %s (rollout of %s): %s; rolled out to 0%%",
               txt_name.c_str(), name.c_str(),
               txt ? (*txt).error().c_str() : ("no answer within " + limit).c_str());
      continue;
    }
    if (const auto fraction = RolloutFraction(**txt)) {
      out.fraction[name] = *fraction;
    } else {
      CountFailure(DnsLookupFailure::kTxtInvalid);
      LOG_WARN("bootstrap DNS TXT %s (rollout of %s) holds no integer 0..100; rolled out to 0%%",
               txt_name.c_str(), name.c_str());
    }
  }
  return out;
}

void BootstrapDns::Refresh() {
  const auto deadline = Clock::now() + options_.refresh_timeout;
  std::optional<DnsEntryMap> published;
  std::optional<DnsEntryMap> unpublished;
  if (!options_.published.empty()) published = ResolveList(options_.published, deadline);
  if (!options_.unpublished.empty()) unpublished = ResolveList(options_.unpublished, deadline);
  if (Stopping()) return;  // possibly cut short: keep what the last full refresh found
  std::lock_guard lock(mu_);
  // A fresh order on every refresh, so clients do not all prefer the first family listed.
  for (auto* map : {&published, &unpublished}) {
    if (!*map) continue;
    for (auto& [name, addrs] : (*map)->ips) std::shuffle(addrs.begin(), addrs.end(), rng_);
  }
  if (published) {
    published_json_ = MarshalDnsMap(published->ips);
    stats_.published_names = published->ips.size();
    published_ = std::move(*published);
  }
  if (unpublished) {
    stats_.unpublished_names = unpublished->ips.size();
    unpublished_ = std::move(*unpublished);
  }
  ++stats_.refreshes;
}

std::string BootstrapDns::Answer(std::string_view target, const netaddr::IpAddress& remote) {
  const std::string q = QueryGet(target, "q");
  std::lock_guard lock(mu_);
  ++stats_.requests;
  if (!q.empty()) {
    queried_.insert(q);
    if (queried_.size() > kMaxQueriedDomains) queried_.clear();  // defensive, as derper
  }
  const double loopback_draw = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  BootstrapDnsAnswer answer =
      AnswerBootstrapDns(published_, published_json_, unpublished_, q, remote, loopback_draw);
  for (std::size_t i = 0; i < kBootstrapDnsCounterCount; ++i)
    stats_.counters[i] += answer.counts[i];
  return std::move(answer.body);
}

BootstrapDnsStats BootstrapDns::Stats() const {
  std::lock_guard lock(mu_);
  BootstrapDnsStats s = stats_;
  s.queried_domains = queried_.size();
  return s;
}

}  // namespace derpkit::relay
