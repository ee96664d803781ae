// Fuzzes the HTTP/1.1 head parsers. Any input must parse or fail cleanly. A parsed request,
// written back as "METHOD SP target SP HTTP/1.x" plus "name: value" lines, must parse to the same
// fields; a parsed response head, written back with AppendResponse, must keep its status and
// headers.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lib/http/head.h"

namespace {

using derpkit::AsBytes;
using derpkit::http::AppendResponse;
using derpkit::http::Header;
using derpkit::http::Limits;
using derpkit::http::ParseRequestHead;
using derpkit::http::ParseResponseHead;
using derpkit::http::RequestHead;
using derpkit::http::Response;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool SameHeaders(const std::vector<Header>& a, const std::vector<Header>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
  }
  return true;
}

std::string Serialize(const RequestHead& head) {
  std::string out =
      head.method + " " + head.target + " HTTP/1." + std::to_string(head.version_minor) + "\r\n";
  for (const Header& h : head.headers) out += h.name + ": " + h.value + "\r\n";
  return out + "\r\n";
}

// Writing back adds a byte per field line (the space after ':') and AppendResponse adds a Date.
constexpr Limits kRoomy{.max_head_bytes = 1 << 20, .max_headers = 200};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto in = std::as_bytes(std::span(data, size));

  if (const auto req = ParseRequestHead(in); req.has_value()) {
    Check(req->head_size <= size && req->head_size >= 16);  // "M * HTTP/1.1\r\n\r\n"
    Check(req->target.find('?') == std::string::npos
              ? req->target == req->path && req->query.empty()
              : req->target == req->path + "?" + req->query);
    const std::string again = Serialize(*req);
    const auto reparsed = ParseRequestHead(AsBytes(again), kRoomy);
    Check(reparsed.has_value());
    Check(reparsed->method == req->method && reparsed->target == req->target &&
          reparsed->path == req->path && reparsed->query == req->query &&
          reparsed->version_minor == req->version_minor &&
          SameHeaders(reparsed->headers, req->headers) && reparsed->head_size == again.size());
    Check(Serialize(*reparsed) == again);
  }

  if (const auto resp = ParseResponseHead(in); resp.has_value()) {
    Check(resp->head_size <= size && resp->status >= 100 && resp->status <= 999);
    Response r;
    r.status = resp->status;
    r.headers = resp->headers;
    r.head_only = true;
    std::string out;
    AppendResponse(out, r, std::chrono::system_clock::time_point{});
    const auto reparsed = ParseResponseHead(AsBytes(out), kRoomy);
    Check(reparsed.has_value());
    Check(reparsed->status == resp->status && reparsed->head_size == out.size() &&
          reparsed->headers.size() >= resp->headers.size());
    const std::vector<Header> prefix(
        reparsed->headers.begin(),
        reparsed->headers.begin() + static_cast<std::ptrdiff_t>(resp->headers.size()));
    Check(SameHeaders(prefix, resp->headers));
  }
  return 0;
}
