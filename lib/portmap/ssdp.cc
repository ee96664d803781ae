// SSDP M-SEARCH and its unicast answers; formats in ssdp.h.
#include "lib/portmap/ssdp.h"

#include <vector>

#include "lib/http/head.h"

namespace derpkit::portmap {

void AppendSsdpSearch(std::string& out, std::string_view search_target) {
  const std::string host =
      std::string(kSsdpMulticastGroup) + ":" + std::to_string(static_cast<unsigned>(kSsdpPort));
  http::AppendRequest(out, "M-SEARCH", "*",
                      {{"HOST", host},
                       {"ST", std::string(search_target)},
                       {"MAN", "\"ssdp:discover\""},
                       {"MX", "2"}});
}

std::string_view Describe(SsdpError e) {
  switch (e) {
    case SsdpError::kIncomplete:
      return "SSDP answer cut short: no blank line ends its head";
    case SsdpError::kTooLarge:
      return "SSDP answer head over 16 KiB or 100 fields";
    case SsdpError::kBadStatusLine:
      return "SSDP answer does not start with an HTTP/1.x status line";
    case SsdpError::kBadVersion:
      return "SSDP answer with an HTTP version other than 1.0 or 1.1";
    case SsdpError::kBadHeaderLine:
      return "SSDP answer has a malformed field line";
    case SsdpError::kNotOk:
      return "SSDP answer with a status other than 200";
    case SsdpError::kMissingSt:
      return "SSDP answer without an ST field";
    case SsdpError::kMissingUsn:
      return "SSDP answer without a USN field";
    case SsdpError::kTrailingBytes:
      return "SSDP answer has bytes after its head (SSDP answers have no body)";
  }
  return "unknown SSDP error";
}

namespace {

SsdpError FromHeadError(http::ParseError e) {
  switch (e) {
    case http::ParseError::kIncomplete:
      return SsdpError::kIncomplete;
    case http::ParseError::kHeadTooLarge:
    case http::ParseError::kTooManyHeaders:
      return SsdpError::kTooLarge;
    case http::ParseError::kBadVersion:
      return SsdpError::kBadVersion;
    case http::ParseError::kBadHeaderLine:
      return SsdpError::kBadHeaderLine;
    case http::ParseError::kBadRequestLine:
    case http::ParseError::kBadStatusLine:
      break;
  }
  return SsdpError::kBadStatusLine;
}

bool NamesGateway(std::string_view field) {
  for (std::string_view marker :
       {":InternetGatewayDevice:", ":WANIPConnection:", ":WANPPPConnection:"}) {
    if (field.find(marker) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

Expected<SsdpResponse, SsdpError> ParseSsdpResponse(ByteSpan datagram) {
  auto head = http::ParseResponseHead(datagram);
  if (!head) return Unexpected{FromHeadError(head.error())};
  if (head->head_size != datagram.size()) return Unexpected{SsdpError::kTrailingBytes};
  if (head->status != 200) return Unexpected{SsdpError::kNotOk};
  const std::string* st = head->Find("ST");
  if (st == nullptr) return Unexpected{SsdpError::kMissingSt};
  const std::string* usn = head->Find("USN");
  if (usn == nullptr) return Unexpected{SsdpError::kMissingUsn};
  SsdpResponse r;
  r.st = *st;
  r.usn = *usn;
  if (const std::string* location = head->Find("LOCATION")) r.location = *location;
  if (const std::string* server = head->Find("SERVER")) r.server = *server;
  return r;
}

bool IsInternetGatewayDevice(const SsdpResponse& response) {
  return NamesGateway(response.st) || NamesGateway(response.usn);
}

void AppendSsdpResponse(std::string& out, const SsdpResponse& response) {
  out += "HTTP/1.1 200 OK\r\n";
  std::vector<http::Header> fields = {{"ST", response.st}, {"USN", response.usn}};
  if (!response.location.empty()) fields.push_back({"LOCATION", response.location});
  if (!response.server.empty()) fields.push_back({"SERVER", response.server});
  for (const http::Header& f : fields) out += f.name + ": " + f.value + "\r\n";
  out += "\r\n";
}

}  // namespace derpkit::portmap
