// derpclient::Client: one DERP client for tests, benchmarks and tools. It dials a DERP URL
// (plain http:// or TLS https://), upgrades (with fast start when the server's TLS 1.3 chain
// carries the meta certificate), does the ClientInfo/ServerInfo handshake and then sends and
// receives frames. It accepts what old and new servers send (PeerPresent of 32, 50 or 51+ bytes,
// PeerGone with or without a reason byte).
//
// Thread affinity: one io_context; every call from its thread. At most one Recv() and one write
// (any Send*) may be outstanding at a time. No reconnects: a failed client is closed and the
// caller makes a new one (probes and tests want to see each failure).
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/keys.h"
#include "lib/derp/messages.h"
#include "lib/http/head.h"
#include "lib/net/stream.h"
#include "lib/net/tls.h"
#include "lib/util/expected.h"

namespace derpkit::derpclient {

struct ClientOptions {
  // http://host[:port]/derp or https://host[:port]/derp.
  std::string url;
  // Dial this address instead of the URL's host (like DERPNode IPv4, or mesh "name/dialhost").
  std::string dial_host;
  derp::PrivateKey key = derp::PrivateKey::Generate();
  // TLS: server_name defaults to the URL host.
  net::TlsClientOptions tls;
  bool can_ack_pings = false;
  bool is_prober = false;
  std::optional<derp::MeshKey> mesh_key;
  // Use fast start when the server's TLS 1.3 chain names its key (saves one round trip).
  bool allow_fast_start = true;
  // Speak DERP inside WebSocket binary messages (Upgrade: websocket, subprotocol "derp"), as
  // browser clients do. No fast start on this path.
  bool websocket = false;
  // Extra request headers, e.g. {"Ideal-Node", "900a"}.
  std::vector<http::Header> extra_headers;
  // Bound on DNS + TCP + TLS + HTTP upgrade + sending ClientInfo.
  std::chrono::milliseconds connect_timeout{10000};
};

struct ServerInfoMessage {
  derp::ServerInfo info;
};
struct RecvPacketMessage {
  derp::PublicKey src;
  Bytes packet;
};
struct PeerGoneMessage {
  derp::PublicKey key;
  derp::PeerGoneReason reason;
};
struct PeerPresentMessage {
  derp::PeerPresent peer;
};
struct PingMessage {
  derp::PingData data;
};
struct PongMessage {
  derp::PingData data;
};
struct KeepAliveMessage {};
struct HealthMessage {
  std::string problem;
};
struct RestartingMessage {
  derp::Restarting restarting;
};
struct UnknownMessage {
  std::uint8_t type;
  std::size_t size;
};
using Message = std::variant<ServerInfoMessage, RecvPacketMessage, PeerGoneMessage,
                             PeerPresentMessage, PingMessage, PongMessage, KeepAliveMessage,
                             HealthMessage, RestartingMessage, UnknownMessage>;

class Client {
 public:
  Client(asio::io_context& io, ClientOptions options);
  ~Client();

  // Connects and sends ClientInfo. ServerInfo comes as the first message from Recv(). Returns a
  // human-readable error (which step failed and why).
  asio::awaitable<Expected<void, std::string>> Connect();

  // Receives the next message the client understands; ServerKey frames after fast start are
  // skipped. The error is human-readable ("connection closed by the server", ...).
  asio::awaitable<Expected<Message, std::string>> Recv();

  asio::awaitable<std::error_code> SendPacket(const derp::PublicKey& dst, ByteSpan packet);
  asio::awaitable<std::error_code> SendPing(const derp::PingData& data);
  asio::awaitable<std::error_code> SendPong(const derp::PingData& data);
  asio::awaitable<std::error_code> NotePreferred(bool preferred);
  asio::awaitable<std::error_code> WatchConns();
  asio::awaitable<std::error_code> ClosePeer(const derp::PublicKey& key);
  asio::awaitable<std::error_code> ForwardPacket(const derp::PublicKey& src,
                                                 const derp::PublicKey& dst, ByteSpan packet);
  // Writes raw bytes (tests use it to send malformed frames).
  asio::awaitable<std::error_code> SendRaw(ByteSpan bytes);

  void Close();

  const derp::PublicKey& public_key() const { return public_key_; }
  // The server's key, from ServerKey or the meta certificate.
  const derp::PublicKey& server_key() const { return server_key_; }
  bool used_fast_start() const { return used_fast_start_; }
  // "TLSv1.3" etc., empty for plain.
  const std::string& tls_version() const { return tls_version_; }
  net::Stream* stream() { return stream_.get(); }

 private:
  asio::awaitable<Expected<void, std::string>> ConnectSteps();
  asio::awaitable<Expected<derp::FrameReader::Frame, std::string>> ReadFrame();
  asio::awaitable<std::error_code> Write(Bytes bytes);

  asio::io_context& io_;
  ClientOptions options_;
  derp::PublicKey public_key_;
  derp::PublicKey server_key_;
  std::unique_ptr<asio::ssl::context> tls_context_;
  std::unique_ptr<net::Stream> stream_;
  derp::FrameReader reader_;
  bool used_fast_start_ = false;
  std::string tls_version_;
};

}  // namespace derpkit::derpclient
