// What /bootstrap-dns answers (relay/bootstrap_dns_answer.h): derper's JSON bytes, the TXT
// rollout value, the PCG rollout decision (values derived from Go's math/rand/v2 algorithm,
// whose generator go_pcg_test.cc checks against Go's own vector), ?q= parsing and counters.
#include "relay/bootstrap_dns_answer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace derpkit::relay {
namespace {

netaddr::IpAddress Ip(std::string_view text) { return *netaddr::ParseIp(text); }

std::string CapturedBody(const std::string& name) {
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/http/" + name + ".resp", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string whole = text.str();
  const auto end_of_head = whole.find("\r\n\r\n");
  return end_of_head == std::string::npos ? "" : whole.substr(end_of_head + 4);
}

TEST(MarshalDnsMap, MatchesDerpersBytesForLocalhost) {
  // derper -bootstrap-dns-names localhost, captured (shared/testdata/http/bootstrap-dns.resp).
  const std::string want = CapturedBody("bootstrap-dns");
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(MarshalDnsMap({{"localhost", {"127.0.0.1"}}}), want);
}

TEST(MarshalDnsMap, SortsNamesAndIndentsEveryAddressWithTabs) {
  EXPECT_EQ(MarshalDnsMap({{"b.example", {"2001:db8::7", "192.0.2.7"}}, {"a.example", {}}}),
            "{\n\t\"a.example\": [],\n\t\"b.example\": [\n\t\t\"2001:db8::7\",\n"
            "\t\t\"192.0.2.7\"\n\t]\n}");
}

TEST(MarshalDnsMap, EmptyIsGosNilMapAndStringsAreEscapedAsGoDoes) {
  EXPECT_EQ(MarshalDnsMap({}), "null");
  EXPECT_EQ(MarshalDnsMap({{"a<b>&\"\\\n\x01", {}}}),
            "{\n\t\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\": []\n}");
}

TEST(RolloutFraction, TakesTheLastIntegerFrom0To100) {
  EXPECT_EQ(RolloutFraction({"42"}), 0.42);
  EXPECT_EQ(RolloutFraction({"+50"}), 0.5) << "strconv.Atoi accepts a sign";
  EXPECT_EQ(RolloutFraction({"-0"}), 0.0);
  EXPECT_EQ(RolloutFraction({"100"}), 1.0);
  EXPECT_EQ(RolloutFraction({"7", "junk", "30"}), 0.3);
  EXPECT_EQ(RolloutFraction({"30", "junk"}), 0.3);
  EXPECT_FALSE(RolloutFraction({}));
  EXPECT_FALSE(RolloutFraction({"101"}));
  EXPECT_FALSE(RolloutFraction({"-1"}));
  EXPECT_FALSE(RolloutFraction({" 5"}));
  EXPECT_FALSE(RolloutFraction({"5%"}));
  EXPECT_FALSE(RolloutFraction({""}));
  EXPECT_FALSE(RolloutFraction({"+"}));
}

TEST(InRollout, ZeroAndOneDoNotDependOnTheCaller) {
  EXPECT_FALSE(InRollout(Ip("203.0.113.7"), 0.0, 0.0));
  EXPECT_TRUE(InRollout(Ip("203.0.113.7"), 1.0, 0.99));
  EXPECT_FALSE(InRollout(Ip("127.0.0.1"), 0.0, 0.0));
  EXPECT_TRUE(InRollout(Ip("::1"), 1.0, 0.99));
}

TEST(InRollout, LoopbackCallersGetTheCoinFlip) {
  EXPECT_TRUE(InRollout(Ip("127.0.0.1"), 0.01, 0.49));
  EXPECT_FALSE(InRollout(Ip("127.0.0.1"), 0.99, 0.5));
  EXPECT_TRUE(InRollout(Ip("::1"), 0.5, 0.0));
}

TEST(InRollout, OtherCallersDrawFromAPcgSeededWithTheirAddress) {
  // Float64 of rand.New(rand.NewPCG(le64(ip16[:8]), le64(ip16[8:]))), computed from Go's
  // algorithm: 203.0.113.7 -> 0.44725..., 198.51.100.20 -> 0.69257..., 2001:db8::7 -> 0.26603...
  EXPECT_TRUE(InRollout(Ip("203.0.113.7"), 0.45, 0.99));
  EXPECT_FALSE(InRollout(Ip("203.0.113.7"), 0.44, 0.0));
  EXPECT_TRUE(InRollout(Ip("198.51.100.20"), 0.70, 0.99));
  EXPECT_FALSE(InRollout(Ip("198.51.100.20"), 0.69, 0.0));
  EXPECT_TRUE(InRollout(Ip("2001:db8::7"), 0.27, 0.99));
  EXPECT_FALSE(InRollout(Ip("2001:db8::7"), 0.26, 0.0));
  // An IPv4 client seen through a dual-stack socket is the same client.
  EXPECT_TRUE(InRollout(Ip("::ffff:203.0.113.7"), 0.45, 0.99));
  EXPECT_FALSE(InRollout(Ip("::ffff:203.0.113.7"), 0.44, 0.0));
}

TEST(QueryGet, FollowsGosUrlQueryGet) {
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=a.example", "q"), "a.example");
  EXPECT_EQ(QueryGet("/bootstrap-dns?x=1&q=b.example", "q"), "b.example");
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=first&q=second", "q"), "first");
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=%61b+c", "q"), "ab c");
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=%zz&q=next", "q"), "next") << "a bad escape is skipped";
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=%6", "q"), "");
  EXPECT_EQ(QueryGet("/bootstrap-dns?q=a;b&q=next", "q"), "next") << "';' pairs are skipped";
  EXPECT_EQ(QueryGet("/bootstrap-dns?q", "q"), "");
  EXPECT_EQ(QueryGet("/bootstrap-dns", "q"), "");
  EXPECT_EQ(QueryGet("http://relay.example/bootstrap-dns?&&q=x", "q"), "x");
}

class AnswerTest : public ::testing::Test {
 protected:
  AnswerTest() {
    published_.ips = {{"controlplane.example", {"192.0.2.1"}}, {"empty.example", {}}};
    published_json_ = MarshalDnsMap(published_.ips);
    unpublished_.ips = {{"hidden.example", {"192.0.2.9"}},
                        {"half.example", {"192.0.2.10"}},
                        {"noaddr.example", {}}};
    unpublished_.fraction = {{"hidden.example", 1.0}, {"half.example", 0.45}};
  }
  BootstrapDnsAnswer Ask(std::string_view q, std::string_view from = "198.51.100.20") {
    return AnswerBootstrapDns(published_, published_json_, unpublished_, q, Ip(from), 0.0);
  }
  static std::array<std::uint8_t, kBootstrapDnsCounterCount> Only(BootstrapDnsCounter a) {
    std::array<std::uint8_t, kBootstrapDnsCounterCount> c{};
    c[static_cast<std::size_t>(a)] = 1;
    return c;
  }
  DnsEntryMap published_;
  std::string published_json_;
  DnsEntryMap unpublished_;
};

TEST_F(AnswerTest, WithoutQReturnsThePublishedMapAndCountsNothing) {
  const auto a = Ask("");
  EXPECT_EQ(a.body, published_json_);
  EXPECT_EQ(a.counts, (std::array<std::uint8_t, kBootstrapDnsCounterCount>{}));
}

TEST_F(AnswerTest, AnUnpublishedNameInItsRolloutIsAnsweredAlone) {
  const auto a = Ask("hidden.example");
  EXPECT_EQ(a.body, "{\n\t\"hidden.example\": [\n\t\t\"192.0.2.9\"\n\t]\n}");
  EXPECT_EQ(a.counts, Only(BootstrapDnsCounter::kUnpublishedHit));
}

TEST_F(AnswerTest, TheRolloutIsDecidedByTheCallersAddress) {
  // half.example is rolled out to 45%: 203.0.113.7 draws 0.447 (in), 198.51.100.20 0.693 (out).
  EXPECT_EQ(Ask("half.example", "203.0.113.7").body,
            "{\n\t\"half.example\": [\n\t\t\"192.0.2.10\"\n\t]\n}");
  const auto out = Ask("half.example", "198.51.100.20");
  EXPECT_EQ(out.body, published_json_) << "outside the rollout: the published map";
  std::array<std::uint8_t, kBootstrapDnsCounterCount> want{};
  want[static_cast<std::size_t>(BootstrapDnsCounter::kUnpublishedHit)] = 1;
  want[static_cast<std::size_t>(BootstrapDnsCounter::kUnpublishedPercentMiss)] = 1;
  want[static_cast<std::size_t>(BootstrapDnsCounter::kUnpublishedMiss)] = 1;
  EXPECT_EQ(out.counts, want);
}

TEST_F(AnswerTest, PublishedNamesAndUnknownNamesAreCountedAsDerperCountsThem) {
  EXPECT_EQ(Ask("controlplane.example").body, published_json_);
  EXPECT_EQ(Ask("controlplane.example").counts, Only(BootstrapDnsCounter::kPublishedHit));
  EXPECT_EQ(Ask("empty.example").counts, Only(BootstrapDnsCounter::kPublishedMiss));
  EXPECT_EQ(Ask("nowhere.example").counts, Only(BootstrapDnsCounter::kUnpublishedMiss));
  EXPECT_EQ(Ask("noaddr.example").counts, Only(BootstrapDnsCounter::kUnpublishedMiss))
      << "an unpublished name without addresses is not a hit";
}

TEST_F(AnswerTest, NoNamesConfiguredMeansAnEmptyBody) {
  EXPECT_EQ(AnswerBootstrapDns({}, "", {}, "anything", Ip("192.0.2.1"), 0.0).body, "");
}

}  // namespace
}  // namespace derpkit::relay
