// Pure parsers of two ClientHello extension bodies (see client_hello.h).
#include "lib/acme/client_hello.h"

namespace derpkit::acme {
namespace {

std::size_t Load16(std::span<const std::uint8_t> b, std::size_t at) {
  return (static_cast<std::size_t>(b[at]) << 8) | b[at + 1];
}

std::string_view Text(std::span<const std::uint8_t> b, std::size_t at, std::size_t size) {
  return {reinterpret_cast<const char*>(b.data() + at), size};
}

}  // namespace

Expected<std::vector<std::string_view>, std::string> ParseAlpnExtension(
    std::span<const std::uint8_t> body) {
  if (body.size() < 2) return Unexpected(std::string("ALPN: shorter than its 2-byte length"));
  const std::size_t list_size = Load16(body, 0);
  if (list_size + 2 != body.size()) {
    return Unexpected("ALPN: list length " + std::to_string(list_size) + " but " +
                      std::to_string(body.size() - 2) + " bytes follow");
  }
  if (list_size == 0) return Unexpected(std::string("ALPN: empty protocol list"));
  std::vector<std::string_view> names;
  for (std::size_t at = 2; at < body.size();) {
    const std::size_t size = body[at];
    if (size == 0) return Unexpected(std::string("ALPN: empty protocol name"));
    if (at + 1 + size > body.size()) {
      return Unexpected("ALPN: protocol name of " + std::to_string(size) +
                        " bytes runs past the end");
    }
    names.push_back(Text(body, at + 1, size));
    at += 1 + size;
  }
  return names;
}

Expected<std::string_view, std::string> ParseServerNameExtension(
    std::span<const std::uint8_t> body) {
  if (body.size() < 2) {
    return Unexpected(std::string("server_name: shorter than its 2-byte length"));
  }
  const std::size_t list_size = Load16(body, 0);
  if (list_size + 2 != body.size()) {
    return Unexpected("server_name: list length " + std::to_string(list_size) + " but " +
                      std::to_string(body.size() - 2) + " bytes follow");
  }
  std::string_view host;
  bool found = false;
  for (std::size_t at = 2; at < body.size();) {
    if (at + 3 > body.size()) return Unexpected(std::string("server_name: truncated entry"));
    const std::uint8_t type = body[at];
    const std::size_t size = Load16(body, at + 1);
    if (at + 3 + size > body.size()) {
      return Unexpected("server_name: name of " + std::to_string(size) +
                        " bytes runs past the end");
    }
    if (type == 0 && !found) {
      host = Text(body, at + 3, size);
      if (host.empty()) return Unexpected(std::string("server_name: empty host_name"));
      if (host.find('\0') != std::string_view::npos) {
        return Unexpected(std::string("server_name: host_name holds a NUL byte"));
      }
      found = true;
    }
    at += 3 + size;
  }
  if (!found) return Unexpected(std::string("server_name: no host_name entry"));
  return host;
}

}  // namespace derpkit::acme
