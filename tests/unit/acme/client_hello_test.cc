// lib/acme/client_hello: the ALPN and server_name extension bodies as browsers, Go and ACME CAs
// send them parse to their names; every malformed body is refused with a message.
#include "lib/acme/client_hello.h"

#include <gtest/gtest.h>

#include <vector>

namespace derpkit::acme {
namespace {

std::vector<std::uint8_t> Body(std::initializer_list<int> bytes, std::string_view tail = {}) {
  std::vector<std::uint8_t> out;
  for (int b : bytes) out.push_back(static_cast<std::uint8_t>(b));
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

TEST(ParseAlpnExtension, ReadsEveryProtocolInOrder) {
  // h2 then http/1.1, as a browser offers them.
  const auto body = Body({0, 12, 2, 'h', '2', 8}, "http/1.1");
  auto names = ParseAlpnExtension(body);
  ASSERT_TRUE(names) << names.error();
  EXPECT_EQ(*names, (std::vector<std::string_view>{"h2", "http/1.1"}));
  const auto acme = Body({0, 11, 10}, "acme-tls/1");
  EXPECT_EQ(*ParseAlpnExtension(acme), (std::vector<std::string_view>{"acme-tls/1"}));
}

TEST(ParseAlpnExtension, RefusesMalformedBodies) {
  EXPECT_EQ(ParseAlpnExtension(Body({0})).error(), "ALPN: shorter than its 2-byte length");
  EXPECT_EQ(ParseAlpnExtension(Body({0, 5, 1, 'a'})).error(),
            "ALPN: list length 5 but 2 bytes follow");
  EXPECT_EQ(ParseAlpnExtension(Body({0, 0})).error(), "ALPN: empty protocol list");
  EXPECT_EQ(ParseAlpnExtension(Body({0, 1, 0})).error(), "ALPN: empty protocol name");
  EXPECT_EQ(ParseAlpnExtension(Body({0, 3, 5, 'a', 'b'})).error(),
            "ALPN: protocol name of 5 bytes runs past the end");
}

TEST(ParseServerNameExtension, ReadsTheHostName) {
  const auto body = Body({0, 21, 0, 0, 18}, "relay.derpkit.test");
  auto name = ParseServerNameExtension(body);
  ASSERT_TRUE(name) << name.error();
  EXPECT_EQ(*name, "relay.derpkit.test");
  // An entry of another type first is skipped.
  const auto two = Body({0, 9, 7, 0, 1, 'x', 0, 0, 2}, "ab");
  EXPECT_EQ(*ParseServerNameExtension(two), "ab");
}

TEST(ParseServerNameExtension, RefusesMalformedBodies) {
  EXPECT_EQ(ParseServerNameExtension(Body({})).error(),
            "server_name: shorter than its 2-byte length");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 9, 0})).error(),
            "server_name: list length 9 but 1 bytes follow");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 2, 0, 0})).error(), "server_name: truncated entry");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 4, 0, 0, 5, 'a'})).error(),
            "server_name: name of 5 bytes runs past the end");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 3, 0, 0, 0})).error(),
            "server_name: empty host_name");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 6, 0, 0, 3, 'a', 0, 'b'})).error(),
            "server_name: host_name holds a NUL byte");
  EXPECT_EQ(ParseServerNameExtension(Body({0, 4, 7, 0, 1, 'x'})).error(),
            "server_name: no host_name entry");
}

}  // namespace
}  // namespace derpkit::acme
