#include "lib/stun/stun.h"

#include <algorithm>
#include <cassert>
#include <optional>
#include <utility>

namespace derpkit::stun {
namespace {

// CRC-32 (IEEE 802.3, reflected, polynomial 0xedb88320), slicing-by-8: eight tables built at
// compile time let the loop take 8 bytes per step instead of one (the relay's STUN responder
// spent most of its own instructions here). We carry our own rather than link zlib: lib/stun
// stays std-only so every binary and fuzzer can link it without another dependency.
using CrcTables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (std::uint32_t i = 0; i < 256; ++i) {
    for (std::size_t k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}

constexpr CrcTables kCrcTables = MakeCrcTables();

std::uint32_t Crc32(ByteSpan in) {
  const auto byte = [&](std::size_t i) { return std::to_integer<std::uint32_t>(in[i]); };
  std::uint32_t c = 0xffffffffu;
  std::size_t i = 0;
  for (; i + 8 <= in.size(); i += 8) {
    // Little-endian words assembled byte by byte: the result does not depend on the host.
    const std::uint32_t lo =
        c ^ (byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24);
    const std::uint32_t hi = byte(i + 4) | byte(i + 5) << 8 | byte(i + 6) << 16 | byte(i + 7) << 24;
    c = kCrcTables[7][lo & 0xff] ^ kCrcTables[6][(lo >> 8) & 0xff] ^
        kCrcTables[5][(lo >> 16) & 0xff] ^ kCrcTables[4][lo >> 24] ^ kCrcTables[3][hi & 0xff] ^
        kCrcTables[2][(hi >> 8) & 0xff] ^ kCrcTables[1][(hi >> 16) & 0xff] ^
        kCrcTables[0][hi >> 24];
  }
  for (; i < in.size(); ++i) c = kCrcTables[0][(c ^ byte(i)) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

constexpr std::size_t kAttrHeaderSize = 4;
constexpr std::size_t kFingerprintAttrSize = kAttrHeaderSize + 4;

constexpr std::size_t Padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// Calls fn(type, value, offset of the attribute within `attrs`) for each TLV in `attrs`, in
// order. Returns false if a TLV (with its padding) overruns `attrs`; fn may stop the walk early
// by returning false, which is reported as success.
template <typename Fn>
bool ForEachAttribute(ByteSpan attrs, Fn&& fn) {
  std::size_t off = 0;
  while (off < attrs.size()) {
    if (attrs.size() - off < kAttrHeaderSize) return false;
    const std::uint16_t type = LoadBigEndian16(attrs.subspan(off));
    const std::size_t size = LoadBigEndian16(attrs.subspan(off + 2));
    if (Padded(size) > attrs.size() - off - kAttrHeaderSize) return false;
    if (!fn(type, attrs.subspan(off + kAttrHeaderSize, size), off)) return true;
    off += kAttrHeaderSize + Padded(size);
  }
  return true;
}

// Header checks shared by both parsers: length, top bits, cookie.
Expected<std::uint16_t, StunError> CheckHeader(ByteSpan datagram) {
  if (datagram.size() < kHeaderSize) return Unexpected{StunError::kTooShort};
  if ((std::to_integer<unsigned>(datagram[0]) & 0xc0) != 0 ||
      LoadBigEndian32(datagram.subspan(4)) != kMagicCookie) {
    return Unexpected{StunError::kNotStun};
  }
  return LoadBigEndian16(datagram);
}

// derper's acceptance rule (net/stun ParseBindingRequest), replicated quirk for quirk: attributes
// run to the end of the datagram, and the expected CRC covers all but the last 8 bytes even if
// the final FINGERPRINT attribute has an odd length (then gotFP is whatever the last 4-byte
// FINGERPRINT held, or 0). `known_fingerprint`, when set, is Fingerprint() of the datagram's
// first `known_fingerprint->first` bytes, already computed by the caller.
bool DerperWouldAnswer(ByteSpan datagram,
                       std::optional<std::pair<std::size_t, std::uint32_t>> known_fingerprint) {
  bool software_ok = false;
  std::uint16_t last_type = 0;
  std::uint32_t got_fp = 0;
  const bool parsed = ForEachAttribute(
      datagram.subspan(kHeaderSize), [&](std::uint16_t type, ByteSpan value, std::size_t) {
        last_type = type;
        if (type == kAttrSoftware && AsText(value) == kTailscaleSoftware) software_ok = true;
        if (type == kAttrFingerprint && value.size() == 4) got_fp = LoadBigEndian32(value);
        return true;
      });
  if (!parsed || !software_ok || last_type != kAttrFingerprint) return false;
  const std::size_t covered = datagram.size() - kFingerprintAttrSize;
  if (known_fingerprint && known_fingerprint->first == covered) {
    return got_fp == known_fingerprint->second;
  }
  return got_fp == Fingerprint(datagram.first(covered));
}

void XorAddress(std::span<std::byte> addr, const TxId& txid) {
  std::array<std::byte, 16> mask{};
  StoreBigEndian32(mask, kMagicCookie);
  std::copy(txid.bytes.begin(), txid.bytes.end(), mask.begin() + 4);
  for (std::size_t i = 0; i < addr.size(); ++i) addr[i] ^= mask[i];
}

struct MappedAddress {
  netaddr::IpAddress ip;
  std::uint16_t port = 0;
};

// Decodes a (XOR-)MAPPED-ADDRESS value: u8 reserved, u8 family, u16 port, 4 or 16 address bytes.
// Longer values are accepted and the excess ignored, as the reference client does.
Expected<MappedAddress, StunError> DecodeAddress(ByteSpan value, const TxId* xor_txid) {
  if (value.size() < 4) return Unexpected{StunError::kBadAttributes};
  const std::uint8_t family = std::to_integer<std::uint8_t>(value[1]);
  std::uint16_t port = LoadBigEndian16(value.subspan(2));
  if (xor_txid != nullptr) port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  const ByteSpan addr = value.subspan(4);
  if (family == kFamilyIpv4) {
    if (addr.size() < 4) return Unexpected{StunError::kBadAttributes};
    std::array<std::byte, 4> b{};
    std::copy_n(addr.begin(), 4, b.begin());
    if (xor_txid != nullptr) XorAddress(b, *xor_txid);
    return MappedAddress{netaddr::IpAddress::V4(b), port};
  }
  if (family == kFamilyIpv6) {
    if (addr.size() < 16) return Unexpected{StunError::kBadAttributes};
    std::array<std::byte, 16> b{};
    std::copy_n(addr.begin(), 16, b.begin());
    if (xor_txid != nullptr) XorAddress(b, *xor_txid);
    return MappedAddress{netaddr::IpAddress::V6(b).Unmap(), port};
  }
  return Unexpected{StunError::kBadAddressFamily};
}

}  // namespace

TxId TxId::FromSpan(ByteSpan in) {
  assert(in.size() == kTxIdSize);
  TxId t;
  std::copy_n(in.begin(), std::min(in.size(), kTxIdSize), t.bytes.begin());
  return t;
}

std::string TxId::ToHex() const { return HexEncode(bytes); }

std::string_view Describe(StunError e) {
  switch (e) {
    case StunError::kTooShort:
      return "datagram shorter than the 20-byte STUN header";
    case StunError::kNotStun:
      return "not STUN: top two bits of the type are set or the magic cookie 0x2112a442 is missing";
    case StunError::kNotBindingRequest:
      return "STUN message is not a Binding Request (type 0x0001)";
    case StunError::kNotBindingResponse:
      return "STUN message is not a Binding Success response (type 0x0101)";
    case StunError::kBadAttributes:
      return "STUN header length or attribute TLVs are inconsistent with the datagram";
    case StunError::kBadFingerprint:
      return "STUN FINGERPRINT is not the last attribute, not 4 bytes, or does not match the CRC";
    case StunError::kNoMappedAddress:
      return "STUN Binding Success has no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS";
    case StunError::kBadAddressFamily:
      return "STUN address attribute has a family other than 0x01 (IPv4) or 0x02 (IPv6)";
  }
  return "unknown StunError";
}

std::uint32_t Fingerprint(ByteSpan bytes_before_fingerprint_attr) {
  return Crc32(bytes_before_fingerprint_attr) ^ kFingerprintXor;
}

Bytes BuildBindingRequest(const TxId& txid, RequestForm form) {
  const bool tailscale = form == RequestForm::kTailscale;
  Bytes out;
  out.reserve(kTailscaleRequestSize);
  AppendBigEndian16(out, kTypeBindingRequest);
  AppendBigEndian16(
      out, static_cast<std::uint16_t>(tailscale ? kTailscaleRequestSize - kHeaderSize : 0));
  AppendBigEndian32(out, kMagicCookie);
  AppendBytes(out, txid.bytes);
  if (tailscale) {
    AppendBigEndian16(out, kAttrSoftware);
    AppendBigEndian16(out, static_cast<std::uint16_t>(kTailscaleSoftware.size()));
    AppendBytes(out, AsBytes(kTailscaleSoftware));
    const std::uint32_t fingerprint = Fingerprint(out);  // covers bytes 0..31
    AppendBigEndian16(out, kAttrFingerprint);
    AppendBigEndian16(out, 4);
    AppendBigEndian32(out, fingerprint);
  }
  return out;
}

Expected<BindingRequest, StunError> ParseBindingRequest(ByteSpan datagram) {
  const auto type = CheckHeader(datagram);
  if (!type) return Unexpected{type.error()};
  if (*type != kTypeBindingRequest) return Unexpected{StunError::kNotBindingRequest};
  const std::size_t attrs_size = LoadBigEndian16(datagram.subspan(2));
  if (attrs_size % 4 != 0 || attrs_size > datagram.size() - kHeaderSize) {
    return Unexpected{StunError::kBadAttributes};
  }

  const ByteSpan attrs = datagram.subspan(kHeaderSize, attrs_size);
  bool fingerprint_ok = true;
  // The CRC is the costliest step; derper's rule below usually needs the same one.
  std::optional<std::pair<std::size_t, std::uint32_t>> fingerprint;
  const bool parsed =
      ForEachAttribute(attrs, [&](std::uint16_t attr_type, ByteSpan value, std::size_t off) {
        if (attr_type != kAttrFingerprint) return true;
        // RFC 5389 §15.5: FINGERPRINT is last and covers everything before it.
        fingerprint_ok = value.size() == 4 && off + kFingerprintAttrSize == attrs.size();
        if (fingerprint_ok) {
          fingerprint.emplace(kHeaderSize + off, Fingerprint(datagram.first(kHeaderSize + off)));
          fingerprint_ok = LoadBigEndian32(value) == fingerprint->second;
        }
        return false;
      });
  if (!parsed) return Unexpected{StunError::kBadAttributes};
  if (!fingerprint_ok) return Unexpected{StunError::kBadFingerprint};

  return BindingRequest{TxId::FromSpan(datagram.subspan(8, kTxIdSize)),
                        DerperWouldAnswer(datagram, fingerprint)};
}

std::size_t WriteBindingResponse(std::span<std::byte> out, const TxId& txid,
                                 const netaddr::IpAddress& ip, std::uint16_t port,
                                 FamilyForm form) {
  assert(out.size() >= kMaxResponseSize);
  const bool v4 = form == FamilyForm::kNative && ip.is_v4();
  const std::size_t addr_size = v4 ? 4 : 16;
  const std::size_t value_size = 4 + addr_size;

  StoreBigEndian16(out, kTypeBindingSuccess);
  StoreBigEndian16(out.subspan(2), static_cast<std::uint16_t>(kAttrHeaderSize + value_size));
  StoreBigEndian32(out.subspan(4), kMagicCookie);
  std::copy(txid.bytes.begin(), txid.bytes.end(), out.begin() + 8);
  StoreBigEndian16(out.subspan(20), kAttrXorMappedAddress);
  StoreBigEndian16(out.subspan(22), static_cast<std::uint16_t>(value_size));
  out[24] = std::byte{0};
  out[25] = std::byte{v4 ? kFamilyIpv4 : kFamilyIpv6};
  StoreBigEndian16(out.subspan(26), static_cast<std::uint16_t>(port ^ (kMagicCookie >> 16)));
  const std::span<std::byte> addr = out.subspan(28, addr_size);
  if (v4) {
    const auto b = ip.v4_bytes();
    std::copy(b.begin(), b.end(), addr.begin());
  } else {
    const auto b = ip.As16();
    std::copy(b.begin(), b.end(), addr.begin());
  }
  XorAddress(addr, txid);
  return 28 + addr_size;
}

Bytes BuildBindingResponse(const TxId& txid, const netaddr::IpAddress& ip, std::uint16_t port,
                           FamilyForm form) {
  Bytes out(kMaxResponseSize);
  out.resize(WriteBindingResponse(out, txid, ip, port, form));
  return out;
}

Expected<BindingResponse, StunError> ParseBindingResponse(ByteSpan datagram) {
  const auto type = CheckHeader(datagram);
  if (!type) return Unexpected{type.error()};
  if (*type != kTypeBindingSuccess) return Unexpected{StunError::kNotBindingResponse};
  const std::size_t attrs_size = LoadBigEndian16(datagram.subspan(2));
  if (attrs_size > datagram.size() - kHeaderSize) return Unexpected{StunError::kBadAttributes};

  const TxId txid = TxId::FromSpan(datagram.subspan(8, kTxIdSize));
  std::optional<MappedAddress> xor_mapped;
  std::optional<MappedAddress> mapped;
  std::optional<StunError> error;
  const bool parsed = ForEachAttribute(datagram.subspan(kHeaderSize, attrs_size),
                                       [&](std::uint16_t attr_type, ByteSpan value, std::size_t) {
                                         if (attr_type != kAttrXorMappedAddress &&
                                             attr_type != kAttrXorMappedAddressAlt &&
                                             attr_type != kAttrMappedAddress) {
                                           return true;
                                         }
                                         const bool is_xor = attr_type != kAttrMappedAddress;
                                         auto addr = DecodeAddress(value, is_xor ? &txid : nullptr);
                                         if (!addr) {
                                           error = addr.error();
                                           return false;
                                         }
                                         (is_xor ? xor_mapped : mapped) = *addr;
                                         return true;
                                       });
  if (!parsed) return Unexpected{StunError::kBadAttributes};
  if (error) return Unexpected{*error};
  const std::optional<MappedAddress>& best = xor_mapped ? xor_mapped : mapped;
  if (!best) return Unexpected{StunError::kNoMappedAddress};
  return BindingResponse{txid, best->ip, best->port};
}

}  // namespace derpkit::stun
