// Fuzzes lib/stun's two parsers. Any input parses or fails cleanly; what parses round-trips:
// - a Binding Request: our response to it parses back to the same txid, address and port (both
//   families, both forms), and a 40-byte Tailscale or 20-byte bare request re-encodes exactly;
// - a Binding Success: re-encoding the parsed address and parsing again gives the same values.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lib/stun/stun.h"

namespace {

using derpkit::Bytes;
using derpkit::ByteSpan;
using derpkit::netaddr::IpAddress;
namespace stun = derpkit::stun;

void CheckResponseRoundTrip(const stun::TxId& txid, const IpAddress& ip, std::uint16_t port,
                            stun::FamilyForm form) {
  std::array<std::byte, stun::kMaxResponseSize> buf{};
  const std::size_t n = stun::WriteBindingResponse(buf, txid, ip, port, form);
  const auto back = stun::ParseBindingResponse(std::span(buf).first(n));
  if (!back || back->txid != txid || back->ip != ip.Unmap() || back->port != port) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteSpan in = std::as_bytes(std::span(data, size));

  if (const auto req = stun::ParseBindingRequest(in)) {
    // Derive a peer address from the txid so the fuzzer steers it too.
    const auto& t = req->txid.bytes;
    std::array<std::byte, 16> v6{};
    std::copy(t.begin(), t.end(), v6.begin());
    std::copy(t.begin(), t.begin() + 4, v6.begin() + 12);
    std::array<std::byte, 4> v4{};
    std::copy(t.begin(), t.begin() + 4, v4.begin());
    const auto port = static_cast<std::uint16_t>(derpkit::LoadBigEndian16(std::span(t).subspan(4)));
    for (const IpAddress& ip : {IpAddress::V4(v4), IpAddress::V6(v6)}) {
      CheckResponseRoundTrip(req->txid, ip, port, stun::FamilyForm::kNative);
      CheckResponseRoundTrip(req->txid, ip, port, stun::FamilyForm::kMappedV6);
    }

    // The two canonical request shapes have exactly one encoding.
    const std::uint16_t attrs_size = derpkit::LoadBigEndian16(in.subspan(2));
    if (req->is_tailscale && size == stun::kTailscaleRequestSize && attrs_size == 20) {
      const Bytes again = stun::BuildBindingRequest(req->txid, stun::RequestForm::kTailscale);
      if (!std::equal(again.begin(), again.end(), in.begin(), in.end())) __builtin_trap();
    }
    if (size == stun::kBareRequestSize) {
      if (req->is_tailscale) __builtin_trap();
      const Bytes again = stun::BuildBindingRequest(req->txid, stun::RequestForm::kBare);
      if (!std::equal(again.begin(), again.end(), in.begin(), in.end())) __builtin_trap();
    }
  }

  if (const auto resp = stun::ParseBindingResponse(in)) {
    if (resp->ip.IsV4Mapped()) __builtin_trap();  // the parser unmaps
    CheckResponseRoundTrip(resp->txid, resp->ip, resp->port, stun::FamilyForm::kNative);
    CheckResponseRoundTrip(resp->txid, resp->ip, resp->port, stun::FamilyForm::kMappedV6);
  }
  return 0;
}
