// tailscaled's LocalAPI over its unix socket (see localapi.h): connect, one GET, read the answer
// framed by Content-Length, chunked coding or the end of the stream, all under one deadline.
//
// Blocking; any thread (each call has its own socket).
#include "lib/derpmap/localapi.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <system_error>

#include "lib/derpmap/chunked.h"
#include "lib/http/head.h"
#include "lib/util/bytes.h"

namespace derpkit::localapi {
namespace {

using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

std::string ErrnoText(int err) { return std::generic_category().message(err); }

Unexpected<std::string> Fail(std::string reason) { return Unexpected(std::move(reason)); }

class Exchange {
 public:
  explicit Exchange(const GetRequest& request)
      : request_(request), deadline_(Clock::now() + request.timeout) {}

  Expected<Answer, std::string> Run() {
    const std::string& path = request_.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
      return Fail("the socket path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) +
                  " bytes long: " + path);
    }
    path.copy(addr.sun_path, path.size());
    Socket socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (socket.fd() < 0) return Fail("cannot create a unix socket: " + ErrnoText(errno));
    if (::connect(socket.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return Fail(ConnectFailure(errno));
    }
    fd_ = socket.fd();

    std::string out;
    http::AppendRequest(out, "GET", request_.target,
                        {{"Host", "local-tailscaled.sock"},
                         {"User-Agent", "derpkit/" DERPKIT_VERSION},
                         {"Connection", "close"}});
    if (auto err = SendAll(out)) return Fail(std::move(*err));
    return ReadAnswer();
  }

 private:
  std::string ConnectFailure(int err) const {
    const std::string& path = request_.socket_path;
    switch (err) {
      case ENOENT:
        return "tailscaled's socket " + path +
               " does not exist (is tailscaled running? use --socket)";
      case ECONNREFUSED:
        return "nothing is listening on " + path + " (is tailscaled running? use --socket)";
      case EACCES:
      case EPERM:
        return "permission denied on " + path + " (run as root or as tailscaled's operator)";
      case EAGAIN:
        return "tailscaled's socket " + path + " is not accepting connections (busy)";
      default:
        return "cannot connect to " + path + ": " + ErrnoText(err);
    }
  }

  int RemainingMs() const {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
  }

  // Waits until fd_ is ready for `events` or the deadline passes.
  std::optional<std::string> Wait(short events) const {
    for (;;) {
      pollfd p{fd_, events, 0};
      const int ms = RemainingMs();
      const int n = ms == 0 ? 0 : ::poll(&p, 1, ms);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return "poll failed: " + ErrnoText(errno);
      if (n == 0) {
        return "no answer from tailscaled within " + std::to_string(request_.timeout.count()) +
               " ms";
      }
      return std::nullopt;
    }
  }

  std::optional<std::string> SendAll(std::string_view data) const {
    while (!data.empty()) {
      if (auto err = Wait(POLLOUT)) return err;
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return "sending the request to tailscaled failed: " + ErrnoText(errno);
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return std::nullopt;
  }

  // Appends what the socket has to `buffer_`; returns false at end of stream.
  Expected<bool, std::string> ReadMore() {
    for (;;) {
      if (auto err = Wait(POLLIN)) return Fail(std::move(*err));
      char chunk[16384];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Fail("reading tailscaled's answer failed: " + ErrnoText(errno));
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return n > 0;
    }
  }

  Expected<Answer, std::string> ReadAnswer() {
    http::ResponseHead head;
    for (;;) {
      auto parsed = http::ParseResponseHead(AsBytes(buffer_));
      if (parsed) {
        head = std::move(*parsed);
        break;
      }
      if (parsed.error() != http::ParseError::kIncomplete) {
        return Fail("tailscaled's answer is not HTTP: " +
                    std::string(http::Describe(parsed.error())));
      }
      auto more = ReadMore();
      if (!more) return Unexpected(more.error());
      if (!*more) return Fail("tailscaled closed the connection without answering");
    }
    buffer_.erase(0, head.head_size);

    const bool ok = head.status == 200;
    const std::size_t limit = ok ? request_.max_body_bytes : kErrorBodyBytes;
    auto body = ReadBody(head, limit, /*truncate=*/!ok);
    if (!body) return Unexpected(body.error());
    Answer answer;
    answer.status = head.status;
    answer.reason = head.reason;
    answer.body = std::move(*body);
    return answer;
  }

  // Reads the body framed by `head`: chunked, Content-Length, or up to the end of the stream.
  // With `truncate` (error pages) a body over `limit` is cut there instead of refused.
  Expected<std::string, std::string> ReadBody(const http::ResponseHead& head, std::size_t limit,
                                              bool truncate) {
    const std::string too_large =
        "tailscaled's answer is larger than the limit of " + std::to_string(limit) + " bytes";
    std::string body;
    if (const std::string* te = head.Find("Transfer-Encoding")) {
      if (!http::EqualsIgnoreCase(*te, "chunked")) {
        return Fail("tailscaled's answer uses Transfer-Encoding " + *te + ", which we can't read");
      }
      derpmap::ChunkedDecoder decoder(limit);
      for (;;) {
        auto used = decoder.Feed(buffer_, body);
        buffer_.clear();
        if (!used) {
          if (used.error() == derpmap::ChunkedError::kBodyTooLarge) {
            if (truncate) return body;
            return Fail(too_large);
          }
          return Fail("tailscaled's chunked answer is malformed: " +
                      std::string(derpmap::Describe(used.error())));
        }
        if (decoder.done()) return body;
        auto more = ReadMore();
        if (!more) return Unexpected(more.error());
        if (!*more) return Fail("tailscaled closed the connection in the middle of its answer");
      }
    }
    if (const std::string* cl = head.Find("Content-Length")) {
      std::size_t length = 0;
      auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
      if (cl->empty() || ec != std::errc() || end != cl->data() + cl->size()) {
        return Fail("tailscaled's answer has a malformed Content-Length: " + *cl);
      }
      if (length > limit) {
        if (!truncate) return Fail(too_large);
        length = limit;
      }
      while (buffer_.size() < length) {
        auto more = ReadMore();
        if (!more) return Unexpected(more.error());
        if (!*more) return Fail("tailscaled closed the connection in the middle of its answer");
      }
      return buffer_.substr(0, length);
    }
    // No framing: the body ends with the connection.
    for (;;) {
      if (buffer_.size() > limit) {
        if (truncate) return buffer_.substr(0, limit);
        return Fail(too_large);
      }
      auto more = ReadMore();
      if (!more) return Unexpected(more.error());
      if (!*more) return std::move(buffer_);
    }
  }

  const GetRequest& request_;
  Clock::time_point deadline_;
  int fd_ = -1;
  std::string buffer_;  // bytes read and not yet consumed
};

}  // namespace

Expected<Answer, std::string> Get(const GetRequest& request) { return Exchange(request).Run(); }

std::string DescribeAnswer(const Answer& answer) {
  std::string text = "tailscaled answered " + std::to_string(answer.status);
  if (!answer.reason.empty()) text += " " + answer.reason;
  const auto start = answer.body.find_first_not_of(" \t\r\n");
  if (start != std::string::npos) {
    text += ": " + answer.body.substr(start, answer.body.find_first_of("\r\n", start) - start);
  }
  return text;
}

std::string QueryEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
                            (u >= '0' && u <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

}  // namespace derpkit::localapi
