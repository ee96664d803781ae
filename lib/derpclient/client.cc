#include "lib/derpclient/client.h"

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <cstring>

#include "lib/derp/frame.h"
#include "lib/derp/protocol.h"
#include "lib/http/url.h"
#include "lib/http/websocket_accept.h"
#include "lib/net/direct_tls_stream.h"
#include "lib/net/socket_options.h"
#include "lib/net/ws_stream.h"

namespace derpkit::derpclient {
namespace {

// The reference client rejects frames over 1 MiB; ServerInfo may be up to 24 + 1 MiB.
constexpr std::uint32_t kMaxFrame = derp::kNonceSize + derp::kMaxInfoSize;
constexpr std::size_t kReadChunk = 64 * 1024;

std::string ErrorText(const std::error_code& ec) {
  if (ec == asio::error::eof) return "connection closed by the server";
  return ec.message();
}

}  // namespace

Client::Client(asio::io_context& io, ClientOptions options)
    : io_(io),
      options_(std::move(options)),
      public_key_(options_.key.Public()),
      reader_(kMaxFrame) {}

Client::~Client() { Close(); }

void Client::Close() {
  if (stream_) stream_->Close();
}

asio::awaitable<Expected<void, std::string>> Client::Connect() {
  asio::steady_timer timer(io_, options_.connect_timeout);
  auto timed_out = std::make_shared<bool>(false);
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  timer.async_wait([this, timed_out, socket](const std::error_code& ec) {
    if (ec) return;
    *timed_out = true;
    std::error_code ignored;
    socket->close(ignored);
    if (stream_) stream_->Close();
  });
  auto url = http::ParseUrl(options_.url);
  if (!url) co_return Unexpected{options_.url + ": " + std::string(http::Describe(url.error()))};
  const std::string host = options_.dial_host.empty() ? url->host : options_.dial_host;

  asio::ip::tcp::resolver resolver(io_);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(host, std::to_string(url->port), net::kAsTuple);
  if (rec) co_return Unexpected{"resolve " + host + ": " + rec.message()};
  auto [cec, ep] = co_await asio::async_connect(*socket, endpoints, net::kAsTuple);
  if (cec) {
    co_return Unexpected{"connect " + host + ":" + std::to_string(url->port) + ": " +
                         (*timed_out ? std::string("timed out") : cec.message())};
  }
  net::ApplyTcpOptions(*socket, net::TcpOptions{});

  if (url->tls()) {
    net::TlsClientOptions tls = options_.tls;
    if (tls.server_name.empty()) tls.server_name = url->host;
    try {
      tls_context_ = net::MakeClientContext(tls);
    } catch (const std::exception& e) {
      co_return Unexpected{std::string("TLS set-up: ") + e.what()};
    }
    // OpenSSL on the socket itself (DirectTlsStream), not asio::ssl::stream: no engine buffers
    // or memory-BIO copies, one recv for many small records, and our writes leave as they are
    // made (one record per call, as Tailscale's client writes). The stream is ours before the
    // handshake so that the connect timer's Close() ends a stalled one.
    auto tls_stream = std::make_unique<net::DirectTlsStream>(
        std::move(*socket), tls_context_->native_handle(), net::DirectTlsStream::Role::kClient);
    SSL* native = tls_stream->native_handle();
    if (native == nullptr) co_return Unexpected{std::string("TLS set-up: SSL_new failed")};
    net::PrepareClientSsl(native, tls);
    net::DirectTlsStream& handshaking = *tls_stream;
    stream_ = std::move(tls_stream);
    const std::error_code hec = co_await handshaking.Handshake();
    // A failed handshake leaves no stream: callers read that as "TCP or TLS failed" (netcheck
    // then does not try WebSocket). The reason is read from the SSL before it goes.
    if (hec) {
      std::string why =
          "TLS handshake with " + host + ": " +
          (*timed_out ? std::string("timed out") : net::DescribeHandshakeFailure(native, hec));
      stream_.reset();
      co_return Unexpected{std::move(why)};
    }
    if (auto problem = net::CheckPeerAfterHandshake(native, tls); !problem.empty()) {
      stream_.reset();
      co_return Unexpected{"TLS peer check: " + problem};
    }
    tls_version_ = SSL_get_version(native);
    if (options_.allow_fast_start && SSL_version(native) == TLS1_3_VERSION) {
      if (auto meta = net::FindMetaCert(native)) {
        std::memcpy(server_key_.bytes.data(), meta->server_key.data(), derp::kKeySize);
        used_fast_start_ = true;
      }
    }
  } else {
    stream_ = std::make_unique<net::TcpStream>(std::move(*socket));
  }

  if (options_.websocket) used_fast_start_ = false;
  std::string ws_key;
  std::vector<http::Header> headers = {
      {"Host", url->HostHeader()}, {"User-Agent", "derpkit"}, {"Connection", "Upgrade"}};
  if (options_.websocket) {
    std::array<unsigned char, 16> nonce{};
    RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
    ws_key = http::Base64Encode(std::as_bytes(std::span(nonce)));
    headers.push_back({"Upgrade", "websocket"});
    headers.push_back({"Sec-WebSocket-Key", ws_key});
    headers.push_back({"Sec-WebSocket-Version", "13"});
    headers.push_back({"Sec-WebSocket-Protocol", "derp"});
  } else {
    headers.push_back({"Upgrade", "DERP"});
  }
  if (used_fast_start_) headers.push_back({"Derp-Fast-Start", "1"});
  for (const auto& h : options_.extra_headers) headers.push_back(h);
  std::string request;
  http::AppendRequest(request, "GET", url->target, headers);

  derp::ClientInfo info;
  info.can_ack_pings = options_.can_ack_pings;
  info.is_prober = options_.is_prober;
  info.mesh_key = options_.mesh_key;

  if (used_fast_start_) {
    // Request and ClientInfo leave in one write; no HTTP response will come.
    Bytes out(request.size());
    std::memcpy(out.data(), request.data(), request.size());
    derp::AppendClientInfo(out, options_.key, server_key_, info, derp::RandomNonce());
    if (auto ec = co_await Write(std::move(out))) {
      co_return Unexpected{"send upgrade: " + ErrorText(ec)};
    }
    timer.cancel();
    co_return Expected<void, std::string>{};
  }

  Bytes req(request.size());
  std::memcpy(req.data(), request.data(), request.size());
  if (auto ec = co_await Write(std::move(req))) {
    co_return Unexpected{"send upgrade: " + ErrorText(ec)};
  }
  // Read the response head; whatever follows it is DERP and goes to the frame reader.
  Bytes head_buf;
  std::array<std::byte, 4096> chunk;
  for (;;) {
    auto r = co_await stream_->ReadSome(chunk);
    if (r.ec) {
      co_return Unexpected{"read upgrade response: " +
                           (*timed_out ? std::string("timed out") : ErrorText(r.ec))};
    }
    head_buf.insert(head_buf.end(), chunk.begin(), chunk.begin() + static_cast<long>(r.bytes));
    auto head = http::ParseResponseHead(head_buf);
    if (!head && head.error() == http::ParseError::kIncomplete) continue;
    if (!head) {
      co_return Unexpected{"bad upgrade response: " + std::string(http::Describe(head.error()))};
    }
    if (head->status != 101) {
      std::string body(reinterpret_cast<const char*>(head_buf.data()) + head->head_size,
                       head_buf.size() - head->head_size);
      while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
      co_return Unexpected{"server answered " + std::to_string(head->status) + " " + head->reason +
                           (body.empty() ? "" : ": " + body)};
    }
    const std::size_t rest = head_buf.size() - head->head_size;
    if (options_.websocket) {
      const std::string* accept = head->Find("Sec-WebSocket-Accept");
      const std::string* proto = head->Find("Sec-WebSocket-Protocol");
      if (accept == nullptr || *accept != http::WebSocketAccept(ws_key)) {
        co_return Unexpected{std::string("WebSocket upgrade: wrong Sec-WebSocket-Accept")};
      }
      if (proto == nullptr || *proto != "derp") {
        co_return Unexpected{std::string("WebSocket upgrade: server did not select \"derp\"")};
      }
      Bytes after(head_buf.begin() + static_cast<long>(head->head_size), head_buf.end());
      stream_ = std::make_unique<net::WsStream>(std::move(stream_), net::WsStream::Role::kClient,
                                                std::move(after));
      break;
    }
    if (rest > 0) {
      auto room = reader_.PrepareWrite(rest);
      std::memcpy(room.data(), head_buf.data() + head->head_size, rest);
      reader_.CommitWrite(rest);
    }
    break;
  }
  auto frame = co_await ReadFrame();
  if (!frame) co_return Unexpected{"read ServerKey: " + frame.error()};
  if (frame->type != derp::FrameType::kServerKey) {
    co_return Unexpected{"expected ServerKey, got " +
                         std::string(derp::FrameTypeName(frame->type))};
  }
  auto key = derp::ParseServerKey(frame->payload);
  if (!key) co_return Unexpected{"bad ServerKey: " + std::string(derp::Describe(key.error()))};
  server_key_ = *key;
  Bytes out;
  derp::AppendClientInfo(out, options_.key, server_key_, info, derp::RandomNonce());
  if (auto ec = co_await Write(std::move(out))) {
    co_return Unexpected{"send ClientInfo: " + ErrorText(ec)};
  }
  timer.cancel();
  co_return Expected<void, std::string>{};
}

asio::awaitable<Expected<derp::FrameReader::Frame, std::string>> Client::ReadFrame() {
  for (;;) {
    auto frame = reader_.Next();
    if (frame) co_return *frame;
    if (frame.error() == derp::FrameReader::Status::kTooLarge) {
      co_return Unexpected{std::string("frame over the 1 MiB limit")};
    }
    auto room = reader_.PrepareWrite(kReadChunk);
    auto r = co_await stream_->ReadSome(room);
    if (r.ec) co_return Unexpected{ErrorText(r.ec)};
    reader_.CommitWrite(r.bytes);
  }
}

asio::awaitable<Expected<Message, std::string>> Client::Recv() {
  using derp::FrameType;
  if (!stream_) co_return Unexpected{std::string("not connected")};
  for (;;) {
    auto frame = co_await ReadFrame();
    if (!frame) co_return Unexpected{frame.error()};
    const ByteSpan p = frame->payload;
    switch (frame->type) {
      case FrameType::kServerKey:
        continue;  // after fast start, or a server repeating itself: nothing to do
      case FrameType::kServerInfo: {
        auto info = derp::OpenServerInfo(p, options_.key, server_key_);
        if (!info) co_return Unexpected{"ServerInfo: " + std::string(derp::Describe(info.error()))};
        co_return Message{ServerInfoMessage{*info}};
      }
      case FrameType::kRecvPacket: {
        auto pkt = derp::ParseRecvPacket(p);
        if (!pkt) co_return Unexpected{"RecvPacket: " + std::string(derp::Describe(pkt.error()))};
        co_return Message{
            RecvPacketMessage{pkt->src, Bytes(pkt->packet.begin(), pkt->packet.end())}};
      }
      case FrameType::kPeerGone: {
        auto gone = derp::ParsePeerGone(p);
        if (!gone) co_return Unexpected{"PeerGone: " + std::string(derp::Describe(gone.error()))};
        co_return Message{PeerGoneMessage{gone->key, gone->reason}};
      }
      case FrameType::kPeerPresent: {
        auto present = derp::ParsePeerPresent(p);
        if (!present) {
          co_return Unexpected{"PeerPresent: " + std::string(derp::Describe(present.error()))};
        }
        co_return Message{PeerPresentMessage{*present}};
      }
      case FrameType::kPing: {
        auto ping = derp::ParsePing(p);
        if (!ping) co_return Unexpected{"Ping: " + std::string(derp::Describe(ping.error()))};
        co_return Message{PingMessage{*ping}};
      }
      case FrameType::kPong: {
        auto pong = derp::ParsePong(p);
        if (!pong) co_return Unexpected{"Pong: " + std::string(derp::Describe(pong.error()))};
        co_return Message{PongMessage{*pong}};
      }
      case FrameType::kKeepAlive:
        co_return Message{KeepAliveMessage{}};
      case FrameType::kHealth:
        co_return Message{HealthMessage{derp::ParseHealth(p)}};
      case FrameType::kRestarting: {
        auto r = derp::ParseRestarting(p);
        if (!r) continue;  // the reference client ignores a short Restarting
        co_return Message{RestartingMessage{*r}};
      }
      default:
        co_return Message{UnknownMessage{static_cast<std::uint8_t>(frame->type), p.size()}};
    }
  }
}

asio::awaitable<std::error_code> Client::Write(Bytes bytes) {
  if (!stream_) co_return asio::error::not_connected;
  const asio::const_buffer b(bytes.data(), bytes.size());
  auto r = co_await stream_->WriteAll(std::span(&b, 1));
  co_return r.ec;
}

asio::awaitable<std::error_code> Client::SendPacket(const derp::PublicKey& dst, ByteSpan packet) {
  Bytes out;
  derp::AppendSendPacket(out, dst, packet);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::SendPing(const derp::PingData& data) {
  Bytes out;
  derp::AppendPing(out, data);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::SendPong(const derp::PingData& data) {
  Bytes out;
  derp::AppendPong(out, data);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::NotePreferred(bool preferred) {
  Bytes out;
  derp::AppendNotePreferred(out, preferred);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::WatchConns() {
  Bytes out;
  derp::AppendWatchConns(out);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::ClosePeer(const derp::PublicKey& key) {
  Bytes out;
  derp::AppendClosePeer(out, key);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::ForwardPacket(const derp::PublicKey& src,
                                                       const derp::PublicKey& dst,
                                                       ByteSpan packet) {
  Bytes out;
  derp::AppendForwardPacket(out, src, dst, packet);
  co_return co_await Write(std::move(out));
}

asio::awaitable<std::error_code> Client::SendRaw(ByteSpan bytes) {
  co_return co_await Write(Bytes(bytes.begin(), bytes.end()));
}

}  // namespace derpkit::derpclient
