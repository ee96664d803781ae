// Two TLS ClientHello extension bodies the relay's TLS-ALPN-01 responder (RFC 8737) reads before
// OpenSSL has parsed them: ALPN (RFC 7301 §3.1) and server_name (RFC 6066 §3). OpenSSL hands
// them over raw in its ClientHello callback (SSL_client_hello_get0_ext).
//
// Pure: no I/O, no allocation beyond the returned vector, no state. The string_views alias the
// input, which the caller keeps alive (OpenSSL's, valid during the callback).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/expected.h"

namespace derpkit::acme {

// Parses an ALPN extension body: a 16-bit length of the rest, then protocol names, each a
// non-empty byte string behind an 8-bit length. Returns the names in order, or a message saying
// what is malformed (empty list, empty name, a length past the end, bytes after the list).
Expected<std::vector<std::string_view>, std::string> ParseAlpnExtension(
    std::span<const std::uint8_t> body);

// Parses a server_name extension body: a 16-bit length of the rest, then entries of an 8-bit
// type and a 16-bit length; returns the first host_name (type 0) entry. A host_name that is
// empty or holds a NUL, a length past the end, trailing bytes or no host_name entry are errors.
Expected<std::string_view, std::string> ParseServerNameExtension(
    std::span<const std::uint8_t> body);

}  // namespace derpkit::acme
