#include "lib/util/netaddr.h"

#include <gtest/gtest.h>

namespace derpkit::netaddr {
namespace {

IpAddress Ip(std::string_view s) {
  auto ip = ParseIp(s);
  EXPECT_TRUE(ip.has_value()) << s;
  return ip.value_or(IpAddress{});
}

TEST(ParseIp, ParsesBothFamiliesAndFormatsCanonically) {
  EXPECT_EQ(Ip("192.0.2.1").ToString(), "192.0.2.1");
  EXPECT_TRUE(Ip("192.0.2.1").is_v4());
  EXPECT_EQ(Ip("2001:DB8:0:0:0:0:0:1").ToString(), "2001:db8::1");
  EXPECT_EQ(Ip("::ffff:127.0.0.1").Unmap(), Ip("127.0.0.1"));
  EXPECT_TRUE(Ip("::ffff:127.0.0.1").IsLoopback());
  EXPECT_TRUE(Ip("::1").IsLoopback());
  EXPECT_FALSE(Ip("128.0.0.1").IsLoopback());
  EXPECT_TRUE(Ip("0.0.0.0").IsUnspecified());
  EXPECT_EQ(Ip("192.0.2.1").As16(), Ip("::ffff:192.0.2.1").raw());
}

TEST(ParseIp, RejectsEmptyAndMalformed) {
  EXPECT_EQ(ParseIp("").error(), ParseError::kEmpty);
  EXPECT_EQ(ParseIp("300.1.1.1").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseIp("1.2.3").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseIp("fe80::1%eth0").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseIp(std::string(100, '1')).error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseIp(std::string_view("1.2.3.4\0junk", 12)).error(), ParseError::kBadAddress);
}

TEST(Prefix, ContainsRespectsBitsAndFamily) {
  auto p = ParsePrefix("100.64.0.0/10");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->Contains(Ip("100.127.255.255")));
  EXPECT_FALSE(p->Contains(Ip("100.128.0.0")));
  EXPECT_FALSE(p->Contains(Ip("::ffff:100.64.0.1")));  // callers unmap first
  EXPECT_EQ(p->ToString(), "100.64.0.0/10");
  EXPECT_TRUE(ParsePrefix("10.0.0.1")->Contains(Ip("10.0.0.1")));
  EXPECT_EQ(ParsePrefix("10.0.0.0/33").error(), ParseError::kBadPrefixLength);
  EXPECT_EQ(ParsePrefix("10.0.0.0/").error(), ParseError::kBadPrefixLength);
  EXPECT_EQ(ParsePrefix("10.0.0.0/x").error(), ParseError::kBadPrefixLength);
  EXPECT_TRUE(ParsePrefix("::/0")->Contains(Ip("2001:db8::1")));
}

TEST(IsTailscaleIp, MatchesCgnatMinusChromeOsAndTheUla) {
  EXPECT_TRUE(IsTailscaleIp(Ip("100.64.0.1")));
  EXPECT_TRUE(IsTailscaleIp(Ip("100.100.100.100")));
  EXPECT_TRUE(IsTailscaleIp(Ip("::ffff:100.64.0.1")));
  EXPECT_FALSE(IsTailscaleIp(Ip("100.115.92.1")));
  EXPECT_FALSE(IsTailscaleIp(Ip("100.115.93.254")));
  EXPECT_TRUE(IsTailscaleIp(Ip("100.115.94.1")));
  EXPECT_FALSE(IsTailscaleIp(Ip("100.128.0.1")));
  EXPECT_TRUE(IsTailscaleIp(Ip("fd7a:115c:a1e0::1")));
  EXPECT_FALSE(IsTailscaleIp(Ip("fd7a:115c:a1e1::1")));
  EXPECT_FALSE(IsTailscaleIp(Ip("192.0.2.1")));
}

TEST(HostPort, ParsesAllForms) {
  auto a = ParseHostPort("127.0.0.1:443");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 443);
  auto b = ParseHostPort("[::1]:3340");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  auto c = ParseHostPort(":443");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "");
  EXPECT_EQ(ParseHostPort("derp.example.com:8443")->host, "derp.example.com");
  EXPECT_EQ(JoinHostPort("::1", 80), "[::1]:80");
  EXPECT_EQ(JoinHostPort("a", 80), "a:80");
}

TEST(HostPort, RejectsMalformed) {
  EXPECT_EQ(ParseHostPort("").error(), ParseError::kEmpty);
  EXPECT_EQ(ParseHostPort("localhost").error(), ParseError::kMissingPort);
  EXPECT_EQ(ParseHostPort("[::1]").error(), ParseError::kMissingPort);
  EXPECT_EQ(ParseHostPort("[::1:80").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseHostPort("[nothost]:80").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseHostPort("::1:80").error(), ParseError::kBadAddress);
  EXPECT_EQ(ParseHostPort("a:65536").error(), ParseError::kBadPort);
  EXPECT_EQ(ParseHostPort("a:").error(), ParseError::kBadPort);
  EXPECT_EQ(ParseHostPort("a:8x").error(), ParseError::kBadPort);
  EXPECT_EQ(Describe(ParseError::kBadPort), "port is not a number from 0 to 65535");
}

}  // namespace
}  // namespace derpkit::netaddr
