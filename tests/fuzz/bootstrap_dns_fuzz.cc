// /bootstrap-dns request parsing (relay/bootstrap_dns_answer.h): any request target yields a ?q=
// value no longer than the target and an answer that is either the published JSON or exactly
// that one name; any TXT text yields no rollout share or one in [0, 1].
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/bootstrap_dns_answer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace derpkit::relay;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string q = QueryGet(text, "q");
  if (q.size() > text.size()) __builtin_trap();

  DnsEntryMap published;
  published.ips = {{"published.example", {"192.0.2.1"}}};
  const std::string published_json = MarshalDnsMap(published.ips);
  DnsEntryMap unpublished;
  unpublished.ips = {{q.empty() ? "hidden.example" : q, {"192.0.2.2"}}};
  unpublished.fraction = {{q.empty() ? "hidden.example" : q, 1.0}};
  const auto answer = AnswerBootstrapDns(published, published_json, unpublished, q,
                                         *derpkit::netaddr::ParseIp("203.0.113.7"), 0.5);
  if (answer.body != published_json && answer.body != MarshalDnsMap({{q, {"192.0.2.2"}}})) {
    __builtin_trap();
  }

  const auto fraction = RolloutFraction({std::string(text)});
  if (fraction && (*fraction < 0 || *fraction > 1)) __builtin_trap();
  return 0;
}
