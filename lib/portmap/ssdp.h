// SSDP discovery (UPnP Device Architecture 1.1 §1.3) as netcheck's port-mapping probe uses it:
// the M-SEARCH request and the parser for the unicast answers. Pure codec; no sockets.
//
// Flow. The client sends M-SEARCH over UDP to port 1900 (Tailscale sends it to the gateway's own
// address, and to the multicast group 239.255.255.250 as well); every device that matches the
// search target answers the sender with an HTTP-style 200 response in one datagram, from its
// unicast address. A UPnP Internet Gateway Device is what port mapping needs: its answers name
// "…:device:InternetGatewayDevice:N" or one of its WAN connection services in ST or USN.
//
// Request, exactly the bytes Tailscale's portmapper sends (net/portmapper/portmapper.go):
//   M-SEARCH * HTTP/1.1\r\n
//   HOST: 239.255.255.250:1900\r\n
//   ST: ssdp:all\r\n                  (or urn:schemas-upnp-org:device:InternetGatewayDevice:1)
//   MAN: "ssdp:discover"\r\n
//   MX: 2\r\n
//   \r\n
// Response (one datagram, no body), e.g. from miniupnpd 2.3:
//   HTTP/1.1 200 OK\r\n
//   CACHE-CONTROL: max-age=120\r\n
//   ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n
//   USN: uuid:…::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n
//   EXT:\r\n
//   SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n
//   LOCATION: http://192.0.2.1:40307/rootDesc.xml\r\n
//   …\r\n
//   \r\n
//
// Errors: ParseSsdpResponse returns Expected<SsdpResponse, SsdpError>; nothing here throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::portmap {

inline constexpr std::uint16_t kSsdpPort = 1900;
inline constexpr std::string_view kSsdpMulticastGroup = "239.255.255.250";
inline constexpr std::string_view kSearchTargetAll = "ssdp:all";
inline constexpr std::string_view kSearchTargetIgd =
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1";

// Appends an M-SEARCH for `search_target` (kSearchTargetAll or kSearchTargetIgd), byte for byte
// as Tailscale writes it. `search_target` must be free of CR and LF.
void AppendSsdpSearch(std::string& out, std::string_view search_target);

struct SsdpResponse {
  std::string st;        // search target this answer is for
  std::string usn;       // unique service name: "uuid:…::<type>"
  std::string location;  // URL of the device description; "" when absent
  std::string server;    // "OS/version UPnP/1.1 product/version"; "" when absent

  friend bool operator==(const SsdpResponse&, const SsdpResponse&) = default;
};

enum class SsdpError {
  kIncomplete,     // no blank line: a datagram holds the whole head, so it was cut short
  kTooLarge,       // head over 16 KiB or over 100 fields
  kBadStatusLine,  // not "HTTP/1.x SP 3DIGIT [SP reason]"
  kBadVersion,     // an HTTP version other than 1.0 or 1.1
  kBadHeaderLine,  // a field line is malformed (no ':', control characters, obs-fold)
  kNotOk,          // a status other than 200
  kMissingSt,      // no ST field
  kMissingUsn,     // no USN field
  kTrailingBytes,  // bytes after the blank line: SSDP answers have no body
};

// Returns a one-line description of `e`.
std::string_view Describe(SsdpError e);

// Parses one SSDP answer datagram with lib/http's strict response-head parser.
Expected<SsdpResponse, SsdpError> ParseSsdpResponse(ByteSpan datagram);

// True when the answer is from an Internet Gateway Device: ST or USN names
// ":InternetGatewayDevice:", ":WANIPConnection:" or ":WANPPPConnection:" (Tailscale looks only for
// the first anywhere in the datagram; the WAN connection services are what port mapping uses).
bool IsInternetGatewayDevice(const SsdpResponse& response);

// Appends a 200 answer carrying the response's fields (LOCATION and SERVER only when non-empty).
// Tests and the fuzz target use it; the probe only parses.
void AppendSsdpResponse(std::string& out, const SsdpResponse& response);

}  // namespace derpkit::portmap
