// /bootstrap-dns answers: see bootstrap_dns_answer.h. Pure.
#include "relay/bootstrap_dns_answer.h"

#include <cstdio>

#include "lib/util/go_pcg.h"

namespace derpkit::relay {
namespace {

// encoding/json's string encoder (HTML-safe, as json.MarshalIndent uses it). Bytes >= 0x80 are
// copied: names and addresses here are the operator's and the resolver's, ASCII in practice.
void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
      continue;
    }
    // U+2028 and U+2029 (E2 80 A8/A9) break JavaScript string literals: Go escapes them.
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
      continue;
    }
    out += static_cast<char>(c);
  }
  out += '"';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// url.QueryUnescape: '+' is a space, %XX a byte; a '%' without two hex digits is an error.
std::optional<std::string> QueryUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// strconv.Atoi for what a TXT record may hold: an optional sign, then decimal digits only.
std::optional<long long> GoAtoi(std::string_view s) {
  std::size_t at = 0;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    at = 1;
  }
  if (at == s.size() || s.size() - at > 18) return std::nullopt;  // "" or out of int range
  long long v = 0;
  for (; at < s.size(); ++at) {
    if (s[at] < '0' || s[at] > '9') return std::nullopt;
    v = v * 10 + (s[at] - '0');
  }
  return negative ? -v : v;
}

std::uint64_t LoadLittleEndian64(const std::array<std::byte, 16>& b, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v |= std::to_integer<std::uint64_t>(b[at + i]) << (8 * i);
  return v;
}

}  // namespace

std::string MarshalDnsMap(const std::map<std::string, std::vector<std::string>>& ips) {
  if (ips.empty()) return "null";
  std::string out = "{";
  bool first_name = true;
  for (const auto& [name, addrs] : ips) {
    out += first_name ? "\n\t" : ",\n\t";
    first_name = false;
    AppendJsonString(out, name);
    out += ": ";
    if (addrs.empty()) {
      out += "[]";
      continue;
    }
    out += '[';
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      out += i == 0 ? "\n\t\t" : ",\n\t\t";
      AppendJsonString(out, addrs[i]);
    }
    out += "\n\t]";
  }
  out += "\n}";
  return out;
}

std::optional<double> RolloutFraction(const std::vector<std::string>& txt_values) {
  std::optional<double> fraction;
  for (const std::string& v : txt_values) {
    const auto n = GoAtoi(v);
    if (n && *n >= 0 && *n <= 100) fraction = static_cast<double>(*n) / 100;
  }
  return fraction;
}

bool InRollout(const netaddr::IpAddress& remote, double fraction, double loopback_draw) {
  if (fraction == 0) return false;
  if (fraction == 1) return true;
  const netaddr::IpAddress ip = remote.Unmap();
  if (ip.IsLoopback()) return loopback_draw < 0.5;  // derper: "for local testing"
  const std::array<std::byte, 16> ip16 = ip.As16();
  GoPcg pcg(LoadLittleEndian64(ip16, 0), LoadLittleEndian64(ip16, 8));
  return fraction > pcg.Float64();
}

std::string QueryGet(std::string_view target, std::string_view key) {
  const auto mark = target.find('?');
  if (mark == std::string_view::npos) return "";
  std::string_view query = target.substr(mark + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty() || pair.find(';') != std::string_view::npos) continue;
    const auto eq = pair.find('=');
    const auto k = QueryUnescape(pair.substr(0, eq));
    const auto v =
        QueryUnescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!k || !v) continue;
    if (*k == key) return *v;
  }
  return "";
}

BootstrapDnsAnswer AnswerBootstrapDns(const DnsEntryMap& published,
                                      const std::string& published_json,
                                      const DnsEntryMap& unpublished, std::string_view q,
                                      const netaddr::IpAddress& remote, double loopback_draw) {
  BootstrapDnsAnswer answer;
  auto count = [&answer](BootstrapDnsCounter c) { answer.counts[static_cast<std::size_t>(c)] = 1; };
  if (!q.empty()) {
    const std::string name(q);
    const auto hidden = unpublished.ips.find(name);
    if (hidden != unpublished.ips.end() && !hidden->second.empty()) {
      count(BootstrapDnsCounter::kUnpublishedHit);
      const auto share = unpublished.fraction.find(name);
      const double fraction = share == unpublished.fraction.end() ? 0.0 : share->second;
      if (InRollout(remote, fraction, loopback_draw)) {
        // Only the name asked for, never the rest of the hidden list.
        answer.body = MarshalDnsMap({{name, hidden->second}});
        return answer;
      }
      count(BootstrapDnsCounter::kUnpublishedPercentMiss);
    }
    const auto shown = published.ips.find(name);
    if (shown == published.ips.end()) {
      count(BootstrapDnsCounter::kUnpublishedMiss);
    } else if (shown->second.empty()) {
      count(BootstrapDnsCounter::kPublishedMiss);
    } else {
      count(BootstrapDnsCounter::kPublishedHit);
    }
  }
  answer.body = published_json;
  return answer;
}

}  // namespace derpkit::relay
