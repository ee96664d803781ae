#include "lib/http/head.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

namespace derpkit::http {
namespace {

constexpr char ToLowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
// / "`" / "|" / "~" / DIGIT / ALPHA
constexpr bool IsTchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return IsTchar(static_cast<unsigned char>(c)); });
}

// field-value characters: VCHAR, obs-text, SP and HTAB. Everything else (CR, LF, NUL, other CTLs
// and DEL) is refused: they are how request smuggling starts.
constexpr bool IsFieldValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// request-target: visible ASCII only. Non-ASCII must be percent-encoded (RFC 3986).
constexpr bool IsTargetChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The buffer split into CRLF-terminated lines, up to the blank line or the first problem.
struct Lines {
  std::vector<std::string_view> lines;  // without their CRLF; lines[0] is the start line
  std::size_t head_size = 0;            // set when the blank line was found
  // Why splitting stopped before the blank line: kIncomplete, kHeadTooLarge, kTooManyHeaders,
  // or `start_line_error` / kBadHeaderLine for a bare LF, a stray CR or an obs-fold.
  std::optional<ParseError> stop;
};

ParseError LineError(std::size_t index, ParseError start_line_error) {
  return index == 0 ? start_line_error : ParseError::kBadHeaderLine;
}

// Splits the head into lines. Only line endings, obs-fold, the size limit and the line count are
// checked here; the callers check each complete line's syntax, in order, so that the first bad
// line decides the error and garbage is refused before the rest of the head arrives.
Lines SplitLines(std::string_view in, const Limits& limits, ParseError start_line_error) {
  Lines out;
  // Only the first max_head_bytes bytes may belong to the head.
  const std::string_view window = in.substr(0, std::min(in.size(), limits.max_head_bytes));
  std::size_t pos = 0;
  for (;;) {
    const std::size_t lf = window.find('\n', pos);
    if (lf == std::string_view::npos) {
      // A CR followed by anything but LF is already wrong; no more bytes can fix it.
      const std::size_t cr = window.find('\r', pos);
      if (cr != std::string_view::npos && cr + 1 < window.size()) {
        out.stop = LineError(out.lines.size(), start_line_error);
      } else if (in.size() >= limits.max_head_bytes) {
        // The head would need more than max_head_bytes: no point in waiting for the rest.
        out.stop = ParseError::kHeadTooLarge;
      } else {
        out.stop = ParseError::kIncomplete;
      }
      return out;
    }
    if (lf == pos || window[lf - 1] != '\r') {
      out.stop = LineError(out.lines.size(), start_line_error);  // bare LF
      return out;
    }
    const std::string_view line = window.substr(pos, lf - 1 - pos);
    pos = lf + 1;
    if (line.empty()) {
      if (out.lines.empty()) {
        out.stop = start_line_error;  // a blank line where the start line belongs
      } else {
        out.head_size = pos;
      }
      return out;
    }
    if (!out.lines.empty() && (line.front() == ' ' || line.front() == '\t')) {
      out.stop = ParseError::kBadHeaderLine;  // obs-fold (RFC 9112 §5.2)
      return out;
    }
    if (out.lines.size() > limits.max_headers) {  // lines[0] is the start line
      out.stop = ParseError::kTooManyHeaders;
      return out;
    }
    out.lines.push_back(line);
  }
}

struct FieldView {
  std::string_view name;
  std::string_view value;  // trimmed of OWS
};

Expected<FieldView, ParseError> ParseFieldLine(std::string_view line) {
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return Unexpected{ParseError::kBadHeaderLine};
  // A space before ':' fails IsToken, which is what RFC 9112 §5.1 wants: reject, don't trim.
  const std::string_view name = line.substr(0, colon);
  if (!IsToken(name)) return Unexpected{ParseError::kBadHeaderLine};
  const std::string_view value = TrimOws(line.substr(colon + 1));
  for (const char c : value) {
    if (!IsFieldValueChar(static_cast<unsigned char>(c))) {
      return Unexpected{ParseError::kBadHeaderLine};
    }
  }
  return FieldView{name, value};
}

// Checks the field lines lines[1..], then reports why splitting stopped (if it did), and only
// for a complete, valid head builds the header list.
Expected<std::vector<Header>, ParseError> FinishFieldLines(const Lines& lines) {
  for (std::size_t i = 1; i < lines.lines.size(); ++i) {
    if (auto f = ParseFieldLine(lines.lines[i]); !f) return Unexpected{f.error()};
  }
  if (lines.stop) return Unexpected{*lines.stop};
  std::vector<Header> headers;
  headers.reserve(lines.lines.size() - 1);
  for (std::size_t i = 1; i < lines.lines.size(); ++i) {
    const FieldView f = *ParseFieldLine(lines.lines[i]);
    headers.push_back(Header{std::string(f.name), std::string(f.value)});
  }
  return headers;
}

// Parses "HTTP/d.d" into the minor version. `malformed` is the error for text that is not an
// HTTP version at all; a well-formed version other than 1.0/1.1 is kBadVersion.
Expected<int, ParseError> ParseVersion(std::string_view v, ParseError malformed) {
  constexpr std::string_view kPrefix = "HTTP/";
  if (v.substr(0, kPrefix.size()) != kPrefix) return Unexpected{malformed};
  v.remove_prefix(kPrefix.size());
  if (v.size() != 3 || !IsDigit(v[0]) || v[1] != '.' || !IsDigit(v[2])) {
    return Unexpected{ParseError::kBadVersion};
  }
  if (v[0] != '1' || (v[2] != '0' && v[2] != '1')) return Unexpected{ParseError::kBadVersion};
  return v[2] - '0';
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (EqualsIgnoreCase(TrimOws(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

const std::string* FindHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

std::string_view Describe(ParseError e) {
  switch (e) {
    case ParseError::kIncomplete:
      return "HTTP head incomplete: no blank line yet";
    case ParseError::kHeadTooLarge:
      return "HTTP head exceeds the size limit without ending";
    case ParseError::kBadRequestLine:
      return "malformed HTTP request line (want \"METHOD SP target SP HTTP/1.x\" and CRLF)";
    case ParseError::kBadVersion:
      return "unsupported HTTP version (only HTTP/1.0 and HTTP/1.1)";
    case ParseError::kBadHeaderLine:
      return "malformed HTTP header line (missing ':', space before ':', obs-fold, control "
             "character or bare LF)";
    case ParseError::kTooManyHeaders:
      return "too many HTTP header lines";
    case ParseError::kBadStatusLine:
      return "malformed HTTP status line (want \"HTTP/1.x SP 3DIGIT SP reason\" and CRLF)";
  }
  return "unknown HTTP parse error";
}

namespace {

struct RequestLine {
  std::string_view method;
  std::string_view target;
  int version_minor = 1;
};

// request-line = method SP request-target SP HTTP-version, with exactly one SP each.
Expected<RequestLine, ParseError> ParseRequestLine(std::string_view line) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Unexpected{ParseError::kBadRequestLine};
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Unexpected{ParseError::kBadRequestLine};
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!IsToken(method) || target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        return IsTargetChar(static_cast<unsigned char>(c));
      })) {
    return Unexpected{ParseError::kBadRequestLine};
  }
  const auto version = ParseVersion(line.substr(sp2 + 1), ParseError::kBadRequestLine);
  if (!version) return Unexpected{version.error()};
  return RequestLine{method, target, *version};
}

struct StatusLine {
  int version_minor = 1;
  int status = 0;
  std::string_view reason;
};

// status-line = HTTP-version SP status-code SP [reason-phrase]. We also take "HTTP/1.1 200"
// without the second SP: some servers send it and nothing is ambiguous about it.
Expected<StatusLine, ParseError> ParseStatusLine(std::string_view line) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Unexpected{ParseError::kBadStatusLine};
  const auto version = ParseVersion(line.substr(0, sp1), ParseError::kBadStatusLine);
  if (!version) return Unexpected{version.error()};
  const std::string_view rest = line.substr(sp1 + 1);
  if (rest.size() < 3 || !IsDigit(rest[0]) || !IsDigit(rest[1]) || !IsDigit(rest[2]) ||
      rest[0] == '0' || (rest.size() > 3 && rest[3] != ' ')) {
    return Unexpected{ParseError::kBadStatusLine};
  }
  const std::string_view reason = rest.size() > 3 ? rest.substr(4) : std::string_view();
  for (const char c : reason) {
    if (!IsFieldValueChar(static_cast<unsigned char>(c))) {
      return Unexpected{ParseError::kBadStatusLine};
    }
  }
  const int status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  return StatusLine{*version, status, reason};
}

}  // namespace

Expected<RequestHead, ParseError> ParseRequestHead(ByteSpan in, const Limits& limits) {
  const Lines lines = SplitLines(AsText(in), limits, ParseError::kBadRequestLine);
  if (lines.lines.empty()) return Unexpected{*lines.stop};
  const auto line = ParseRequestLine(lines.lines[0]);
  if (!line) return Unexpected{line.error()};
  auto headers = FinishFieldLines(lines);
  if (!headers) return Unexpected{headers.error()};

  RequestHead head;
  head.method = std::string(line->method);
  head.target = std::string(line->target);
  const std::size_t question = line->target.find('?');
  head.path = std::string(line->target.substr(0, question));
  if (question != std::string_view::npos) {
    head.query = std::string(line->target.substr(question + 1));
  }
  head.version_minor = line->version_minor;
  head.headers = std::move(headers).value();
  head.head_size = lines.head_size;
  return head;
}

Expected<ResponseHead, ParseError> ParseResponseHead(ByteSpan in, const Limits& limits) {
  const Lines lines = SplitLines(AsText(in), limits, ParseError::kBadStatusLine);
  if (lines.lines.empty()) return Unexpected{*lines.stop};
  const auto line = ParseStatusLine(lines.lines[0]);
  if (!line) return Unexpected{line.error()};
  auto headers = FinishFieldLines(lines);
  if (!headers) return Unexpected{headers.error()};

  ResponseHead head;
  head.version_minor = line->version_minor;
  head.status = line->status;
  head.reason = std::string(line->reason);
  head.headers = std::move(headers).value();
  head.head_size = lines.head_size;
  return head;
}

std::string_view ErrorResponseFor(ParseError e) {
  // Byte for byte what Go's net/http server (conn.serve) writes for a request it cannot read.
  switch (e) {
    case ParseError::kIncomplete:
      return {};
    case ParseError::kHeadTooLarge:
    case ParseError::kTooManyHeaders:
      return "HTTP/1.1 431 Request Header Fields Too Large\r\n"
             "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
             "431 Request Header Fields Too Large";
    case ParseError::kBadVersion:
      return "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\n"
             "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
             "505 HTTP Version Not Supported: unsupported protocol version";
    case ParseError::kBadRequestLine:
    case ParseError::kBadHeaderLine:
    case ParseError::kBadStatusLine:
      break;
  }
  return "HTTP/1.1 400 Bad Request\r\n"
         "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
         "400 Bad Request";
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

namespace {

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content.
bool BodyAllowedForStatus(int status) {
  return !((status >= 100 && status <= 199) || status == 204 || status == 304);
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

void AppendResponse(std::string& out, const Response& response,
                    std::chrono::system_clock::time_point now) {
  out.append("HTTP/1.1 ");
  out.append(std::to_string(response.status));
  out.push_back(' ');
  out.append(ReasonPhrase(response.status));
  out.append("\r\n");
  for (const Header& h : response.headers) AppendField(out, h.name, h.value);

  const bool informational = response.status >= 100 && response.status <= 199;
  const bool body_allowed = BodyAllowedForStatus(response.status);
  if (!informational) {
    const auto has = [&](std::string_view name) {
      return FindHeader(response.headers, name) != nullptr;
    };
    // The order below is Go's extraHeader.Write: Date, Content-Length, Content-Type, Connection.
    if (!has("Date")) AppendField(out, "Date", FormatHttpDate(now));
    // Go sends no Content-Length for HEAD when the handler wrote nothing (derp-probe-head.resp).
    if (body_allowed && !has("Content-Length") && !(response.head_only && response.body.empty())) {
      AppendField(out, "Content-Length", std::to_string(response.body.size()));
    }
    if (body_allowed && !response.body.empty() && !has("Content-Type")) {
      AppendField(out, "Content-Type", "text/plain; charset=utf-8");
    }
    if (response.close_connection && !has("Connection")) AppendField(out, "Connection", "close");
  }
  out.append("\r\n");
  if (body_allowed && !response.head_only) out.append(response.body);
}

void AppendRequest(std::string& out, std::string_view method, std::string_view target,
                   const std::vector<Header>& headers) {
  out.append(method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n");
  for (const Header& h : headers) AppendField(out, h.name, h.value);
  out.append("\r\n");
}

std::string FormatHttpDate(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  static constexpr std::array<std::string_view, 7> kWeekdays = {"Sun", "Mon", "Tue", "Wed",
                                                                "Thu", "Fri", "Sat"};
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // Clamp so that the four-digit year below is always right (and days arithmetic can't overflow).
  const auto lo = sys_days(year(0) / January / 1);
  const auto hi = sys_days(year(9999) / December / 31) + hours(23) + minutes(59) + seconds(59);
  const auto secs =
      std::clamp(floor<seconds>(t), time_point_cast<seconds>(lo), time_point_cast<seconds>(hi));
  const sys_days day = floor<days>(secs);
  const year_month_day ymd(day);
  const hh_mm_ss hms(secs - day);

  const auto two = [](std::string& s, unsigned v) {
    s.push_back(static_cast<char>('0' + v / 10));
    s.push_back(static_cast<char>('0' + v % 10));
  };
  std::string s;
  s.reserve(29);
  s.append(kWeekdays[weekday(day).c_encoding()]);
  s.append(", ");
  two(s, static_cast<unsigned>(ymd.day()));
  s.push_back(' ');
  s.append(kMonths[static_cast<unsigned>(ymd.month()) - 1]);
  s.push_back(' ');
  const auto y = static_cast<unsigned>(static_cast<int>(ymd.year()));
  two(s, y / 100);
  two(s, y % 100);
  s.push_back(' ');
  two(s, static_cast<unsigned>(hms.hours().count()));
  s.push_back(':');
  two(s, static_cast<unsigned>(hms.minutes().count()));
  s.push_back(':');
  two(s, static_cast<unsigned>(hms.seconds().count()));
  s.append(" GMT");
  return s;
}

}  // namespace derpkit::http
