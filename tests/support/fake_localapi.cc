// The tailscaled LocalAPI stand-in (see fake_localapi.h). Plain POSIX: one server thread that
// accepts and answers one connection at a time, every wait bounded by kIoTimeoutMs.
#include "tests/support/fake_localapi.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include "lib/util/bytes.h"

namespace derpkit::testing {
namespace {

constexpr int kIoTimeoutMs = 5000;
constexpr const char* kLocalApiHost = "local-tailscaled.sock";
constexpr const char* kDerpMapPath = "/localapi/v0/derpmap";
constexpr const char* kWhoisPath = "/localapi/v0/whois";
constexpr const char* kStatusPath = "/localapi/v0/status";

std::runtime_error SystemError(const std::string& what) {
  return std::runtime_error("FakeLocalApi: " + what + ": " + std::strerror(errno));
}

bool WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, kIoTimeoutMs);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    if (!WaitFor(fd, POLLOUT)) return;  // the client stopped reading: give up on it
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// What Go's http.Error writes: the message, a newline, plain text.
std::string PlainResponse(int status, std::string_view text) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::ReasonPhrase(status)) + "\r\n";
  out += "Content-Type: text/plain; charset=utf-8\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  out += "Date: " + http::FormatHttpDate(std::chrono::system_clock::now()) + "\r\n";
  out += "Content-Length: " + std::to_string(text.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += text;
  return out;
}

// The value of `name` in a query string, percent-decoded ('+' is a space), as Go's FormValue.
std::string QueryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = std::min(query.find('&'), query.size());
    const std::string_view part = query.substr(0, amp);
    query.remove_prefix(std::min(amp + 1, query.size()));
    const std::size_t eq = part.find('=');
    if (part.substr(0, eq) != name || eq == std::string_view::npos) continue;
    std::string out;
    const std::string_view v = part.substr(eq + 1);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '+') {
        out += ' ';
      } else if (v[i] == '%' && i + 2 < v.size() &&
                 std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += v[i];
      }
    }
    return out;
  }
  return {};
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "nodekey:" and 64 hex digits, lowercased; empty when `text` is not that.
std::string NormalNodeKey(const std::string& text) {
  constexpr std::string_view kPrefix = "nodekey:";
  if (text.size() != kPrefix.size() + 64 || !text.starts_with(kPrefix)) return {};
  for (std::size_t i = kPrefix.size(); i < text.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(text[i]))) return {};
  }
  return Lower(text);
}

// A 200 JSON answer with the headers tailscaled's LocalAPI sends.
std::string JsonResponse(std::string_view body) {
  std::string out = "HTTP/1.1 200 OK\r\n";
  out += "Content-Type: application/json\r\n";
  out += "Tailscale-Cap: 113\r\n";
  out += "Tailscale-Version: 1.80.0-fake\r\n";
  out += "Date: " + http::FormatHttpDate(std::chrono::system_clock::now()) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += body;
  return out;
}

}  // namespace

void FakeLocalApi::AddNode(const std::string& node_key_text) {
  std::lock_guard lock(mu_);
  nodes_.insert(Lower(node_key_text));
}

void FakeLocalApi::RemoveNode(const std::string& node_key_text) {
  std::lock_guard lock(mu_);
  nodes_.erase(Lower(node_key_text));
}

void FakeLocalApi::SetSelf(const std::string& node_key_text) {
  std::lock_guard lock(mu_);
  self_ = Lower(node_key_text);
  nodes_.insert(self_);
}

void FakeLocalApi::SetWhoisFailure(int status, std::string body) {
  std::lock_guard lock(mu_);
  whois_failure_status_ = status;
  whois_failure_body_ = std::move(body);
}

std::string FakeLocalApi::RespondWhois(const http::RequestHead& request) {
  ++whois_requests_;
  const long long delay_ms = whois_delay_ms_.load();
  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  std::lock_guard lock(mu_);
  if (whois_failure_status_ != 0) {
    return PlainResponse(whois_failure_status_, whois_failure_body_);
  }
  const std::string addr = QueryValue(request.query, "addr");
  if (addr.empty()) return PlainResponse(400, "missing 'addr' parameter\n");
  if (!addr.starts_with("nodekey:")) return PlainResponse(404, "no match for IP:port\n");
  const std::string key = NormalNodeKey(addr);
  if (key.empty()) return PlainResponse(400, "invalid nodekey in 'addr' parameter\n");
  if (!nodes_.contains(key)) return PlainResponse(404, "no match for IP:port\n");
  // apitype.WhoIsResponse as tailscaled writes it (json.MarshalIndent with a tab).
  return JsonResponse(
      "{\n\t\"Node\": {\n\t\t\"ID\": 7,\n\t\t\"StableID\": \"nFAKE7CNTRL\",\n"
      "\t\t\"Name\": \"laptop.tailnet.ts.net.\",\n\t\t\"User\": 3,\n"
      "\t\t\"Key\": \"" +
      key +
      "\",\n\t\t\"Addresses\": [\n\t\t\t\"100.64.0.7/32\"\n\t\t]\n\t},\n"
      "\t\"UserProfile\": {\n\t\t\"ID\": 3,\n"
      "\t\t\"LoginName\": \"alice@example.com\",\n"
      "\t\t\"DisplayName\": \"Alice\"\n\t},\n\t\"CapMap\": null\n}");
}

std::string FakeLocalApi::RespondStatus() {
  ++status_requests_;
  std::lock_guard lock(mu_);
  return JsonResponse(
      "{\"Version\":\"1.80.0-fake\",\"BackendState\":\"Running\",\"Self\":{"
      "\"ID\":\"nFAKE1CNTRL\",\"PublicKey\":\"" +
      self_ + "\",\"HostName\":\"relay\"}}\n");
}

FakeLocalApi::FakeLocalApi(std::string derpmap_json, Framing framing) {
  answer_.body = std::move(derpmap_json);
  answer_.framing = framing;

  std::string dir_template = "/tmp/derpkit-localapi-XXXXXX";
  if (::mkdtemp(dir_template.data()) == nullptr) throw SystemError("mkdtemp");
  dir_ = dir_template;
  socket_path_ = dir_ + "/tailscaled.sock";

  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw SystemError("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw SystemError("bind " + socket_path_);
  }
  if (::listen(listen_fd_, 16) != 0) throw SystemError("listen");
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw SystemError("pipe2");
  thread_ = std::thread([this] { Serve(); });
}

FakeLocalApi::~FakeLocalApi() {
  if (thread_.joinable()) {
    const char byte = 0;
    (void)!::write(stop_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : {listen_fd_, stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void FakeLocalApi::SetDerpMap(std::string json, Framing framing, std::size_t chunk_bytes) {
  SetAnswer(Answer{200, std::move(json), framing, chunk_bytes});
}

void FakeLocalApi::SetAnswer(Answer answer) {
  std::lock_guard lock(mu_);
  answer_ = std::move(answer);
}

std::optional<http::RequestHead> FakeLocalApi::last_request() const {
  std::lock_guard lock(mu_);
  return last_request_;
}

void FakeLocalApi::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);  // until a client or the destructor
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    HandleConnection(fd);
    ::close(fd);
  }
}

void FakeLocalApi::HandleConnection(int fd) {
  std::string in;
  for (;;) {
    auto head = http::ParseRequestHead(AsBytes(in));
    if (head) {
      SendAll(fd, Respond(*head));
      return;
    }
    if (head.error() != http::ParseError::kIncomplete) {
      const std::string_view bad = http::ErrorResponseFor(head.error());
      SendAll(fd, bad);
      return;
    }
    if (!WaitFor(fd, POLLIN)) return;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;
    in.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string FakeLocalApi::Respond(const http::RequestHead& request) {
  ++requests_;
  Answer answer;
  {
    std::lock_guard lock(mu_);
    last_request_ = request;
    answer = answer_;
  }
  // Go's server: an HTTP/1.1 request must name a host.
  const std::string* host = request.Find("Host");
  if (host == nullptr && request.version_minor == 1) {
    return PlainResponse(400, "Bad Request: missing required Host header");
  }
  // tailscaled's ServeHTTP: the browser defence.
  if ((host != nullptr && !host->empty() && *host != kLocalApiHost) || request.Has("Origin") ||
      request.Has("Referer")) {
    return PlainResponse(403, "invalid localapi request\n");
  }
  if (request.path == kWhoisPath) return RespondWhois(request);
  if (request.path == kStatusPath) {
    bool has_self = false;
    {
      std::lock_guard lock(mu_);
      has_self = !self_.empty();
    }
    if (has_self) return RespondStatus();
  }
  if (request.path != kDerpMapPath) return PlainResponse(404, "404 page not found\n");
  ++derpmap_requests_;
  if (request.method != "GET") return PlainResponse(400, "want GET\n");
  if (answer.status != 200) return PlainResponse(answer.status, answer.body);

  std::string out = "HTTP/1.1 200 OK\r\n";
  out +=
      "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'; script-src 'none'; "
      "script-src-elem 'none'; script-src-attr 'none'\r\n";
  out += "Content-Type: application/json\r\n";
  out += "Tailscale-Cap: 113\r\n";
  out += "Tailscale-Version: 1.80.0-fake\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  out += "X-Frame-Options: DENY\r\n";
  out += "Date: " + http::FormatHttpDate(std::chrono::system_clock::now()) + "\r\n";
  out += "Connection: close\r\n";
  if (answer.framing == Framing::kContentLength) {
    out += "Content-Length: " + std::to_string(answer.body.size()) + "\r\n\r\n";
    out += answer.body;
    return out;
  }
  out += "Transfer-Encoding: chunked\r\n\r\n";
  const std::size_t step = answer.chunk_bytes == 0 ? 1 : answer.chunk_bytes;
  for (std::size_t at = 0; at < answer.body.size(); at += step) {
    const std::string_view piece = std::string_view(answer.body).substr(at, step);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out += size;
    out += piece;
    out += "\r\n";
  }
  out += "0\r\n\r\n";
  return out;
}

}  // namespace derpkit::testing
