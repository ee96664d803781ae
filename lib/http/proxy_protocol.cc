#include "lib/http/proxy_protocol.h"

#include <algorithm>
#include <array>
#include <optional>

namespace derpkit::http {
namespace {

using netaddr::IpAddress;

constexpr std::string_view kV1Magic = "PROXY";
constexpr std::array<std::string_view, 3> kV1Protocols = {"TCP4", "TCP6", "UNKNOWN"};

constexpr std::array<std::byte, 12> kV2Signature = {
    std::byte{0x0d}, std::byte{0x0a}, std::byte{0x0d}, std::byte{0x0a},
    std::byte{0x00}, std::byte{0x0d}, std::byte{0x0a}, std::byte{0x51},
    std::byte{0x55}, std::byte{0x49}, std::byte{0x54}, std::byte{0x0a}};
constexpr unsigned kV2Version = 0x2;
constexpr unsigned kV2CommandLocal = 0x0;
constexpr unsigned kV2CommandProxy = 0x1;
constexpr std::byte kV2FamilyUnspec{0x00};
constexpr std::byte kV2FamilyTcp4{0x11};
constexpr std::byte kV2FamilyTcp6{0x21};
constexpr std::size_t kV2Tcp4AddressSize = 12;  // src(4) dst(4) sport(2) dport(2)
constexpr std::size_t kV2Tcp6AddressSize = 36;  // src(16) dst(16) sport(2) dport(2)
constexpr std::size_t kV2UnixAddressSize = 216;
constexpr std::size_t kV2TlvHeaderSize = 3;  // type(1) length(2)

// The longest IPv6 text inet_pton takes ("ffff:...:ffff:255.255.255.255").
constexpr std::size_t kMaxIpv6TextSize = 45;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A decimal number in [0, max] with no sign and no leading zero.
std::optional<unsigned> ParseDecimal(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// Every non-empty prefix of a valid port or octet is itself valid, so "could still become
// valid" is "empty or valid".
bool CouldBeDecimal(std::string_view s, unsigned max) {
  return s.empty() || ParseDecimal(s, max).has_value();
}

// Checks the spec's IPv4 form: exactly four decimal octets, no leading zeros. With `partial`,
// checks instead that more characters could still complete `s` into that form.
bool MatchesIpv4Text(std::string_view s, bool partial) {
  std::size_t octets = 0;
  for (;;) {
    const std::size_t dot = s.find('.');
    const std::string_view octet = s.substr(0, dot);
    ++octets;
    if (octets > 4) return false;
    if (dot == std::string_view::npos) {
      return partial ? CouldBeDecimal(octet, 255)
                     : octets == 4 && ParseDecimal(octet, 255).has_value();
    }
    if (!ParseDecimal(octet, 255)) return false;
    s.remove_prefix(dot + 1);
  }
}

// An unfinished IPv6 text is only checked for its alphabet and length; inet_pton decides once
// the field is complete.
bool CouldBeIpv6Text(std::string_view s) {
  return s.size() <= kMaxIpv6TextSize && std::all_of(s.begin(), s.end(), [](char c) {
           return IsHexDigit(c) || c == ':' || c == '.';
         });
}

std::optional<IpAddress> ParseV1Address(std::string_view s, bool v4) {
  if (v4 && !MatchesIpv4Text(s, /*partial=*/false)) return std::nullopt;
  // The alphabet check also keeps NULs away from inet_pton, which would stop reading there.
  if (!v4 && (s.find(':') == std::string_view::npos || !CouldBeIpv6Text(s))) return std::nullopt;
  const auto ip = netaddr::ParseIp(s);
  if (!ip || ip->is_v4() != v4) return std::nullopt;
  return *ip;
}

// Walks a version-1 line. `text` is at most kMaxProxyV1Size bytes; running out of it means
// kIncomplete, unless the input was already that long, which makes the line too long.
class V1Parser {
 public:
  V1Parser(std::string_view text, bool at_limit)
      : text_(text), out_of_bytes_(at_limit ? ProxyError::kV1TooLong : ProxyError::kIncomplete) {}

  Expected<ProxyHeader, ProxyError> Parse() {
    if (text_.size() < kV1Magic.size()) {
      return kV1Magic.starts_with(text_) ? Unexpected{ProxyError::kIncomplete}
                                         : Unexpected{ProxyError::kNotProxy};
    }
    if (!text_.starts_with(kV1Magic)) return Unexpected{ProxyError::kNotProxy};
    pos_ = kV1Magic.size();
    if (pos_ == text_.size()) return Unexpected{out_of_bytes_};
    if (text_[pos_++] != ' ') return Unexpected{ProxyError::kBadV1};

    const Field proto = NextField();
    if (!proto.complete) {
      const bool could_be =
          std::any_of(kV1Protocols.begin(), kV1Protocols.end(),
                      [&](std::string_view p) { return p.starts_with(proto.text); });
      return Unexpected{could_be ? out_of_bytes_ : ProxyError::kBadV1};
    }
    if (proto.text == "UNKNOWN") return ParseUnknownRest(proto.end);
    if (proto.text != "TCP4" && proto.text != "TCP6") return Unexpected{ProxyError::kBadV1};
    if (proto.end != ' ') return Unexpected{ProxyError::kBadV1};
    const bool v4 = proto.text == "TCP4";

    ProxyHeader h;
    h.version = 1;
    h.has_source = true;
    for (IpAddress* ip : {&h.source_ip, &h.dest_ip}) {
      const Field f = NextField();
      if (!f.complete) {
        const bool could_be =
            v4 ? MatchesIpv4Text(f.text, /*partial=*/true) : CouldBeIpv6Text(f.text);
        return Unexpected{could_be ? out_of_bytes_ : ProxyError::kBadV1};
      }
      const auto parsed = ParseV1Address(f.text, v4);
      if (!parsed || f.end != ' ') return Unexpected{ProxyError::kBadV1};
      *ip = *parsed;
    }
    for (std::uint16_t* port : {&h.source_port, &h.dest_port}) {
      const Field f = NextField();
      if (!f.complete) {
        return Unexpected{CouldBeDecimal(f.text, 65535) ? out_of_bytes_ : ProxyError::kBadV1};
      }
      const auto parsed = ParseDecimal(f.text, 65535);
      const char want_end = port == &h.source_port ? ' ' : '\r';
      if (!parsed || f.end != want_end) return Unexpected{ProxyError::kBadV1};
      *port = static_cast<std::uint16_t>(*parsed);
    }
    const auto lf = ExpectLf();
    if (!lf) return Unexpected{lf.error()};
    h.header_size = pos_;
    return h;
  }

 private:
  struct Field {
    std::string_view text;
    bool complete = false;  // false: the bytes ran out inside the field
    char end = 0;           // ' ', '\r' or '\n' when complete
  };

  // Returns the bytes up to the next SP, CR or LF and moves past that delimiter.
  Field NextField() {
    const std::size_t end = text_.find_first_of(" \r\n", pos_);
    if (end == std::string_view::npos) {
      Field f{text_.substr(pos_), false, 0};
      pos_ = text_.size();
      return f;
    }
    Field f{text_.substr(pos_, end - pos_), true, text_[end]};
    pos_ = end + 1;
    return f;
  }

  // After "UNKNOWN": the spec says to ignore anything up to the CRLF, so only a stray CR or LF
  // is an error there.
  Expected<ProxyHeader, ProxyError> ParseUnknownRest(char end) {
    if (end == ' ') {
      const std::size_t stop = text_.find_first_of("\r\n", pos_);
      if (stop == std::string_view::npos) return Unexpected{out_of_bytes_};
      end = text_[stop];
      pos_ = stop + 1;
    }
    if (end != '\r') return Unexpected{ProxyError::kBadV1};
    const auto lf = ExpectLf();
    if (!lf) return Unexpected{lf.error()};
    ProxyHeader h;
    h.version = 1;
    h.header_size = pos_;
    return h;
  }

  // Called right after a CR: the line must end with its LF.
  Expected<void, ProxyError> ExpectLf() {
    if (pos_ == text_.size()) return Unexpected{out_of_bytes_};
    if (text_[pos_++] != '\n') return Unexpected{ProxyError::kBadV1};
    return {};
  }

  std::string_view text_;
  ProxyError out_of_bytes_;
  std::size_t pos_ = 0;
};

Expected<ProxyHeader, ProxyError> ParseV2(ByteSpan in) {
  const std::size_t sig_bytes = std::min(in.size(), kV2Signature.size());
  if (!std::equal(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(sig_bytes),
                  kV2Signature.begin())) {
    return Unexpected{ProxyError::kNotProxy};
  }
  if (in.size() <= 12) return Unexpected{ProxyError::kIncomplete};
  const unsigned ver_cmd = std::to_integer<unsigned>(in[12]);
  if (ver_cmd >> 4 != kV2Version) return Unexpected{ProxyError::kBadV2Version};
  const unsigned command = ver_cmd & 0x0f;
  if (command != kV2CommandLocal && command != kV2CommandProxy) {
    return Unexpected{ProxyError::kBadV2Command};
  }
  const bool local = command == kV2CommandLocal;
  if (in.size() <= 13) return Unexpected{ProxyError::kIncomplete};

  // nullopt: skip the whole block unchecked (LOCAL, or UNSPEC); else addresses then TLVs.
  const std::byte family = in[13];
  std::optional<std::size_t> address_size;
  if (!local) {
    switch (std::to_integer<unsigned>(family)) {
      case 0x00:
        break;
      case 0x11:
      case 0x12:
        address_size = kV2Tcp4AddressSize;
        break;
      case 0x21:
      case 0x22:
        address_size = kV2Tcp6AddressSize;
        break;
      case 0x31:
      case 0x32:
        address_size = kV2UnixAddressSize;
        break;
      default:
        return Unexpected{ProxyError::kBadV2Addresses};
    }
  }
  if (in.size() < kProxyV2FixedSize) return Unexpected{ProxyError::kIncomplete};
  const std::size_t total = kProxyV2FixedSize + LoadBigEndian16(in.subspan(14, 2));
  if (total > kMaxProxyV2Size) return Unexpected{ProxyError::kBadV2Length};

  if (address_size) {
    if (total < kProxyV2FixedSize + *address_size) return Unexpected{ProxyError::kBadV2Addresses};
    // Walk the TLV records whose headers have arrived, so an overrun is refused at once.
    std::size_t off = kProxyV2FixedSize + *address_size;
    while (off < total) {
      if (total - off < kV2TlvHeaderSize) return Unexpected{ProxyError::kBadV2Tlv};
      if (in.size() < off + kV2TlvHeaderSize) return Unexpected{ProxyError::kIncomplete};
      const std::size_t value_size = LoadBigEndian16(in.subspan(off + 1, 2));
      if (value_size > total - off - kV2TlvHeaderSize) return Unexpected{ProxyError::kBadV2Tlv};
      off += kV2TlvHeaderSize + value_size;
    }
  }
  if (in.size() < total) return Unexpected{ProxyError::kIncomplete};

  ProxyHeader h;
  h.version = 2;
  h.local = local;
  h.header_size = total;
  if (local) return h;
  const ByteSpan addr = in.subspan(kProxyV2FixedSize);
  if (family == kV2FamilyTcp4) {
    std::array<std::byte, 4> src{};
    std::array<std::byte, 4> dst{};
    std::copy_n(addr.begin(), 4, src.begin());
    std::copy_n(addr.begin() + 4, 4, dst.begin());
    h.source_ip = IpAddress::V4(src);
    h.dest_ip = IpAddress::V4(dst);
    h.source_port = LoadBigEndian16(addr.subspan(8, 2));
    h.dest_port = LoadBigEndian16(addr.subspan(10, 2));
    h.has_source = true;
  } else if (family == kV2FamilyTcp6) {
    std::array<std::byte, 16> src{};
    std::array<std::byte, 16> dst{};
    std::copy_n(addr.begin(), 16, src.begin());
    std::copy_n(addr.begin() + 16, 16, dst.begin());
    h.source_ip = IpAddress::V6(src);
    h.dest_ip = IpAddress::V6(dst);
    h.source_port = LoadBigEndian16(addr.subspan(32, 2));
    h.dest_port = LoadBigEndian16(addr.subspan(34, 2));
    h.has_source = true;
  }
  return h;
}

}  // namespace

std::string_view Describe(ProxyError e) {
  switch (e) {
    case ProxyError::kIncomplete:
      return "PROXY header incomplete: more bytes needed";
    case ProxyError::kNotProxy:
      return "connection does not start with a PROXY protocol header";
    case ProxyError::kBadV1:
      return "malformed PROXY v1 line (expected \"PROXY TCP4|TCP6|UNKNOWN ...\\r\\n\")";
    case ProxyError::kV1TooLong:
      return "PROXY v1 line has no CRLF within 107 bytes";
    case ProxyError::kBadV2Version:
      return "PROXY v2 signature followed by a version other than 2";
    case ProxyError::kBadV2Command:
      return "PROXY v2 command is neither LOCAL nor PROXY";
    case ProxyError::kBadV2Length:
      return "PROXY v2 header longer than 4096 bytes";
    case ProxyError::kBadV2Addresses:
      return "PROXY v2 address family unknown or address block too short";
    case ProxyError::kBadV2Tlv:
      return "PROXY v2 TLV records do not exactly fill the header";
  }
  return "unknown PROXY protocol error";
}

Expected<ProxyHeader, ProxyError> ParseProxyHeader(ByteSpan in) {
  if (in.empty()) return Unexpected{ProxyError::kIncomplete};
  if (in[0] == kV2Signature[0]) return ParseV2(in);
  const std::string_view text = AsText(in);
  return V1Parser(text.substr(0, kMaxProxyV1Size), text.size() >= kMaxProxyV1Size).Parse();
}

std::string BuildProxyV1(const IpAddress& src, std::uint16_t sport, const IpAddress& dst,
                         std::uint16_t dport) {
  const bool v4 = src.is_v4() && dst.is_v4();
  const auto text = [v4](const IpAddress& ip) {
    return v4 || ip.is_v6() ? ip.ToString() : IpAddress::V6(ip.As16()).ToString();
  };
  return std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + text(src) + " " + text(dst) + " " +
         std::to_string(sport) + " " + std::to_string(dport) + "\r\n";
}

Bytes BuildProxyV2(const IpAddress& src, std::uint16_t sport, const IpAddress& dst,
                   std::uint16_t dport, bool local) {
  Bytes out(kV2Signature.begin(), kV2Signature.end());
  if (local) {
    out.push_back(std::byte{kV2Version << 4 | kV2CommandLocal});
    out.push_back(kV2FamilyUnspec);
    AppendBigEndian16(out, 0);
    return out;
  }
  out.push_back(std::byte{kV2Version << 4 | kV2CommandProxy});
  if (src.is_v4() && dst.is_v4()) {
    out.push_back(kV2FamilyTcp4);
    AppendBigEndian16(out, kV2Tcp4AddressSize);
    AppendBytes(out, src.v4_bytes());
    AppendBytes(out, dst.v4_bytes());
  } else {
    out.push_back(kV2FamilyTcp6);
    AppendBigEndian16(out, kV2Tcp6AddressSize);
    AppendBytes(out, src.As16());
    AppendBytes(out, dst.As16());
  }
  AppendBigEndian16(out, sport);
  AppendBigEndian16(out, dport);
  return out;
}

}  // namespace derpkit::http
