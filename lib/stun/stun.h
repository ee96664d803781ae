// STUN Binding (RFC 5389) as Tailscale uses it: the spec header for lib/stun.
//
// Pure codec: bytes in, values out, and back. No sockets, clocks or randomness: callers supply the
// transaction ID bytes (TxId::FromSpan) and own the I/O (relay/stun_server, stunc, netcheck).
//
// Flow. A client sends a Binding Request from a UDP socket; the server copies the transaction ID
// into a Binding Success response carrying the source address and port it saw, XORed with the
// magic cookie (and, for IPv6, the transaction ID). The server keeps no state.
//
// Message header (20 bytes), every STUN message:
//   offset  0  u16   type: top two bits 0; 0x0001 Binding Request, 0x0101 Binding Success
//   offset  2  u16   length of the attributes that follow, in bytes (a multiple of 4)
//   offset  4  u32   magic cookie 0x2112a442
//   offset  8  12 B  transaction ID
// Attributes (TLV), from offset 20:
//   u16 type, u16 value length, value, then zero padding up to a multiple of 4
//
// Tailscale's request (always 40 bytes; derp-protocol.md §11.1):
//   0001 0014 2112a442 <txid>
//   8022 0008 7461696c6e6f6465   SOFTWARE "tailnode" (8 bytes, no padding)
//   8028 0004 <crc>              FINGERPRINT: CRC-32 (IEEE) of bytes 0..31, XOR 0x5354554e
//
// Response (32 bytes for IPv4, 44 for IPv6; §11.3). derper sends nothing else:
//   0101 000c|0018 2112a442 <txid>
//   0020 0008|0014               XOR-MAPPED-ADDRESS
//   00 <family 01|02> <port XOR 0x2112> <address XOR (cookie || txid), 4 or 16 bytes>
//
// Errors: every parser returns Expected<T, StunError>; nothing here throws or allocates on the
// parse path.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"
#include "lib/util/netaddr.h"

namespace derpkit::stun {

inline constexpr std::size_t kHeaderSize = 20;
inline constexpr std::size_t kTxIdSize = 12;
inline constexpr std::uint32_t kMagicCookie = 0x2112a442;

// Message types (bytes 0..1).
inline constexpr std::uint16_t kTypeBindingRequest = 0x0001;
inline constexpr std::uint16_t kTypeBindingSuccess = 0x0101;

// Attribute types.
inline constexpr std::uint16_t kAttrMappedAddress = 0x0001;        // RFC 3489 form, not XORed
inline constexpr std::uint16_t kAttrXorMappedAddress = 0x0020;     // RFC 5389
inline constexpr std::uint16_t kAttrXorMappedAddressAlt = 0x8020;  // pre-RFC draft number
inline constexpr std::uint16_t kAttrSoftware = 0x8022;
inline constexpr std::uint16_t kAttrFingerprint = 0x8028;

// The FINGERPRINT value is CRC-32 XOR this ("STUN" in ASCII).
inline constexpr std::uint32_t kFingerprintXor = 0x5354554e;
inline constexpr std::string_view kTailscaleSoftware = "tailnode";

// XOR-MAPPED-ADDRESS address families.
inline constexpr std::uint8_t kFamilyIpv4 = 0x01;
inline constexpr std::uint8_t kFamilyIpv6 = 0x02;

inline constexpr std::size_t kTailscaleRequestSize = 40;
inline constexpr std::size_t kBareRequestSize = kHeaderSize;
inline constexpr std::size_t kIpv4ResponseSize = 32;
inline constexpr std::size_t kIpv6ResponseSize = 44;
// The largest message WriteBindingResponse writes: size response buffers with this.
inline constexpr std::size_t kMaxResponseSize = kIpv6ResponseSize;

// A STUN transaction ID: 12 opaque bytes chosen by the client, echoed by the server.
struct TxId {
  std::array<std::byte, kTxIdSize> bytes{};

  // Copies a transaction ID from `in`, which must hold exactly kTxIdSize bytes (asserted; in
  // release builds a shorter span leaves the tail zero). Callers fill `in` from their own random
  // source: this library stays free of I/O and entropy.
  static TxId FromSpan(ByteSpan in);
  // Returns the 24 lowercase hex digits.
  std::string ToHex() const;

  friend bool operator==(const TxId&, const TxId&) = default;
};

// Why a datagram was not accepted. A closed set.
enum class StunError {
  kTooShort,            // fewer than kHeaderSize bytes
  kNotStun,             // top two bits of the type set, or no magic cookie
  kNotBindingRequest,   // a STUN message, but not type 0x0001
  kNotBindingResponse,  // a STUN message, but not type 0x0101 (error responses included)
  kBadAttributes,       // length field inconsistent with the datagram, or a TLV overruns it
  kBadFingerprint,      // FINGERPRINT present but not last, not 4 bytes, or the CRC is wrong
  kNoMappedAddress,     // a Binding Success without any (XOR-)MAPPED-ADDRESS
  kBadAddressFamily,    // an address attribute whose family is neither 0x01 nor 0x02
};

// Returns a one-line description of `e`, for logs and test failures.
std::string_view Describe(StunError e);

// Returns the FINGERPRINT value for a message whose bytes before the FINGERPRINT attribute are
// `bytes_before_fingerprint_attr` (header length field already counting the FINGERPRINT):
// CRC-32 (IEEE 802.3, as zlib's crc32) XOR kFingerprintXor.
std::uint32_t Fingerprint(ByteSpan bytes_before_fingerprint_attr);

enum class RequestForm {
  kTailscale,  // SOFTWARE "tailnode" + FINGERPRINT, 40 bytes: what tailscaled and stunc send
  kBare,       // the 20-byte header only, like coturn's turnutils_stunclient
};

// Returns a Binding Request with transaction ID `txid`.
Bytes BuildBindingRequest(const TxId& txid, RequestForm form = RequestForm::kTailscale);

struct BindingRequest {
  TxId txid;
  // True iff derper would answer this datagram (§11.2): parsing attributes from byte 20 to the
  // end of the datagram (derper ignores the header length field) succeeds, some attribute is
  // SOFTWARE with value exactly "tailnode", and the last attribute is a FINGERPRINT matching the
  // CRC of everything before it.
  bool is_tailscale = false;
};

// Validates `datagram` as an RFC 5389 Binding Request: at least 20 bytes, top two bits zero,
// magic cookie, type 0x0001, header length a multiple of 4 and no larger than the datagram,
// attributes within that length well-formed TLVs, and a FINGERPRINT, if present, last and valid.
// Trailing bytes past the header length are tolerated (RFC 5389 leaves them to the transport).
// Attributes are not otherwise interpreted: USERNAME, MESSAGE-INTEGRITY, CHANGE-REQUEST and
// unknown comprehension-required attributes are ignored, because a public reflector has no
// credentials to check and answers everyone the same way.
// Errors: kTooShort, kNotStun, kNotBindingRequest, kBadAttributes, kBadFingerprint.
//
// Note: derper answers a few datagrams this rejects (a Tailscale request whose header length
// field is wrong); no real client sends those.
Expected<BindingRequest, StunError> ParseBindingRequest(ByteSpan datagram);

enum class FamilyForm {
  kNative,    // the address as given: IPv4 as family 0x01 (32 bytes), IPv6 as 0x02 (44 bytes)
  kMappedV6,  // always family 0x02; IPv4 as ::ffff:a.b.c.d (44 bytes), like a dual-stack derper
};

// Writes a Binding Success response carrying `ip`:`port` into the front of `out` and returns the
// number of bytes used (kIpv4ResponseSize or kIpv6ResponseSize). `out` must hold at least
// kMaxResponseSize bytes (asserted). Never allocates: this is the responder's hot path. With
// kNative an IPv4-mapped IPv6 address stays IPv6: callers that want family 0x01 for such a peer
// call Unmap() first.
std::size_t WriteBindingResponse(std::span<std::byte> out, const TxId& txid,
                                 const netaddr::IpAddress& ip, std::uint16_t port,
                                 FamilyForm form = FamilyForm::kNative);

// Returns the same bytes as WriteBindingResponse, in a new vector.
Bytes BuildBindingResponse(const TxId& txid, const netaddr::IpAddress& ip, std::uint16_t port,
                           FamilyForm form = FamilyForm::kNative);

struct BindingResponse {
  TxId txid;
  netaddr::IpAddress ip;  // IPv4-mapped IPv6 is returned unmapped, as IPv4
  std::uint16_t port = 0;
};

// Parses a Binding Success response the way Tailscale clients do (§11.4): type 0x0101 only;
// attributes are read up to the header length field (trailing datagram bytes are ignored);
// the last XOR-MAPPED-ADDRESS (0x0020 or 0x8020) wins, MAPPED-ADDRESS (0x0001) is the fallback.
// FINGERPRINT and MESSAGE-INTEGRITY are not checked, like the reference client. The caller
// matches txid against its outstanding requests.
// Errors: kTooShort, kNotStun, kNotBindingResponse, kBadAttributes (also an address attribute too
// short for its family), kBadAddressFamily, kNoMappedAddress.
Expected<BindingResponse, StunError> ParseBindingResponse(ByteSpan datagram);

}  // namespace derpkit::stun
