// What /bootstrap-dns answers (derp-protocol.md §3.7, derper's cmd/derper/bootstrap_dns.go),
// given the names resolved by the last background refresh: the JSON bytes (Go's
// json.MarshalIndent with a tab), the ?q= lookup of an unpublished name with its rollout
// percentage, and which of derper's counters the request bumps.
//
// Pure: no sockets, no clock, no randomness of its own (the caller passes the coin for loopback
// callers). The resolving and the caching live in relay/bootstrap_dns.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/netaddr.h"

namespace derpkit::relay {

// The result of resolving a name list: name -> IP texts, and for unpublished names the share of
// clients (0..1) that may see them. Names whose lookup failed are absent.
struct DnsEntryMap {
  std::map<std::string, std::vector<std::string>> ips;
  std::map<std::string, double> fraction;
};

// json.MarshalIndent(map[string][]net.IP, "", "\t"): keys sorted, two-space-free tab indent,
// Go's string escaping (<, >, & as \u003c..., control characters). An empty map is Go's nil
// map: "null".
std::string MarshalDnsMap(const std::map<std::string, std::vector<std::string>>& ips);

// The rollout share from the TXT strings of a "name/txtname" entry: the last string that is a
// Go strconv.Atoi integer in 0..100, divided by 100; nothing when none is (derper: 0%).
std::optional<double> RolloutFraction(const std::vector<std::string>& txt_values);

// derper's remoteAddrMatchesPercent: 0 never, 1 always; a loopback caller gets a coin flip
// (`loopback_draw` < 0.5, the caller's uniform [0,1) draw); anyone else is inside when a Go PCG
// seeded with the two little-endian halves of the 16-byte address yields a Float64 below
// `fraction`, so one client always gets the same answer.
bool InRollout(const netaddr::IpAddress& remote, double fraction, double loopback_draw);

// Go's url.URL.Query().Get(key) for a request target ("/bootstrap-dns?q=a.example"): the first
// value of `key`, '+' and %XX decoded; pairs with ';' or a bad escape are skipped; "" if none.
std::string QueryGet(std::string_view target, std::string_view key);

// derper's counters for /bootstrap-dns, in the order of BootstrapDnsCounts below.
enum class BootstrapDnsCounter : std::uint8_t {
  kPublishedHit,
  kPublishedMiss,
  kUnpublishedHit,
  kUnpublishedMiss,
  kUnpublishedPercentMiss,
};
inline constexpr std::size_t kBootstrapDnsCounterCount = 5;
// Metric names, derper's expvar names less "counter_", plus Prometheus' "_total".
inline constexpr std::array<std::string_view, kBootstrapDnsCounterCount> kBootstrapDnsCounterName =
    {"bootstrap_dns_published_hits_total", "bootstrap_dns_published_misses_total",
     "bootstrap_dns_unpublished_hits_total", "bootstrap_dns_unpublished_misses_total",
     "bootstrap_dns_unpublished_percent_misses_total"};

struct BootstrapDnsAnswer {
  std::string body;
  // How much each counter goes up (0 or 1).
  std::array<std::uint8_t, kBootstrapDnsCounterCount> counts{};
};

// handleBootstrapDNS. `q` is the request's ?q= value ("" for none). With a q that names an
// unpublished entry with addresses and the caller is in its rollout: {"q": [ips]} only;
// otherwise the published JSON.
BootstrapDnsAnswer AnswerBootstrapDns(const DnsEntryMap& published,
                                      const std::string& published_json,
                                      const DnsEntryMap& unpublished, std::string_view q,
                                      const netaddr::IpAddress& remote, double loopback_draw);

}  // namespace derpkit::relay
