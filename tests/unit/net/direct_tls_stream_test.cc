// DirectTlsStream against real OpenSSL peers on loopback: asio::ssl::stream clients (TlsStream)
// and DirectTlsStream clients. Single-threaded: each test runs on its own io_context.
#include "lib/net/direct_tls_stream.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/net/certs.h"
#include "lib/net/stream.h"
#include "lib/net/tls.h"
#include "lib/util/bytes.h"
#include "tests/unit/net/net_test_util.h"
#include "tests/unit/net/stream_test_util.h"

// GCC 12 misreports asio's coroutine frame operator new/delete pair as mismatched (GCC PR 109224).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace derpkit::net {
namespace {

using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using Role = DirectTlsStream::Role;

using namespace derpkit::net::stream_test;

asio::awaitable<std::error_code> AsioHandshake(TlsStream::SslStream& ssl) {
  auto [ec] = co_await ssl.async_handshake(asio::ssl::stream_base::client, kAsTuple);
  co_return ec;
}

asio::awaitable<void> Yield() {
  co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
}

// Polls `ready` every millisecond, at most 5,000 times; false when it never held.
template <typename Pred>
asio::awaitable<bool> PollUntil(Pred ready) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < 5000; ++i) {
    if (ready()) co_return true;
    timer.expires_after(1ms);
    co_await timer.async_wait(use_awaitable);
  }
  co_return ready();
}

// Counts the KeyUpdate messages an SSL receives (write_p == 0) or sends (write_p == 1).
struct KeyUpdateCounter {
  int received = 0;
  int sent = 0;
  void Attach(SSL* ssl) {
    SSL_set_msg_callback(ssl, &KeyUpdateCounter::OnMessage);
    SSL_set_msg_callback_arg(ssl, this);
  }
  static void OnMessage(int write_p, int /*version*/, int content_type, const void* buf,
                        std::size_t len, SSL* /*ssl*/, void* arg) {
    auto* self = static_cast<KeyUpdateCounter*>(arg);
    if (content_type != SSL3_RT_HANDSHAKE || len == 0) return;
    if (static_cast<const unsigned char*>(buf)[0] != SSL3_MT_KEY_UPDATE) return;
    ++(write_p != 0 ? self->sent : self->received);
  }
};

class DirectTlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    scratch_ = new nettest::ScratchDir();
    const SelfSignedCert cert = GenerateSelfSigned("localhost");
    nettest::WriteFile(*scratch_ / "localhost.crt", cert.cert_pem);
    nettest::WriteFile(*scratch_ / "localhost.key", cert.key_pem);
    const SelfSignedCert other = GenerateSelfSigned("localhost");
    nettest::WriteFile(*scratch_ / "other.crt", other.cert_pem);
  }
  static void TearDownTestSuite() {
    delete scratch_;
    scratch_ = nullptr;
  }

  void SetUp() override {
    TlsServerOptions server;
    server.files = {*scratch_ / "localhost.crt", *scratch_ / "localhost.key"};
    server.add_meta_cert = false;
    server_context_ = MakeServerContext(server);
    client_options_ = {.server_name = "localhost", .ca_file = *scratch_ / "localhost.crt"};
    client_context_ = MakeClientContext(client_options_);
  }

  // Runs `body` on the test's io_context, bounded by a 20 s timer (ASan on a busy machine).
  void Run(asio::awaitable<void> body) {
    auto bounded = [](asio::awaitable<void> body) -> asio::awaitable<bool> {
      asio::steady_timer deadline(co_await asio::this_coro::executor, 20s);
      auto first = co_await (std::move(body) || deadline.async_wait(use_awaitable));
      co_return first.index() == 0;
    };
    std::future<bool> done = asio::co_spawn(io_, bounded(std::move(body)), asio::use_future);
    io_.run();
    io_.restart();
    ASSERT_EQ(done.wait_for(0s), std::future_status::ready);
    EXPECT_TRUE(done.get()) << "timed out after 20 s";
  }

  struct AsioPair {
    std::unique_ptr<DirectTlsStream> server;
    std::unique_ptr<TlsStream> client;
    SSL* client_ssl() { return client->ssl().native_handle(); }
  };

  // A DirectTlsStream server and an asio::ssl::stream client, handshaken.
  asio::awaitable<AsioPair> HandshakeWithAsioClient(int buffer_bytes = 0) {
    SocketPair sockets = co_await ConnectedSockets(buffer_bytes);
    co_return co_await HandshakeWithAsioClient(std::move(sockets));
  }
  asio::awaitable<AsioPair> HandshakeWithAsioClient(SocketPair sockets) {
    AsioPair p;
    p.server = std::make_unique<DirectTlsStream>(std::move(sockets.server),
                                                 server_context_->native_handle(), Role::kServer);
    auto ssl = std::make_unique<TlsStream::SslStream>(std::move(sockets.client), *client_context_);
    PrepareClientSsl(ssl->native_handle(), client_options_);
    auto results = co_await (p.server->Handshake() && AsioHandshake(*ssl));
    EXPECT_FALSE(std::get<0>(results)) << std::get<0>(results).message();
    EXPECT_FALSE(std::get<1>(results)) << std::get<1>(results).message();
    p.client = std::make_unique<TlsStream>(std::move(ssl));
    co_return p;
  }

  struct DirectPair {
    std::unique_ptr<DirectTlsStream> server;
    std::unique_ptr<DirectTlsStream> client;
  };

  // DirectTlsStream on both sides, handshaken.
  asio::awaitable<DirectPair> HandshakeWithDirectClient(int buffer_bytes = 0) {
    SocketPair sockets = co_await ConnectedSockets(buffer_bytes);
    DirectPair p;
    p.server = std::make_unique<DirectTlsStream>(std::move(sockets.server),
                                                 server_context_->native_handle(), Role::kServer);
    p.client = std::make_unique<DirectTlsStream>(std::move(sockets.client),
                                                 client_context_->native_handle(), Role::kClient);
    PrepareClientSsl(p.client->native_handle(), client_options_);
    auto results = co_await (p.server->Handshake() && p.client->Handshake());
    EXPECT_FALSE(std::get<0>(results)) << std::get<0>(results).message();
    EXPECT_FALSE(std::get<1>(results)) << std::get<1>(results).message();
    co_return p;
  }

  static nettest::ScratchDir* scratch_;
  std::unique_ptr<asio::ssl::context> server_context_;
  std::unique_ptr<asio::ssl::context> client_context_;
  TlsClientOptions client_options_;
  asio::io_context io_;
};

nettest::ScratchDir* DirectTlsStreamTest::scratch_ = nullptr;

TEST_F(DirectTlsStreamTest, HandshakesWithAnAsioClientAndEchoesBothWays) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    EXPECT_EQ(SSL_version(p.server->native_handle()), TLS1_3_VERSION);
    const Bytes ping = Pattern(1000, 1);
    const IoResult w = co_await WriteBytes(*p.client, ping);
    EXPECT_FALSE(w.ec) << w.ec.message();
    const Bytes got = co_await ReadExactly(*p.server, ping.size());
    EXPECT_EQ(got, ping);
    const Bytes pong = Pattern(70000, 2);  // more than four records
    const IoResult w2 = co_await WriteBytes(*p.server, pong);
    EXPECT_FALSE(w2.ec) << w2.ec.message();
    EXPECT_EQ(w2.bytes, pong.size());
    const Bytes back = co_await ReadExactly(*p.client, pong.size());
    EXPECT_EQ(back, pong);
    EXPECT_EQ(p.server->unsent_bytes(), 0u);
  }());
}

TEST_F(DirectTlsStreamTest, DirectClientAndServerStreamBothWaysAtOnce) {
  Run([this]() -> asio::awaitable<void> {
    DirectPair p = co_await HandshakeWithDirectClient(64 * 1024);
    const Bytes up = Pattern(3 * 1024 * 1024 + 7, 3);
    const Bytes down = Pattern(2 * 1024 * 1024 + 11, 4);
    auto results = co_await (WriteBytes(*p.client, up) && WriteBytes(*p.server, down) &&
                             TryReadExactly(*p.server, up.size()) &&
                             ReadExactly(*p.client, down.size(), 5000));
    EXPECT_FALSE(std::get<0>(results).ec) << std::get<0>(results).ec.message();
    EXPECT_FALSE(std::get<1>(results).ec) << std::get<1>(results).ec.message();
    EXPECT_TRUE(std::get<2>(results) == up);
    EXPECT_TRUE(std::get<3>(results) == down);
  }());
}

TEST_F(DirectTlsStreamTest, AThousandBufferGatherWriteOfFiveMegabytesArrivesIntact) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient(128 * 1024);
    // Sizes as the relay's writer hands them over (a 37-byte frame header, then a payload), plus
    // a few larger than a record, so records are cut inside buffers and across them.
    std::vector<Bytes> parts;
    std::size_t total = 0;
    for (int i = 0; i < 1000; ++i) {
      std::size_t size = (i % 2 == 0) ? 37 : 1 + static_cast<std::size_t>(i * 7919) % 9000;
      if (i % 97 == 1) size = 20000 + static_cast<std::size_t>(i) * 13;
      if (i == 5) size = 0;  // an empty buffer is legal in a gather list
      parts.push_back(Pattern(size, static_cast<unsigned>(i)));
      total += size;
    }
    while (total < 5 * 1000 * 1000) {  // top up to 5 MB in the last buffer
      const std::size_t add = 5 * 1000 * 1000 - total;
      Bytes extra = Pattern(add, 99);
      parts.back().insert(parts.back().end(), extra.begin(), extra.end());
      total += add;
    }
    EXPECT_EQ(parts.size(), 1000u);
    std::vector<asio::const_buffer> gather;
    Bytes expected;
    for (const Bytes& b : parts) {
      gather.emplace_back(b.data(), b.size());
      expected.insert(expected.end(), b.begin(), b.end());
    }
    auto results = co_await (p.server->WriteAll(gather) && ReadExactly(*p.client, total, 7000));
    EXPECT_FALSE(std::get<0>(results).ec) << std::get<0>(results).ec.message();
    EXPECT_EQ(std::get<0>(results).bytes, total);
    EXPECT_TRUE(std::get<1>(results) == expected) << "the bytes differ";
    EXPECT_EQ(p.server->unsent_bytes(), 0u);
  }());
}

TEST_F(DirectTlsStreamTest, ReadsAPeerThatSendsOneRecordPerByte) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    const Bytes data = Pattern(3000, 5);
    auto one_record_per_byte = [&]() -> asio::awaitable<void> {
      for (std::size_t i = 0; i < data.size(); ++i) {
        auto [ec, n] =
            co_await asio::async_write(p.client->ssl(), asio::buffer(&data[i], 1), kAsTuple);
        if (ec || n != 1) {
          ADD_FAILURE() << "client write " << i << ": " << ec.message();
          co_return;
        }
      }
    };
    const Bytes got = co_await (one_record_per_byte() && TryReadExactly(*p.server, data.size()));
    EXPECT_TRUE(got == data);
    // The same through ReadSome with a small buffer.
    const Bytes again = co_await (one_record_per_byte() && ReadExactly(*p.server, data.size(), 7));
    EXPECT_TRUE(again == data);
  }());
}

TEST_F(DirectTlsStreamTest, TryReadSaysWouldBlockAndFillsAcrossRecords) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    std::array<std::byte, 1000> buf{};
    IoResult r = p.server->TryRead(buf);
    EXPECT_EQ(r.ec, asio::error::would_block) << r.ec.message();
    EXPECT_EQ(r.bytes, 0u);

    // Three records of 100 bytes, all in the server's socket before it reads.
    const Bytes data = Pattern(300, 6);
    for (int i = 0; i < 3; ++i) {
      auto [ec, n] = co_await asio::async_write(p.client->ssl(),
                                                asio::buffer(data.data() + i * 100, 100), kAsTuple);
      EXPECT_FALSE(ec) << ec.message();
    }
    // TLS 1.3 adds 22 bytes per record (5 header, 1 content type, 16 tag).
    tcp::socket& raw = p.server->tcp();
    EXPECT_TRUE(co_await PollUntil([&] { return raw.available() >= 3 * 122; }));
    r = p.server->TryRead(buf);
    EXPECT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.bytes, 300u);  // one call, three records
    if (r.bytes == 300) {
      EXPECT_EQ(0, std::memcmp(buf.data(), data.data(), 300));
    }
    r = p.server->TryRead(buf);
    EXPECT_EQ(r.ec, asio::error::would_block);

    // A record larger than the buffer: the rest waits decrypted inside OpenSSL, and WaitReadable
    // says so at once (it would otherwise wait on a socket that stays silent, and time out).
    auto [ec, n] = co_await asio::async_write(p.client->ssl(), asio::buffer(data), kAsTuple);
    EXPECT_FALSE(ec);
    const std::error_code first_wait = co_await p.server->WaitReadable();
    EXPECT_FALSE(first_wait);
    r = p.server->TryRead(std::span(buf).first(30));
    EXPECT_EQ(r.bytes, 30u);
    const std::error_code second_wait = co_await p.server->WaitReadable();
    EXPECT_FALSE(second_wait);
    r = p.server->TryRead(buf);
    EXPECT_EQ(r.bytes, 270u);
    EXPECT_EQ(0, std::memcmp(buf.data(), data.data() + 30, 270));
    r = p.server->TryRead(buf);
    EXPECT_EQ(r.ec, asio::error::would_block);
  }());
}

TEST_F(DirectTlsStreamTest, BytesBeforeCloseNotifyThenEof) {
  Run([this]() -> asio::awaitable<void> {
    DirectPair p = co_await HandshakeWithDirectClient();
    const Bytes data = Pattern(10, 7);
    const IoResult w = co_await WriteBytes(*p.client, data);
    EXPECT_FALSE(w.ec);
    co_await p.client->ShutdownGracefully();
    EXPECT_TRUE(co_await PollUntil([&] { return p.server->tcp().available() >= 32 + 24; }));
    std::array<std::byte, 100> buf{};
    IoResult r = p.server->TryRead(buf);
    EXPECT_EQ(r.bytes, 10u) << r.ec.message();
    r = p.server->TryRead(buf);
    EXPECT_EQ(r.ec, asio::error::eof) << r.ec.message();
    r = p.server->TryRead(buf);  // and stays so
    EXPECT_EQ(r.ec, asio::error::eof) << r.ec.message();
    const std::error_code ready = co_await p.server->WaitReadable();
    EXPECT_FALSE(ready);
  }());
}

TEST_F(DirectTlsStreamTest, CloseNotifyFromAnAsioClientIsEofAndOursCompletesItsShutdown) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    // asio's shutdown sends close_notify, then waits for ours.
    auto client_shutdown = [&]() -> asio::awaitable<std::error_code> {
      auto [ec] = co_await p.client->ssl().async_shutdown(kAsTuple);
      co_return ec;
    };
    auto server_side = [&]() -> asio::awaitable<std::error_code> {
      std::array<std::byte, 16> buf{};
      const IoResult r = co_await p.server->ReadSome(buf);
      co_await p.server->ShutdownGracefully();
      co_return r.ec;
    };
    auto results = co_await (client_shutdown() && server_side());
    EXPECT_EQ(std::get<1>(results), asio::error::eof) << std::get<1>(results).message();
    // asio reports a clean bidirectional shutdown as success (or eof, depending on timing).
    const std::error_code cec = std::get<0>(results);
    EXPECT_TRUE(!cec || cec == asio::error::eof) << cec.message();
  }());
}

TEST_F(DirectTlsStreamTest, HangingUpWithoutCloseNotifyIsStreamTruncated) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    const Bytes data = Pattern(5, 8);
    const IoResult w = co_await WriteBytes(*p.client, data);
    EXPECT_FALSE(w.ec);
    // A FIN without close_notify. (Closing instead would send a RST, since the client has not
    // read the session tickets: that is connection_reset, which callers treat alike.)
    p.client->tcp().shutdown(tcp::socket::shutdown_send);
    std::array<std::byte, 100> buf{};
    const IoResult first = co_await p.server->ReadSome(buf);
    EXPECT_EQ(first.bytes, 5u);
    const IoResult second = co_await p.server->ReadSome(buf);
    EXPECT_EQ(second.ec, asio::ssl::error::stream_truncated) << second.ec.message();
    // The writer says the same rather than OpenSSL's "protocol is shutdown".
    const IoResult w2 = co_await WriteBytes(*p.server, data);
    EXPECT_TRUE(w2.ec);
  }());
}

TEST_F(DirectTlsStreamTest, CloseEndsAPendingReadAndAPendingWait) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    auto close_soon = [&]() -> asio::awaitable<void> {
      co_await Yield();
      co_await Yield();
      p.server->Close();
    };
    std::array<std::byte, 100> buf{};
    const IoResult r = co_await (p.server->ReadSome(buf) && close_soon());
    EXPECT_EQ(r.ec, asio::error::operation_aborted) << r.ec.message();
    const std::error_code again = co_await p.server->WaitReadable();
    EXPECT_EQ(again, asio::error::operation_aborted);
    EXPECT_EQ(p.server->TryRead(buf).ec, asio::error::operation_aborted);
    p.server->Close();  // twice is fine
  }());
}

TEST_F(DirectTlsStreamTest, CloseEndsAWriteToAPeerThatStoppedReadingAndAReadBesideIt) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient(32 * 1024);
    const Bytes big = Pattern(8 * 1024 * 1024, 9);  // far more than the socket buffers hold
    std::array<std::byte, 100> buf{};
    // (Returns a value: asio 1.22's `tuple && void` operator does not compile.)
    auto close_when_stuck = [&]() -> asio::awaitable<bool> {
      // The write suspends once the socket is full and the rest of a record waits in unsent_.
      const bool stuck = co_await PollUntil([&] { return p.server->unsent_bytes() > 0; });
      p.server->Close();
      co_return stuck;
    };
    auto results =
        co_await (WriteBytes(*p.server, big) && p.server->ReadSome(buf) && close_when_stuck());
    EXPECT_EQ(std::get<0>(results).ec, asio::error::operation_aborted)
        << std::get<0>(results).ec.message();
    EXPECT_EQ(std::get<1>(results).ec, asio::error::operation_aborted)
        << std::get<1>(results).ec.message();
    EXPECT_TRUE(std::get<2>(results)) << "the write never filled the socket";
    EXPECT_EQ(p.server->unsent_bytes(), 0u);  // Close gave the buffer back
  }());
}

TEST_F(DirectTlsStreamTest, KeyUpdateMidStreamWhileTheServerReadsAndWrites) {
  Run([this]() -> asio::awaitable<void> {
    DirectPair p = co_await HandshakeWithDirectClient(64 * 1024);
    KeyUpdateCounter client_seen;
    KeyUpdateCounter server_seen;
    client_seen.Attach(p.client->native_handle());
    server_seen.Attach(p.server->native_handle());
    // The client asks for a key update every 256 KB of its own writing, in the middle of both
    // streams: each answer is written by a server read while the server's writer is busy.
    co_await StreamBothWaysAtOnce(*p.client, *p.server, [&] {
      EXPECT_EQ(SSL_key_update(p.client->native_handle(), SSL_KEY_UPDATE_REQUESTED), 1);
    });
    EXPECT_EQ(client_seen.sent, 7);
    EXPECT_EQ(server_seen.received, 7);
    EXPECT_EQ(server_seen.sent, 7);  // every request answered
    EXPECT_EQ(client_seen.received, 7);
  }());
}

TEST_F(DirectTlsStreamTest, KeyUpdateWhileTheServersWriteIsStuckOnAFullSocket) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient(32 * 1024);
    KeyUpdateCounter client_seen;
    client_seen.Attach(p.client_ssl());
    const Bytes big = Pattern(2 * 1024 * 1024, 13);
    const Bytes up = Pattern(100, 14);
    auto client = [&]() -> asio::awaitable<Bytes> {
      // Wait until the server's write is stuck (its socket full), then ask for a key update.
      EXPECT_TRUE(co_await PollUntil([&] { return p.server->unsent_bytes() > 0; }));
      EXPECT_EQ(SSL_key_update(p.client_ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
      const IoResult w = co_await WriteBytes(*p.client, up);
      EXPECT_FALSE(w.ec) << w.ec.message();
      co_return co_await ReadExactly(*p.client, big.size(), 10000);
    };
    auto results =
        co_await (WriteBytes(*p.server, big) && TryReadExactly(*p.server, up.size()) && client());
    EXPECT_FALSE(std::get<0>(results).ec) << std::get<0>(results).ec.message();
    EXPECT_TRUE(std::get<1>(results) == up);
    EXPECT_TRUE(std::get<2>(results) == big);
    const Bytes tail = Pattern(10, 15);
    const IoResult w = co_await WriteBytes(*p.server, tail);
    EXPECT_FALSE(w.ec);
    const Bytes got = co_await ReadExactly(*p.client, tail.size());
    EXPECT_EQ(got, tail);
    EXPECT_EQ(client_seen.received, 1);
  }());
}

// OpenSSL 3 answers a KeyUpdate request with the next SSL_write, not inside the read that took
// it: a read never writes anything but an alert, so TryRead needs no write-readiness wait.
TEST_F(DirectTlsStreamTest, AKeyUpdateRequestIsAnsweredByTheNextWrite) {
  Run([this]() -> asio::awaitable<void> {
    AsioPair p = co_await HandshakeWithAsioClient();
    KeyUpdateCounter client_seen;
    KeyUpdateCounter server_seen;
    client_seen.Attach(p.client_ssl());
    server_seen.Attach(p.server->native_handle());
    EXPECT_EQ(SSL_key_update(p.client_ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
    const Bytes up = Pattern(100, 17);
    const IoResult cw = co_await WriteBytes(*p.client, up);
    EXPECT_FALSE(cw.ec);
    const Bytes got = co_await TryReadExactly(*p.server, up.size());
    EXPECT_TRUE(got == up);
    EXPECT_EQ(server_seen.received, 1);
    EXPECT_EQ(server_seen.sent, 0);
    EXPECT_EQ(p.server->unsent_bytes(), 0u);
    const Bytes down = Pattern(10, 19);
    const IoResult sw = co_await WriteBytes(*p.server, down);
    EXPECT_FALSE(sw.ec);
    EXPECT_EQ(server_seen.sent, 1);
    const Bytes got_down = co_await ReadExactly(*p.client, down.size());
    EXPECT_EQ(got_down, down);
    EXPECT_EQ(client_seen.received, 1);
  }());
}

TEST_F(DirectTlsStreamTest, TheSslKeepsItsContextAfterTheAsioContextIsGone) {
  Run([this]() -> asio::awaitable<void> {
    SocketPair sockets = co_await ConnectedSockets();
    auto server = std::make_unique<DirectTlsStream>(
        std::move(sockets.server), server_context_->native_handle(), Role::kServer);
    server_context_.reset();  // as a certificate reload drops the old context
    auto ssl = std::make_unique<TlsStream::SslStream>(std::move(sockets.client), *client_context_);
    PrepareClientSsl(ssl->native_handle(), client_options_);
    auto results = co_await (server->Handshake() && AsioHandshake(*ssl));
    EXPECT_FALSE(std::get<0>(results)) << std::get<0>(results).message();
    EXPECT_FALSE(std::get<1>(results)) << std::get<1>(results).message();
    TlsStream client(std::move(ssl));
    const Bytes data = Pattern(500, 20);
    const IoResult w = co_await WriteBytes(*server, data);
    EXPECT_FALSE(w.ec);
    const Bytes got = co_await ReadExactly(client, data.size());
    EXPECT_EQ(got, data);
  }());
}

TEST_F(DirectTlsStreamTest, HandshakeFailuresCarryOpenSslsReason) {
  Run([this]() -> asio::awaitable<void> {
    // A client that trusts another certificate rejects ours and says so with an alert.
    {
      SocketPair sockets = co_await ConnectedSockets();
      DirectTlsStream server(std::move(sockets.server), server_context_->native_handle(),
                             Role::kServer);
      TlsClientOptions other = {.server_name = "localhost", .ca_file = *scratch_ / "other.crt"};
      auto other_context = MakeClientContext(other);
      TlsStream::SslStream ssl(std::move(sockets.client), *other_context);
      PrepareClientSsl(ssl.native_handle(), other);
      auto results = co_await (server.Handshake() && AsioHandshake(ssl));
      const std::error_code sec = std::get<0>(results);
      EXPECT_TRUE(sec);
      EXPECT_EQ(&sec.category(), &asio::error::get_ssl_category()) << sec.message();
      EXPECT_NE(sec.message().find("alert"), std::string::npos) << sec.message();
      EXPECT_TRUE(std::get<1>(results));
    }
    // Plain HTTP on the TLS port.
    {
      SocketPair sockets = co_await ConnectedSockets();
      DirectTlsStream server(std::move(sockets.server), server_context_->native_handle(),
                             Role::kServer);
      const std::string get = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
      co_await asio::async_write(sockets.client, asio::buffer(get), use_awaitable);
      const std::error_code sec = co_await server.Handshake();
      EXPECT_NE(sec.message().find("http request"), std::string::npos) << sec.message();
    }
    // A peer that hangs up in the middle.
    {
      SocketPair sockets = co_await ConnectedSockets();
      DirectTlsStream server(std::move(sockets.server), server_context_->native_handle(),
                             Role::kServer);
      const std::array<unsigned char, 5> partial_record = {0x16, 0x03, 0x01, 0x02, 0x00};
      co_await asio::async_write(sockets.client, asio::buffer(partial_record), use_awaitable);
      sockets.client.close();
      const std::error_code sec = co_await server.Handshake();
      EXPECT_EQ(sec, asio::ssl::error::stream_truncated) << sec.message();
    }
  }());
}

}  // namespace
}  // namespace derpkit::net
