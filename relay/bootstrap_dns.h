// /bootstrap-dns behind the scenes (derp-protocol.md §3.7): the names of
// --bootstrap-dns-names and --unpublished-bootstrap-dns-names are resolved on a thread of their
// own, at start and then every 10 minutes, each refresh bounded by one minute (a lookup still
// running then counts as failed; the names resolved before it are kept). The request handler
// only reads the last result (Answer()), so a slow or dead resolver never delays a request.
// Each refresh shuffles every name's addresses, so clients do not all pick the same family.
//
// Thread affinity: Start()/Stop() from the controlling thread; Answer() and Stats() from any
// thread (a mutex guards the cached result; requests are rare); lookups run on the refresh
// thread and on one helper thread per lookup (detached when the minute runs out).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lib/util/expected.h"
#include "lib/util/netaddr.h"
#include "relay/bootstrap_dns_answer.h"

namespace derpkit::relay {

// Name resolution for the refresher. Both calls block; errors are one line for the log.
class DnsResolver {
 public:
  virtual ~DnsResolver() = default;
  // Every address of `name` (A and AAAA, /etc/hosts included), as text, without duplicates.
  virtual Expected<std::vector<std::string>, std::string> LookupIp(const std::string& name) = 0;
  // Every TXT record of `name`, the character-strings of each record joined (as Go does).
  virtual Expected<std::vector<std::string>, std::string> LookupTxt(const std::string& name) = 0;
};

// The system's resolver: getaddrinfo() for addresses, res_nquery() for TXT records. A test may
// point the TXT queries at its own DNS server ("127.0.0.1", port).
std::shared_ptr<DnsResolver> SystemDnsResolver();
std::shared_ptr<DnsResolver> SystemDnsResolver(const std::string& txt_server_ipv4,
                                               std::uint16_t txt_server_port);

// Why a lookup of a refresh failed: the `reason` label of derp_bootstrap_dns_lookup_failures.
enum class DnsLookupFailure : std::uint8_t {
  kIpError,
  kIpTimeout,
  kTxtError,
  kTxtTimeout,
  kTxtInvalid
};
inline constexpr std::size_t kDnsLookupFailureCount = 5;
inline constexpr std::array<std::string_view, kDnsLookupFailureCount> kDnsLookupFailureLabel = {
    "ip_error", "ip_timeout", "txt_error", "txt_timeout", "txt_invalid"};

struct BootstrapDnsStats {
  std::uint64_t requests = 0;  // derper's bootstrap_dns_requests
  std::array<std::uint64_t, kBootstrapDnsCounterCount> counters{};
  std::uint64_t queried_domains = 0;  // distinct ?q= values seen (cleared past 500)
  std::array<std::uint64_t, kDnsLookupFailureCount> lookup_failures{};
  std::uint64_t refreshes = 0;
  std::uint64_t published_names = 0;    // names with addresses after the last refresh
  std::uint64_t unpublished_names = 0;  // likewise for the unpublished list
};

struct BootstrapDnsOptions {
  std::vector<std::string> published;     // names
  std::vector<std::string> unpublished;   // "name" (100%) or "name/txtname" (TXT holds 0..100)
  std::shared_ptr<DnsResolver> resolver;  // null: SystemDnsResolver()
  std::chrono::milliseconds refresh_interval = std::chrono::minutes(10);
  std::chrono::milliseconds refresh_timeout = std::chrono::minutes(1);
};

class BootstrapDns {
 public:
  explicit BootstrapDns(BootstrapDnsOptions options);
  ~BootstrapDns();
  BootstrapDns(const BootstrapDns&) = delete;
  BootstrapDns& operator=(const BootstrapDns&) = delete;

  // Starts the refresh thread (nothing to do without names). The first refresh runs at once.
  void Start();
  // Stops the thread promptly, even mid-lookup (the lookup's helper thread is left to finish).
  void Stop();
  // One refresh on the calling thread (tests; the refresh thread calls it too).
  void Refresh();

  // The /bootstrap-dns body for a request target ("/bootstrap-dns?q=...") from `remote`.
  // Empty when no names are configured or before the first refresh has finished.
  std::string Answer(std::string_view target, const netaddr::IpAddress& remote);
  BootstrapDnsStats Stats() const;

 private:
  struct Shared;  // what the lookup helper threads share with us (outlives this object)
  DnsEntryMap ResolveList(const std::vector<std::string>& entries,
                          std::chrono::steady_clock::time_point deadline);
  void RefreshLoop();
  void CountFailure(DnsLookupFailure f);
  bool Stopping() const;

  BootstrapDnsOptions options_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;

  mutable std::mutex mu_;  // guards the members below
  DnsEntryMap published_;
  std::string published_json_;
  DnsEntryMap unpublished_;
  std::set<std::string> queried_;
  std::mt19937_64 rng_{std::random_device{}()};
  BootstrapDnsStats stats_;
};

}  // namespace derpkit::relay
