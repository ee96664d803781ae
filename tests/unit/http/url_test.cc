#include "lib/http/url.h"

#include <gtest/gtest.h>

namespace derpkit::http {
namespace {

TEST(ParseUrl, ParsesDerpUrls) {
  auto a = ParseUrl("https://derp.example.com/derp");
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->tls());
  EXPECT_EQ(a->host, "derp.example.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_FALSE(a->explicit_port);
  EXPECT_EQ(a->target, "/derp");
  EXPECT_EQ(a->HostHeader(), "derp.example.com");

  auto b = ParseUrl("HTTP://127.0.0.1:3340/derp?x=1");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->scheme, "http");
  EXPECT_EQ(b->port, 3340);
  EXPECT_EQ(b->target, "/derp?x=1");
  EXPECT_EQ(b->HostHeader(), "127.0.0.1:3340");

  auto c = ParseUrl("https://[::1]:8443");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->target, "/");
  EXPECT_EQ(c->HostHeader(), "[::1]:8443");
  EXPECT_EQ(ParseUrl("http://h?q")->target, "/?q");
}

TEST(ParseUrl, RejectsWhatADerpUrlCannotBe) {
  EXPECT_EQ(ParseUrl("ftp://h/").error(), UrlError::kBadScheme);
  EXPECT_EQ(ParseUrl("derp.example.com").error(), UrlError::kBadScheme);
  EXPECT_EQ(ParseUrl("https:///derp").error(), UrlError::kEmptyHost);
  EXPECT_EQ(ParseUrl("https://[::1/derp").error(), UrlError::kBadHost);
  EXPECT_EQ(ParseUrl("https://[example.com]/").error(), UrlError::kBadHost);
  EXPECT_EQ(ParseUrl("https://[[\xff]:8/").error(), UrlError::kBadHost);  // found by url_fuzz
  EXPECT_EQ(ParseUrl("https://[1.2.3.4]/").error(), UrlError::kBadHost);
  EXPECT_EQ(ParseUrl("https://h:0/").error(), UrlError::kBadPort);
  EXPECT_EQ(ParseUrl("https://h:65536/").error(), UrlError::kBadPort);
  EXPECT_EQ(ParseUrl("https://h:/").error(), UrlError::kBadPort);
  EXPECT_EQ(ParseUrl("https://u@h/").error(), UrlError::kUnsupported);
  EXPECT_EQ(ParseUrl("https://h/#frag").error(), UrlError::kUnsupported);
  EXPECT_EQ(ParseUrl("https://h/a b").error(), UrlError::kUnsupported);
  EXPECT_EQ(Describe(UrlError::kBadPort), "URL port is not a number from 1 to 65535");
}

TEST(SchemeHostPort, AlwaysNamesThePortAndBracketsIpv6) {
  EXPECT_EQ(SchemeHostPort(*ParseUrl("https://[::1]/derp")), "https://[::1]:443");
  EXPECT_EQ(SchemeHostPort(*ParseUrl("HTTP://derp.example.com/x?y=1")),
            "http://derp.example.com:80");
  EXPECT_EQ(SchemeHostPort(*ParseUrl("http://127.0.0.1:9091")), "http://127.0.0.1:9091");
  EXPECT_EQ(SchemeHostPort(*ParseUrl("https://[fd7a:115c::1]:8443/")),
            "https://[fd7a:115c::1]:8443");
  // The Host header, unlike it, leaves a default port out.
  EXPECT_EQ(ParseUrl("https://[::1]/derp")->HostHeader(), "[::1]");
}

}  // namespace
}  // namespace derpkit::http
