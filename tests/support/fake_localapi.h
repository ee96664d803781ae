// A stand-in for tailscaled's LocalAPI in tests: a real HTTP/1.1 server on a unix socket in a
// fresh temporary directory, answering GET /localapi/v0/derpmap the way tailscaled does, and
// whois by node key and status (for derp-relay's --verify-clients) when a test sets nodes up.
//
// What it copies from tailscaled (ipn/localapi): a request whose Host is not
// "local-tailscaled.sock" (or empty), or that has an Origin or Referer header, gets 403 "invalid
// localapi request"; /localapi/v0/derpmap answers only GET (400 "want GET" otherwise) with
// Content-Type: application/json and the Tailscale-Version / security headers; unknown paths get
// 404. Like Go's server it frames the body with Content-Length or, when asked, chunked transfer
// coding (Go chunks bodies it has not buffered whole). Each connection carries one exchange and
// is closed after the answer.
//
// Threads: the server runs on its own thread from the constructor to the destructor, which stops
// it, joins it, and removes the socket and the directory. Every public method may be called from
// any thread.
//
//   FakeLocalApi api(R"({"Regions": {...}})");
//   LoadOptions options;
//   options.socket_path = api.socket_path();
//   auto map = LoadMap({"local"}, options);
//   EXPECT_EQ(api.derpmap_requests(), 1);
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "lib/http/head.h"

namespace derpkit::testing {

class FakeLocalApi {
 public:
  enum class Framing {
    kContentLength,  // "Content-Length: N", the body in one piece
    kChunked,        // "Transfer-Encoding: chunked", chunks of chunk_bytes
  };

  struct Answer {
    int status = 200;
    std::string
        body;  // for 200: the DERP map JSON ("null\n" is what an unconfigured daemon serves)
    Framing framing = Framing::kContentLength;
    std::size_t chunk_bytes = 1024;
  };

  // Serves `derpmap_json` (framed as asked) from a socket in a new temporary directory. Throws
  // std::runtime_error when the socket can't be created.
  explicit FakeLocalApi(std::string derpmap_json = "null\n",
                        Framing framing = Framing::kContentLength);
  ~FakeLocalApi();
  FakeLocalApi(const FakeLocalApi&) = delete;
  FakeLocalApi& operator=(const FakeLocalApi&) = delete;

  // The unix socket to pass as --socket / LoadOptions::socket_path.
  const std::string& socket_path() const { return socket_path_; }

  // Replaces what later GET /localapi/v0/derpmap requests get: a 200 with a DERP map, or any
  // status (e.g. 403 with "access denied\n", as tailscaled's permission checks answer).
  void SetDerpMap(std::string json, Framing framing = Framing::kContentLength,
                  std::size_t chunk_bytes = 1024);
  void SetAnswer(Answer answer);

  // Requests with a complete head, on any path; those that reached the derpmap handler.
  int requests() const { return requests_.load(); }
  int derpmap_requests() const { return derpmap_requests_.load(); }

  // The tailnet as tailscaled sees it, for derp-relay's client verification (ipn/localapi
  // serveWhoIs): GET /localapi/v0/whois?addr=nodekey:<hex> (percent-encoded or not) answers 200
  // with a WhoIsResponse for a node added here, 404 "no match for IP:port" otherwise, 400 for a
  // malformed key. GET /localapi/v0/status?peers=false answers {"Self": {"PublicKey": ...}} once
  // SetSelf was called (404 before, as for any path the map tests do not expect).
  void AddNode(const std::string& node_key_text);
  void RemoveNode(const std::string& node_key_text);
  void SetSelf(const std::string& node_key_text);
  // A slow daemon: every whois answer is written after this delay.
  void SetWhoisDelay(std::chrono::milliseconds delay) { whois_delay_ms_ = delay.count(); }
  // Non-zero: every whois gets this status and body instead (e.g. 403 "whois access denied").
  void SetWhoisFailure(int status, std::string body);
  int whois_requests() const { return whois_requests_.load(); }
  int status_requests() const { return status_requests_.load(); }

  // The head of the most recent request, as the server parsed it.
  std::optional<http::RequestHead> last_request() const;

 private:
  void Serve();
  void HandleConnection(int fd);
  std::string Respond(const http::RequestHead& request);
  std::string RespondWhois(const http::RequestHead& request);
  std::string RespondStatus();

  std::string dir_;
  std::string socket_path_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};  // the destructor writes to [1] to end Serve()
  std::thread thread_;

  mutable std::mutex mu_;  // guards answer_, last_request_ and the tailnet below
  Answer answer_;
  std::optional<http::RequestHead> last_request_;
  std::atomic<int> requests_{0};
  std::atomic<int> derpmap_requests_{0};
  std::set<std::string> nodes_;  // lowercase "nodekey:<hex>"
  std::string self_;
  int whois_failure_status_ = 0;
  std::string whois_failure_body_;
  std::atomic<long long> whois_delay_ms_{0};
  std::atomic<int> whois_requests_{0};
  std::atomic<int> status_requests_{0};
};

}  // namespace derpkit::testing
