// Text that goes into or comes out of an HTTP body: HTML escaping for the pages derpkit serves
// (the relay's derper-compatible pages and derp-probe's status page), and a server's error answer
// quoted in one line for an error message (the DERP map fetcher, the Pushgateway client).
//
// Pure: strings in, strings out. Thread affinity: none.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace derpkit::http {

// Go's html.EscapeString, byte for byte: & < > " ' become &amp; &lt; &gt; &#34; &#39;, so that
// pages that copy derper's keep its bytes. Safe in element text and in quoted attribute values.
std::string HtmlEscape(std::string_view text);

// The first non-blank line of `body` without its leading blanks, cut to at most `max_bytes`
// (never inside a UTF-8 sequence); "" when the body is blank.
std::string FirstLine(std::string_view body, std::size_t max_bytes);

// A non-2xx answer in words: "HTTP 404 Not Found: no such job" (the reason phrase when the status
// has one, then the body's FirstLine when it is not blank).
std::string DescribeStatus(int status, std::string_view body, std::size_t max_quoted_bytes);

}  // namespace derpkit::http
