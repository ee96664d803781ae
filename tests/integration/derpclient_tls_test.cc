// derpclient::Client's TLS connect against a real relay and a real listener on loopback: what a
// failed or stalled handshake leaves behind (netcheck reads "no stream" as "TCP or TLS failed"),
// that the connect timeout bounds the handshake, and that records both ways and close_notify work
// on the client's OpenSSL-on-the-socket stream.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "lib/derpclient/client.h"
#include "tests/support/test_relay.h"
#include "tests/support/testdata.h"

namespace derpkit::testing {
namespace {

using namespace std::chrono_literals;
using derpclient::RecvPacketMessage;

TEST(DerpClientTls, AFailedVerificationLeavesNoStream) {
  TestRelay relay{TestRelayOptions{true, 1, false, nullptr}};
  asio::io_context io;
  auto opts = relay.ClientOptionsFor();
  opts.key = TestKey(1);
  opts.tls.cert_name = "not-this-host.example";  // the relay's certificate names localhost
  derpclient::Client client(io, opts);
  auto result = Await(io, client.Connect());
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("TLS handshake with 127.0.0.1: "), std::string::npos)
      << result.error();
  EXPECT_NE(result.error().find("certificate"), std::string::npos) << result.error();
  EXPECT_EQ(client.stream(), nullptr);
}

TEST(DerpClientTls, TheConnectTimeoutEndsAHandshakeTheServerNeverAnswers) {
  // A listener that never accepts: the kernel completes TCP, nobody answers the ClientHello.
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  derpclient::ClientOptions opts;
  opts.url = "https://localhost:" + std::to_string(silent.local_endpoint().port()) + "/derp";
  opts.dial_host = "127.0.0.1";
  opts.tls.insecure = true;
  opts.key = TestKey(1);
  opts.connect_timeout = 300ms;
  derpclient::Client client(io, opts);
  const auto started = std::chrono::steady_clock::now();
  auto result = Await(io, client.Connect(), 10s);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("TLS handshake with 127.0.0.1: timed out"), std::string::npos)
      << result.error();
  EXPECT_LT(took, 5s) << "the handshake outlived the connect timeout";
  EXPECT_EQ(client.stream(), nullptr);
}

TEST(DerpClientTls, PacketsCrossBothWaysOverTls13) {
  TestRelay relay{TestRelayOptions{true, 1, false, nullptr}};
  asio::io_context io;
  auto a_opts = relay.ClientOptionsFor();
  a_opts.key = TestKey(1);
  auto b_opts = relay.ClientOptionsFor();
  b_opts.key = TestKey(2);
  auto a = ConnectClient(io, a_opts);
  auto b = ConnectClient(io, b_opts);
  EXPECT_EQ(a->tls_version(), "TLSv1.3");
  ASSERT_NE(a->stream(), nullptr);
  EXPECT_TRUE(a->stream()->is_tls());
  // Larger than one record (16 KiB) and than the read-ahead, so records split across reads.
  const Bytes big(60 * 1024, std::byte{0x5a});
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(Await(io, a->SendPacket(b->public_key(), Payload("small " + std::to_string(i)))));
    ASSERT_FALSE(Await(io, b->SendPacket(a->public_key(), big)));
    auto at_b = RecvUntil<RecvPacketMessage>(io, *b);
    EXPECT_EQ(at_b.packet, Payload("small " + std::to_string(i)));
    auto at_a = RecvUntil<RecvPacketMessage>(io, *a);
    EXPECT_EQ(at_a.packet, big);
  }
}

}  // namespace
}  // namespace derpkit::testing
