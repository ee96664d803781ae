// HTTP/1.1 message heads: a strict, bounded parser for request and response heads, and the writer
// for the few responses and requests derpkit sends. Pure: no I/O, no clock (callers pass `now`).
//
// The relay only ever needs the head: DERP hijacks the connection after it, and every other
// endpoint answers without reading a body. So the parser stops at the blank line and reports how
// many bytes the head took (`head_size`); whatever follows belongs to the caller (for DERP with
// fast start, the ClientInfo frame is already in that read-ahead).
//
// Strictness (RFC 9112 with the lenient parts removed, because every legitimate peer of ours is a
// program): CRLF line endings only, exactly one SP between request-line parts, method and field
// names are RFC 9110 tokens, no whitespace between a field name and ':', no obs-fold, no control
// characters in targets or values, and only HTTP/1.0 and HTTP/1.1.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::http {

struct Header {
  std::string name;
  std::string value;
};

// Returns the first value of the header `name` (ASCII case-insensitive); nullptr when absent.
// The pointer aliases `headers` and is valid while it is unchanged.
const std::string* FindHeader(const std::vector<Header>& headers, std::string_view name);

struct RequestHead {
  std::string method;
  std::string target;           // the request-target exactly as sent ("/derp?x=1", "host:443", "*")
  std::string path;             // target before the first '?'
  std::string query;            // target after the first '?', without it; empty when there is none
  int version_minor = 1;        // HTTP/1.<version_minor>: 0 or 1
  std::vector<Header> headers;  // in arrival order; names as sent, values trimmed of OWS
  std::size_t head_size = 0;    // bytes consumed, including the final CRLF CRLF

  // Case-insensitive lookup; the first value; nullptr when absent.
  const std::string* Find(std::string_view name) const { return FindHeader(headers, name); }
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
};

struct ResponseHead {
  int version_minor = 1;
  int status = 0;      // three digits, 100..999 as sent
  std::string reason;  // may be empty
  std::vector<Header> headers;
  std::size_t head_size = 0;  // bytes consumed, including the final CRLF CRLF

  const std::string* Find(std::string_view name) const { return FindHeader(headers, name); }
};

struct Limits {
  std::size_t max_head_bytes = 16 * 1024;  // the whole head, request line to blank line
  std::size_t max_headers = 100;
};

enum class ParseError {
  kIncomplete,      // no blank line yet and still under max_head_bytes: read more, call again
  kHeadTooLarge,    // more than max_head_bytes without a complete head: answer 431 and close
  kBadRequestLine,  // request line is not "METHOD SP target SP HTTP/d.d" (or a bare LF)
  kBadVersion,      // well-formed "HTTP/..." version other than HTTP/1.0 or HTTP/1.1
  kBadHeaderLine,   // field line malformed: no ':', space before ':', obs-fold, CTL, bare LF
  kTooManyHeaders,  // more than max_headers field lines
  kBadStatusLine,   // response status line is not "HTTP/d.d SP 3DIGIT [SP reason]"
};

// Returns a one-line human description of `e`.
std::string_view Describe(ParseError e);

// Parses the request head at the front of `in`. Never reads past the first blank line and
// never looks at more than limits.max_head_bytes. Errors on complete lines are reported as soon
// as those lines are buffered, so a peer sending garbage is refused without waiting for more.
Expected<RequestHead, ParseError> ParseRequestHead(ByteSpan in, const Limits& limits = {});

// Parses the response head at the front of `in` (the DERP client reading the server's 101).
Expected<ResponseHead, ParseError> ParseResponseHead(ByteSpan in, const Limits& limits = {});

// Returns the exact bytes Go's net/http server writes before closing when it cannot parse a
// request ("HTTP/1.1 400 Bad Request\r\n...400 Bad Request"; 431 for an oversized head or too
// many fields, 505 for an unsupported version); empty for kIncomplete, which needs no answer.
std::string_view ErrorResponseFor(ParseError e);

struct Response {
  int status = 200;
  // Written first, in this order. Go's net/http writes handler headers sorted by canonical name,
  // so callers that want derper's exact bytes list them sorted (relay/http_routes.cc does).
  std::vector<Header> headers;
  std::string body;
  // A response to HEAD: headers as for GET (Content-Length of `body` when it is non-empty, as Go
  // does), but the body is not written. With an empty body no Content-Length is written, which
  // is what derper sends for HEAD /derp/probe.
  bool head_only = false;
  // The connection closes after this response: "Connection: close" is appended last unless
  // `headers` already has a Connection field (Go's server does the same when the request asked
  // for close). Set by the router; callers must then actually close.
  bool close_connection = false;
};

// Returns the RFC 9110 reason phrase ("OK", "Switching Protocols", ...); "" for unknown codes.
std::string_view ReasonPhrase(int status);

// Appends "HTTP/1.1 <status> <reason>\r\n", the headers, the generated fields, "\r\n" and the
// body. Generated fields follow Go's net/http order after the caller's headers: Date (from `now`,
// unless present), Content-Length (unless present; only for statuses that allow a body, i.e.
// not 1xx/204/304), Content-Type "text/plain; charset=utf-8" (non-empty body without one), and
// Connection: close (see Response::close_connection). 1xx responses get none of these: derper
// writes its 101 by hand and the captured WebSocket 101 has no Date either. Bodies of statuses
// that forbid one are dropped.
void AppendResponse(std::string& out, const Response& response,
                    std::chrono::system_clock::time_point now);

// Appends "<method> <target> HTTP/1.1\r\n", "<name>: <value>\r\n" per header in the given order,
// and "\r\n" (the DERP client's upgrade request). The inputs must already be valid: method and
// names tokens, target and values free of CR/LF; nothing is checked or escaped here.
void AppendRequest(std::string& out, std::string_view method, std::string_view target,
                   const std::vector<Header>& headers);

// Returns the RFC 9110 IMF-fixdate for `t` in UTC, e.g. "Sat, 21 Nov 2026 23:02:05 GMT".
// Sub-second parts are truncated; years outside 0..9999 are clamped to that range.
std::string FormatHttpDate(std::chrono::system_clock::time_point t);

// True when `a` and `b` are equal ignoring ASCII case (field names, Upgrade tokens).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// True when the comma-separated field value `value` has the element `token` (ASCII
// case-insensitive, OWS around elements ignored): HasToken("keep-alive, Upgrade", "upgrade").
bool HasToken(std::string_view value, std::string_view token);

}  // namespace derpkit::http
