// Fuzzes the PROXY protocol parser (v1 and v2). Any input must parse or fail cleanly, and:
//  - a parsed header parses the same from exactly its own bytes, every strict prefix of it is
//    kIncomplete, and the builders reproduce it (byte for byte where the wire form is unique:
//    TCP4 v1 lines, TLV-free TCP4/TCP6 v2 headers, the bare LOCAL header, "PROXY UNKNOWN\r\n";
//    by value for TCP6 v1 lines, whose IPv6 text has many spellings);
//  - a definite error stays the same error when more bytes arrive, and kIncomplete is never
//    returned once a caller has buffered the most a header can take.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/http/proxy_protocol.h"
#include "lib/util/bytes.h"

namespace {

using derpkit::AsBytes;
using derpkit::Bytes;
using derpkit::ByteSpan;
using derpkit::http::BuildProxyV1;
using derpkit::http::BuildProxyV2;
using derpkit::http::kMaxProxyV1Size;
using derpkit::http::kMaxProxyV2Size;
using derpkit::http::ParseProxyHeader;
using derpkit::http::ProxyError;
using derpkit::http::ProxyHeader;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool SameHeader(const ProxyHeader& a, const ProxyHeader& b) {
  return a.version == b.version && a.local == b.local && a.has_source == b.has_source &&
         a.source_ip == b.source_ip && a.source_port == b.source_port && a.dest_ip == b.dest_ip &&
         a.dest_port == b.dest_port && a.header_size == b.header_size;
}

bool SameBytes(ByteSpan a, ByteSpan b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

void CheckParsed(ByteSpan in, const ProxyHeader& h) {
  Check(h.version == 1 || h.version == 2);
  Check(h.header_size <= in.size());
  if (h.version == 1) Check(h.header_size >= 15 && h.header_size <= kMaxProxyV1Size);
  if (h.version == 2) Check(h.header_size >= 16 && h.header_size <= kMaxProxyV2Size);
  if (h.local) Check(h.version == 2 && !h.has_source);

  const ByteSpan header = in.first(h.header_size);
  const auto exact = ParseProxyHeader(header);
  Check(exact.has_value() && SameHeader(*exact, h));

  // Every strict prefix must ask for more; for long headers, test a spread of them.
  const std::size_t step = h.header_size <= 128 ? 1 : h.header_size / 64;
  for (std::size_t n = 0; n < h.header_size; n += step) {
    const auto part = ParseProxyHeader(header.first(n));
    Check(!part.has_value() && part.error() == ProxyError::kIncomplete);
  }
  const auto last = ParseProxyHeader(header.first(h.header_size - 1));
  Check(!last.has_value() && last.error() == ProxyError::kIncomplete);

  if (h.has_source) {
    const std::string v1 = BuildProxyV1(h.source_ip, h.source_port, h.dest_ip, h.dest_port);
    const auto again_v1 = ParseProxyHeader(AsBytes(v1));
    Check(again_v1.has_value() && again_v1->has_source && again_v1->source_ip == h.source_ip &&
          again_v1->dest_ip == h.dest_ip && again_v1->source_port == h.source_port &&
          again_v1->dest_port == h.dest_port && again_v1->header_size == v1.size());
    const Bytes v2 = BuildProxyV2(h.source_ip, h.source_port, h.dest_ip, h.dest_port);
    const auto again_v2 = ParseProxyHeader(v2);
    Check(again_v2.has_value() && again_v2->has_source && again_v2->source_ip == h.source_ip &&
          again_v2->dest_ip == h.dest_ip && again_v2->source_port == h.source_port &&
          again_v2->dest_port == h.dest_port && again_v2->header_size == v2.size());

    if (h.version == 1 && h.source_ip.is_v4()) Check(SameBytes(AsBytes(v1), header));
    if (h.version == 2 && h.header_size == v2.size()) Check(SameBytes(v2, header));
  }
  if (h.local && h.header_size == 16 && in[13] == std::byte{0}) {
    Check(SameBytes(BuildProxyV2(h.source_ip, 0, h.dest_ip, 0, /*local=*/true), header));
  }
  if (h.version == 1 && !h.has_source && h.header_size == 15) {
    Check(SameBytes(AsBytes("PROXY UNKNOWN\r\n"), header));
  }
}

void CheckFailed(ByteSpan in, ProxyError e) {
  Check(!Describe(e).empty());
  Bytes longer(in.begin(), in.end());
  longer.push_back(in.empty() ? std::byte{0} : in.back());
  const auto more = ParseProxyHeader(longer);
  if (e == ProxyError::kIncomplete) {
    // A caller never needs to buffer more than the largest header to get an answer.
    Check(in.size() < kMaxProxyV2Size);
    if (!in.empty() && in[0] == std::byte{'P'}) Check(in.size() < kMaxProxyV1Size);
    if (!in.empty()) {
      const auto fewer = ParseProxyHeader(in.first(in.size() - 1));
      Check(!fewer.has_value() && fewer.error() == ProxyError::kIncomplete);
    }
  } else {
    Check(!more.has_value() && more.error() == e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto in = std::as_bytes(std::span(data, size));
  const auto h = ParseProxyHeader(in);
  if (h.has_value()) {
    CheckParsed(in, *h);
  } else {
    CheckFailed(in, h.error());
  }
  return 0;
}
