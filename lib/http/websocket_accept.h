// The RFC 6455 §4.2.2 opening-handshake arithmetic: Sec-WebSocket-Accept from Sec-WebSocket-Key.
//
// This needs SHA-1 and base64. OpenSSL has both, but lib/http is a pure layer that must not see
// OpenSSL (style.md §8.2), and the handshake hashes 60 bytes once per WebSocket connection, so a
// small self-contained SHA-1 (FIPS 180-4) is the simpler trade. SHA-1 is fine here: RFC 6455 uses
// it as a fixed transform to prove the server read the key, not for security.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "lib/util/bytes.h"

namespace derpkit::http {

// The GUID RFC 6455 appends to the client's key before hashing.
inline constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Returns base64(SHA-1(key + kWebSocketGuid)), the Sec-WebSocket-Accept value for `key` (the
// Sec-WebSocket-Key value as received, already trimmed of OWS).
std::string WebSocketAccept(std::string_view key);

// True when `key` is what RFC 6455 §4.1 requires: the base64 encoding of 16 bytes (24
// characters ending in "=="). Servers answer 400 otherwise.
bool IsValidWebSocketKey(std::string_view key);

// Returns the SHA-1 digest of `in` (FIPS 180-4).
std::array<std::byte, 20> Sha1(ByteSpan in);

// Returns the standard base64 encoding of `in`, with '=' padding (RFC 4648 §4).
std::string Base64Encode(ByteSpan in);

}  // namespace derpkit::http
