#include "lib/http/head.h"

#include <chrono>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/http/test_files.h"

namespace derpkit::http {
namespace {

using namespace std::chrono_literals;
using namespace std::string_view_literals;
using testing::BlankDate;
using testing::HttpCaptureNames;
using testing::ReadTestdata;

Expected<RequestHead, ParseError> ParseRequest(std::string_view text, const Limits& limits = {}) {
  return ParseRequestHead(AsBytes(text), limits);
}

Expected<ResponseHead, ParseError> ParseResponse(std::string_view text, const Limits& limits = {}) {
  return ParseResponseHead(AsBytes(text), limits);
}

ParseError RequestError(std::string_view text, const Limits& limits = {}) {
  const auto head = ParseRequest(text, limits);
  EXPECT_FALSE(head.has_value()) << "parsed: " << text;
  return head.has_value() ? ParseError::kIncomplete : head.error();
}

ParseError ResponseError(std::string_view text, const Limits& limits = {}) {
  const auto head = ParseResponse(text, limits);
  EXPECT_FALSE(head.has_value()) << "parsed: " << text;
  return head.has_value() ? ParseError::kIncomplete : head.error();
}

// 2026-11-21 23:02:05 UTC, the Date of several captured responses.
std::chrono::system_clock::time_point CaptureTime() {
  using namespace std::chrono;
  return sys_days(year(2026) / November / 21) + 23h + 2min + 5s;
}

// --- Request heads --------------------------------------------------------------------------

TEST(ParseRequestHead, ParsesEveryCapturedRequest) {
  const std::vector<std::string> names = HttpCaptureNames();
  ASSERT_EQ(names.size(), 19u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string bytes = ReadTestdata("http/" + name + ".req");
    const auto head = ParseRequest(bytes);
    ASSERT_TRUE(head.has_value()) << Describe(head.error());
    EXPECT_EQ(head->head_size, bytes.size());
    EXPECT_EQ(head->version_minor, 1);
    EXPECT_TRUE(head->Has("Host"));
    EXPECT_EQ(head->path.front(), '/');
  }
}

TEST(ParseRequestHead, ParsesFieldsOfCapturedChallengeRequest) {
  const auto head = ParseRequest(ReadTestdata("http/generate-204-challenge.req"));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->method, "GET");
  EXPECT_EQ(head->target, "/generate_204");
  EXPECT_EQ(head->path, "/generate_204");
  EXPECT_EQ(head->query, "");
  ASSERT_EQ(head->headers.size(), 3u);
  EXPECT_EQ(head->headers[0].name, "Host");
  EXPECT_EQ(head->headers[0].value, "127.0.0.1:13340");
  EXPECT_EQ(head->headers[1].name, "X-Tailscale-Challenge");
  EXPECT_EQ(head->headers[1].value, "ts_127.0.0.1");
  EXPECT_EQ(head->headers[2].name, "Connection");
  EXPECT_EQ(head->headers[2].value, "close");
}

TEST(ParseRequestHead, LeavesDerpFramesAfterTheHeadToTheCaller) {
  // Fast start: the ClientInfo frame arrives in the same segment as the request head.
  const std::string bytes = ReadTestdata("derp/faststart/F.c2s.bin");
  const auto head = ParseRequest(bytes);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->head_size, 127u);
  EXPECT_EQ(bytes[head->head_size], '\x02');  // FrameType ClientInfo
  ASSERT_NE(head->Find("derp-fast-start"), nullptr);
  EXPECT_EQ(*head->Find("derp-fast-start"), "1");
}

TEST(ParseRequestHead, ParsesCapturedWebSocketUpgrade) {
  const auto head = ParseRequest(ReadTestdata("derp/websocket/W.c2s.bin"));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->head_size, 345u);
  ASSERT_NE(head->Find("Sec-WebSocket-Key"), nullptr);
  EXPECT_EQ(*head->Find("Sec-WebSocket-Key"), "5/dUm2Fi2KDkTBeHdvrgUg==");
  EXPECT_EQ(*head->Find("sec-websocket-extensions"),
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover");
}

TEST(ParseRequestHead, SplitsPathAndQueryAtFirstQuestionMark) {
  const auto head = ParseRequest("GET /generate_204?t=1?x HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->target, "/generate_204?t=1?x");
  EXPECT_EQ(head->path, "/generate_204");
  EXPECT_EQ(head->query, "t=1?x");
}

TEST(ParseRequestHead, TrimsOptionalWhitespaceAroundValues) {
  const auto head =
      ParseRequest("GET / HTTP/1.1\r\nHost:\t a b \t\r\nX-Empty:\r\nX-Sp:   \r\n\r\n");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(*head->Find("Host"), "a b");
  EXPECT_EQ(*head->Find("X-Empty"), "");
  EXPECT_EQ(*head->Find("X-Sp"), "");
}

TEST(ParseRequestHead, FindIsCaseInsensitiveAndReturnsFirstValue) {
  const auto head = ParseRequest("GET / HTTP/1.1\r\nupgrade: one\r\nUPGRADE: two\r\n\r\n");
  ASSERT_TRUE(head.has_value());
  ASSERT_NE(head->Find("Upgrade"), nullptr);
  EXPECT_EQ(*head->Find("Upgrade"), "one");
  EXPECT_TRUE(head->Has("uPgRaDe"));
  EXPECT_FALSE(head->Has("Upgrad"));
  EXPECT_EQ(head->Find("Host"), nullptr);
}

TEST(ParseRequestHead, AcceptsHttp10AndHttp11) {
  const auto v10 = ParseRequest("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(v10.has_value());
  EXPECT_EQ(v10->version_minor, 0);
  EXPECT_TRUE(v10->headers.empty());
  const auto v11 = ParseRequest("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(v11.has_value());
  EXPECT_EQ(v11->version_minor, 1);
}

TEST(ParseRequestHead, AcceptsNonOriginTargetsAndObsTextValues) {
  EXPECT_TRUE(ParseRequest("CONNECT derp.example:443 HTTP/1.1\r\n\r\n").has_value());
  EXPECT_TRUE(ParseRequest("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").has_value());
  EXPECT_TRUE(ParseRequest("GET http://a/derp HTTP/1.1\r\nHost: a\r\n\r\n").has_value());
  EXPECT_TRUE(ParseRequest("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n").has_value());
}

TEST(ParseRequestHead, ReportsIncompleteUntilTheBlankLine) {
  const std::string full = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_EQ(RequestError(full.substr(0, n)), ParseError::kIncomplete);
  }
  EXPECT_TRUE(ParseRequest(full).has_value());
}

TEST(ParseRequestHead, RejectsHeadLargerThanLimitBeforeItEnds) {
  const Limits limits{.max_head_bytes = 64, .max_headers = 100};
  const std::string start = "GET / HTTP/1.1\r\nX: " + std::string(40, 'a');
  EXPECT_EQ(RequestError(start, limits), ParseError::kIncomplete);
  // No blank line within the first 64 bytes: the head can only be bigger than the limit.
  EXPECT_EQ(RequestError(start + std::string(64, 'a'), limits), ParseError::kHeadTooLarge);
  // Also without a single line end (a peer sending one endless line).
  EXPECT_EQ(RequestError(std::string(64, 'G'), limits), ParseError::kHeadTooLarge);
  EXPECT_EQ(RequestError(std::string(63, 'G'), limits), ParseError::kIncomplete);
}

TEST(ParseRequestHead, AcceptsHeadOfExactlyTheLimit) {
  const std::string head = "GET / HTTP/1.1\r\nX: aaaa\r\n\r\n";
  const Limits exact{.max_head_bytes = head.size(), .max_headers = 100};
  ASSERT_TRUE(ParseRequest(head + "trailing frame bytes", exact).has_value());
  const Limits one_less{.max_head_bytes = head.size() - 1, .max_headers = 100};
  EXPECT_EQ(RequestError(head, one_less), ParseError::kHeadTooLarge);
}

TEST(ParseRequestHead, DefaultLimitIs16KiB) {
  const std::string prefix = "GET / HTTP/1.1\r\nX: ";
  const std::string fits = prefix + std::string(16 * 1024 - prefix.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), 16u * 1024);
  EXPECT_TRUE(ParseRequest(fits).has_value());
  const std::string over = prefix + std::string(16 * 1024 - prefix.size() - 3, 'a') + "\r\n\r\n";
  EXPECT_EQ(RequestError(over), ParseError::kHeadTooLarge);
}

TEST(ParseRequestHead, RejectsRequestLinesWithWrongSpacing) {
  EXPECT_EQ(RequestError("GET  / HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET /  HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1 \r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError(" GET / HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET\t/ HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1 extra\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET /\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET\r\n\r\n"), ParseError::kBadRequestLine);
}

TEST(ParseRequestHead, RejectsBadMethodOrTarget) {
  EXPECT_EQ(RequestError("G(T / HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET /\x7f HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET /\0 HTTP/1.1\r\n\r\n"sv), ParseError::kBadRequestLine);
}

TEST(ParseRequestHead, RejectsMissingOrForeignVersionToken) {
  EXPECT_EQ(RequestError("GET / FTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET / http/1.1\r\n\r\n"), ParseError::kBadRequestLine);
}

TEST(ParseRequestHead, RejectsVersionsOtherThan10And11) {
  EXPECT_EQ(RequestError("GET / HTTP/2.0\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/1.2\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/0.9\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/1.10\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/11\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/\r\n\r\n"), ParseError::kBadVersion);
}

TEST(ParseRequestHead, RejectsBareLineFeeds) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\n\n"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\n\n"), ParseError::kBadHeaderLine);
  // Refused on sight, without waiting for the rest of the head.
  EXPECT_EQ(RequestError("GET / HTTP/1.1\nHost"), ParseError::kBadRequestLine);
}

TEST(ParseRequestHead, RejectsStrayCarriageReturns) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\rX"), ParseError::kBadRequestLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: b\rc"), ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, RejectsLeadingBlankLine) {
  EXPECT_EQ(RequestError("\r\nGET / HTTP/1.1\r\n\r\n"), ParseError::kBadRequestLine);
}

TEST(ParseRequestHead, RejectsHeaderLineWithoutColon) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost a\r\n\r\n"), ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, RejectsWhitespaceBeforeColon) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, RejectsObsFold) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n"),
            ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, RejectsBadFieldNamesAndValues) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\n: a\r\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nX(y): a\r\n\r\n"), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"sv), ParseError::kBadHeaderLine);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, ReportsBadHeaderLineBeforeTheHeadIsComplete) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nno colon here\r\nHost: a"), ParseError::kBadHeaderLine);
}

TEST(ParseRequestHead, RejectsMoreThanMaxHeaders) {
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  const auto at_limit = ParseRequest(head + "\r\n");
  ASSERT_TRUE(at_limit.has_value());
  EXPECT_EQ(at_limit->headers.size(), 100u);
  EXPECT_EQ(RequestError(head + "X-100: v\r\n\r\n"), ParseError::kTooManyHeaders);
  // Counted as lines arrive: a flood of tiny fields fails without waiting for the end.
  EXPECT_EQ(RequestError(head + "X-100: v\r\nX-101"), ParseError::kTooManyHeaders);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", {.max_headers = 1}),
            ParseError::kTooManyHeaders);
}

TEST(ParseRequestHead, ReportsFirstBadLineInOrder) {
  // The request line is checked before field lines, and a bad field before the count limit.
  EXPECT_EQ(RequestError("GET / HTTP/2.0\r\nbad\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nbad\r\nB: 2\r\n\r\n", {.max_headers = 1}),
            ParseError::kBadHeaderLine);
}

// --- Response heads -------------------------------------------------------------------------

TEST(ParseResponseHead, ParsesEveryCapturedResponse) {
  for (const std::string& name : HttpCaptureNames()) {
    SCOPED_TRACE(name);
    const std::string bytes = ReadTestdata("http/" + name + ".resp");
    const auto head = ParseResponse(bytes);
    ASSERT_TRUE(head.has_value()) << Describe(head.error());
    EXPECT_EQ(head->version_minor, 1);
    EXPECT_EQ(head->reason, ReasonPhrase(head->status));
    if (const std::string* length = head->Find("Content-Length")) {
      EXPECT_EQ(std::to_string(bytes.size() - head->head_size), *length);
    }
  }
}

TEST(ParseResponseHead, ParsesCapturedDerpSwitchingProtocols) {
  const std::string bytes = ReadTestdata("derp/plain/A.s2c.bin");
  const auto head = ParseResponse(bytes);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 101);
  EXPECT_EQ(head->reason, "Switching Protocols");
  EXPECT_EQ(head->head_size, 172u);
  EXPECT_EQ(*head->Find("derp-public-key"),
            "e4057ef8d0f8dcf8eab5617c8ba4ee0e5294e87fd976eb016ab6f97d890e1534");
  EXPECT_EQ(bytes[head->head_size], '\x01');  // the ServerKey frame follows in the same read
}

TEST(ParseResponseHead, AcceptsEmptyOrMissingReason) {
  const auto empty = ParseResponse("HTTP/1.1 204 \r\n\r\n");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->status, 204);
  EXPECT_EQ(empty->reason, "");
  const auto missing = ParseResponse("HTTP/1.0 599\r\n\r\n");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 599);
  EXPECT_EQ(missing->version_minor, 0);
}

TEST(ParseResponseHead, RejectsMalformedStatusLines) {
  EXPECT_EQ(ResponseError("HTTP/1.1 20 OK\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 2000 OK\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 200OK\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 099 Low\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1  200 OK\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("ICY 200 OK\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 O\x01K\r\n\r\n"), ParseError::kBadStatusLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\n\n"), ParseError::kBadStatusLine);
}

TEST(ParseResponseHead, SharesVersionHeaderAndLimitChecksWithRequests) {
  EXPECT_EQ(ResponseError("HTTP/2.0 200 OK\r\n\r\n"), ParseError::kBadVersion);
  EXPECT_EQ(ResponseError("HTTP/1.1 101 Switching Protocols\r\nUpgrade DERP\r\n\r\n"),
            ParseError::kBadHeaderLine);
  EXPECT_EQ(ResponseError("HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"),
            ParseError::kIncomplete);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", {.max_headers = 1}),
            ParseError::kTooManyHeaders);
  EXPECT_EQ(ResponseError(std::string(100, 'H'), {.max_head_bytes = 100}),
            ParseError::kHeadTooLarge);
}

// --- Errors -----------------------------------------------------------------------------------

TEST(Describe, GivesEveryParseErrorItsOwnMessage) {
  const ParseError all[] = {ParseError::kIncomplete,     ParseError::kHeadTooLarge,
                            ParseError::kBadRequestLine, ParseError::kBadVersion,
                            ParseError::kBadHeaderLine,  ParseError::kTooManyHeaders,
                            ParseError::kBadStatusLine};
  std::set<std::string_view> seen;
  for (const ParseError e : all) {
    EXPECT_FALSE(Describe(e).empty());
    EXPECT_TRUE(seen.insert(Describe(e)).second) << Describe(e);
  }
}

TEST(ErrorResponseFor, MatchesGoServerBytes) {
  EXPECT_EQ(ErrorResponseFor(ParseError::kIncomplete), "");
  EXPECT_EQ(ErrorResponseFor(ParseError::kBadRequestLine),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Connection: close\r\n\r\n400 Bad Request");
  EXPECT_EQ(ErrorResponseFor(ParseError::kBadHeaderLine),
            ErrorResponseFor(ParseError::kBadRequestLine));
  EXPECT_EQ(ErrorResponseFor(ParseError::kBadStatusLine),
            ErrorResponseFor(ParseError::kBadRequestLine));
  EXPECT_EQ(ErrorResponseFor(ParseError::kHeadTooLarge),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large");
  EXPECT_EQ(ErrorResponseFor(ParseError::kTooManyHeaders),
            ErrorResponseFor(ParseError::kHeadTooLarge));
  EXPECT_EQ(ErrorResponseFor(ParseError::kBadVersion),
            "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
            "505 HTTP Version Not Supported: unsupported protocol version");
}

// --- Writer ---------------------------------------------------------------------------------

std::string Write(const Response& r) {
  std::string out;
  AppendResponse(out, r, CaptureTime());
  return out;
}

TEST(AppendResponse, WritesGoOrderAfterCallerHeaders) {
  Response r;
  r.status = 426;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"},
               {"X-Content-Type-Options", "nosniff"}};
  r.body = "DERP requires connection upgrade\n";
  r.close_connection = true;
  EXPECT_EQ(Write(r),
            "HTTP/1.1 426 Upgrade Required\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Date: Sat, 21 Nov 2026 23:02:05 GMT\r\n"
            "Content-Length: 33\r\n"
            "Connection: close\r\n"
            "\r\n"
            "DERP requires connection upgrade\n");
}

TEST(AppendResponse, AddsTextPlainAfterContentLengthForUntypedBody) {
  Response r;
  r.body = "derp.Server ConsistencyCheck okay";
  r.close_connection = true;
  // Byte for byte the captured /debug/check response (its Date is 23:02:06).
  std::string expected = ReadTestdata("http/debug-check.resp");
  EXPECT_EQ(BlankDate(Write(r)), BlankDate(expected));
}

TEST(AppendResponse, WritesContentLengthZeroForEmptyGetBody) {
  Response r;
  EXPECT_EQ(Write(r),
            "HTTP/1.1 200 OK\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n"
            "Content-Length: 0\r\n\r\n");
}

TEST(AppendResponse, HeadWritesLengthOfBodyButNotTheBody) {
  Response r;
  r.body = "hello";
  r.head_only = true;
  EXPECT_EQ(Write(r),
            "HTTP/1.1 200 OK\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n"
            "Content-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
}

TEST(AppendResponse, HeadWithEmptyBodyHasNoContentLength) {
  Response r;
  r.head_only = true;
  EXPECT_EQ(Write(r), "HTTP/1.1 200 OK\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n\r\n");
}

TEST(AppendResponse, NoContentHasNoLengthTypeOrBody) {
  Response r;
  r.status = 204;
  r.body = "dropped";
  EXPECT_EQ(Write(r), "HTTP/1.1 204 No Content\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n\r\n");
  r.status = 304;
  EXPECT_EQ(Write(r), "HTTP/1.1 304 Not Modified\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n\r\n");
}

TEST(AppendResponse, InformationalGetsNoGeneratedFields) {
  Response r;
  r.status = 101;
  r.headers = {{"Upgrade", "DERP"}, {"Connection", "Upgrade"}};
  r.close_connection = true;
  EXPECT_EQ(Write(r),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n");
}

TEST(AppendResponse, KeepsCallerDateLengthTypeAndConnection) {
  Response r;
  r.headers = {{"Connection", "keep-alive"},
               {"content-length", "3"},
               {"Content-Type", "application/json"},
               {"date", "x"}};
  r.body = "{}\n";
  r.close_connection = true;
  EXPECT_EQ(Write(r),
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\ncontent-length: 3\r\n"
            "Content-Type: application/json\r\ndate: x\r\n\r\n{}\n");
}

TEST(AppendResponse, AppendsToExistingOutput) {
  std::string out = "prefix";
  Response r;
  r.status = 204;
  AppendResponse(out, r, CaptureTime());
  EXPECT_EQ(out, "prefixHTTP/1.1 204 No Content\r\nDate: Sat, 21 Nov 2026 23:02:05 GMT\r\n\r\n");
}

TEST(AppendResponse, WritesEmptyReasonForUnknownStatus) {
  Response r;
  r.status = 299;
  EXPECT_EQ(Write(r).substr(0, 15), "HTTP/1.1 299 \r\n");
}

TEST(ReasonPhrase, MatchesRfc9110ForStatusesWeSend) {
  EXPECT_EQ(ReasonPhrase(101), "Switching Protocols");
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(204), "No Content");
  EXPECT_EQ(ReasonPhrase(302), "Found");
  EXPECT_EQ(ReasonPhrase(400), "Bad Request");
  EXPECT_EQ(ReasonPhrase(403), "Forbidden");
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(405), "Method Not Allowed");
  EXPECT_EQ(ReasonPhrase(426), "Upgrade Required");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(500), "Internal Server Error");
  EXPECT_EQ(ReasonPhrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(ReasonPhrase(299), "");
}

TEST(AppendRequest, ReproducesCapturedDerpUpgradeRequest) {
  std::string out;
  AppendRequest(out, "GET", "/derp",
                {{"Host", "127.0.0.1:41687"},
                 {"User-Agent", "Go-http-client/1.1"},
                 {"Connection", "Upgrade"},
                 {"Upgrade", "DERP"}});
  EXPECT_EQ(out, ReadTestdata("derp/plain/A.c2s.bin").substr(0, 113));
}

TEST(AppendRequest, ReproducesCapturedFastStartRequest) {
  std::string out;
  AppendRequest(out, "GET", "/derp",
                {{"Host", "localhost"},
                 {"User-Agent", "Go-http-client/1.1"},
                 {"Connection", "Upgrade"},
                 {"Derp-Fast-Start", "1"},
                 {"Upgrade", "DERP"}});
  EXPECT_EQ(out, ReadTestdata("derp/faststart/F.c2s.bin").substr(0, 127));
}

TEST(AppendRequest, RoundTripsThroughParser) {
  std::string out;
  AppendRequest(out, "HEAD", "/derp/probe?x=1", {{"Host", "a"}, {"X-Empty", ""}});
  const auto head = ParseRequest(out);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->method, "HEAD");
  EXPECT_EQ(head->path, "/derp/probe");
  EXPECT_EQ(head->query, "x=1");
  EXPECT_EQ(head->head_size, out.size());
  EXPECT_EQ(*head->Find("X-Empty"), "");
}

TEST(FormatHttpDate, FormatsCapturedDate) {
  EXPECT_EQ(FormatHttpDate(CaptureTime()), "Sat, 21 Nov 2026 23:02:05 GMT");
  EXPECT_EQ(FormatHttpDate(CaptureTime() + 999ms), "Sat, 21 Nov 2026 23:02:05 GMT");
}

TEST(FormatHttpDate, FormatsEpochLeapDayAndBeforeEpoch) {
  using namespace std::chrono;
  EXPECT_EQ(FormatHttpDate(system_clock::time_point{}), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(sys_days(year(2000) / February / 29) + 9h + 8min + 7s),
            "Tue, 29 Feb 2000 09:08:07 GMT");
  EXPECT_EQ(FormatHttpDate(system_clock::time_point{} - 1ms), "Wed, 31 Dec 1969 23:59:59 GMT");
}

TEST(FormatHttpDate, FormatsTheWholeRangeOfTheClock) {
  using namespace std::chrono;
  const std::string earliest = FormatHttpDate(system_clock::time_point::min());
  const std::string latest = FormatHttpDate(system_clock::time_point::max());
  EXPECT_EQ(earliest.size(), 29u);
  EXPECT_EQ(latest.size(), 29u);
  EXPECT_LT(earliest.substr(12, 4), "1970");
  EXPECT_GT(latest.substr(12, 4), "2100");
}

TEST(HasToken, MatchesCommaSeparatedElementsIgnoringCase) {
  EXPECT_TRUE(HasToken("close", "close"));
  EXPECT_TRUE(HasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(HasToken(" Upgrade ,x", "upgrade"));
  EXPECT_FALSE(HasToken("upgrades", "upgrade"));
  EXPECT_FALSE(HasToken("", "close"));
  EXPECT_FALSE(HasToken("keep-alive", "close"));
}

}  // namespace
}  // namespace derpkit::http
