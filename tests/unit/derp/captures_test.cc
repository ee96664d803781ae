// Walks every DERP transcript recorded from real Tailscale v1.36.2 programs
// (shared/testdata/derp/, described in its README and the *.frames.txt listings): each frame is
// cut out by FrameReader, parsed by the matching Parse function, checked against the recorded
// meaning, and re-encoded byte for byte where the frame has a canonical form. Every sealed box is
// opened with the keys from keys/keys.json and compared with *.boxes.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"
#include "lib/derp/messages.h"
#include "tests/unit/derp/testdata.h"

namespace derpkit::derp {
namespace {

using testing::LoadTestKeys;
using testing::ReadTestdataBytes;
using testing::ReadTestdataJson;
using testing::TestKey;

enum class Direction { kClientToServer, kServerToClient };

struct OpenedBox {
  std::string frame;  // "ClientInfo" / "ServerInfo"
  Bytes nonce;
  Bytes box;
  std::string json;
};

struct Transcript {
  std::size_t head_size = 0;                 // HTTP request/response head before the first frame
  std::vector<std::string> frames;           // "@offset Type details", offsets into the .bin file
  std::map<std::size_t, OpenedBox> boxes;    // by frame offset
  std::vector<std::string> sealed_verbatim;  // clients whose JSON our encoder orders differently
};

class CaptureWalker {
 public:
  CaptureWalker() : keys_(LoadTestKeys()) {
    for (const auto& [name, k] : keys_) names_[k.pub] = name;
  }

  // Walks one direction of client `client`'s connection.
  Transcript Walk(std::string_view file, Direction dir, const std::string& client) {
    const Bytes stream = ReadTestdataBytes(file);
    Transcript t;
    t.head_size = HttpHeadSize(stream);
    // Chunks of 7 bytes put frame boundaries everywhere relative to the reads.
    FrameReader reader(kMaxInfoSize);
    std::size_t offset = t.head_size;  // file offset of the next frame
    ByteSpan rest = ByteSpan(stream).subspan(t.head_size);
    while (!rest.empty()) {
      auto room = reader.PrepareWrite(7);
      const std::size_t n = std::min({std::size_t{7}, room.size(), rest.size()});
      std::memcpy(room.data(), rest.data(), n);
      reader.CommitWrite(n);
      rest = rest.subspan(n);
      for (auto frame = reader.Next(); frame; frame = reader.Next()) {
        const ByteSpan wire =
            ByteSpan(stream).subspan(offset, kFrameHeaderSize + frame->payload.size());
        t.frames.push_back("@" + std::to_string(offset) + " " +
                           Render(t, offset, *frame, wire, dir, client));
        offset += wire.size();
      }
    }
    EXPECT_EQ(reader.buffered(), 0u) << file << ": transcript ends inside a frame";
    EXPECT_EQ(offset, stream.size()) << file;
    return t;
  }

  const std::map<std::string, TestKey>& keys() const { return keys_; }

 private:
  static std::size_t HttpHeadSize(const Bytes& stream) {
    const std::string_view text = AsText(stream);
    if (!text.starts_with("GET ") && !text.starts_with("HTTP/")) return 0;  // fast start / ws
    const auto end = text.find("\r\n\r\n");
    EXPECT_NE(end, std::string_view::npos);
    return end == std::string_view::npos ? 0 : end + 4;
  }

  std::string Name(const PublicKey& k) const {
    auto it = names_.find(k);
    return it == names_.end() ? k.ToText() : it->second;
  }

  static std::string PacketText(ByteSpan packet) {
    if (IsDiscoPacket(packet)) return "disco(" + std::to_string(packet.size()) + ")";
    return std::string(AsText(packet));
  }

  // Decodes one frame into a line of text, checking on the way that it re-encodes exactly.
  std::string Render(Transcript& t, std::size_t offset, const FrameReader::Frame& frame,
                     ByteSpan wire, Direction dir, const std::string& client) {
    const Bytes want(wire.begin(), wire.end());
    Bytes again;
    const ByteSpan p = frame.payload;
    const std::string type(FrameTypeName(frame.type));
    switch (frame.type) {
      case FrameType::kServerKey: {
        auto key = ParseServerKey(p);
        if (!key) return type + " error " + std::string(Describe(key.error()));
        AppendServerKey(again, *key);
        EXPECT_EQ(again, want) << "@" << offset;
        return type + " " + Name(*key);
      }
      case FrameType::kClientInfo:
        return RenderClientInfo(t, offset, p, want, client);
      case FrameType::kServerInfo:
        return RenderServerInfo(t, offset, p, want, client);
      case FrameType::kSendPacket: {
        auto v = ParseSendPacket(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        AppendSendPacket(again, v->dst, v->packet);
        EXPECT_EQ(again, want) << "@" << offset;
        return type + " dst=" + Name(v->dst) + " " + PacketText(v->packet);
      }
      case FrameType::kRecvPacket: {
        auto v = ParseRecvPacket(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        AppendRecvPacket(again, v->src, v->packet);
        EXPECT_EQ(again, want) << "@" << offset;
        return type + " src=" + Name(v->src) + " " + PacketText(v->packet);
      }
      case FrameType::kForwardPacket: {
        auto v = ParseForwardPacket(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        AppendForwardPacket(again, v->src, v->dst, v->packet);
        EXPECT_EQ(again, want) << "@" << offset;
        return type + " src=" + Name(v->src) + " dst=" + Name(v->dst) + " " + PacketText(v->packet);
      }
      case FrameType::kKeepAlive:
        AppendKeepAlive(again);
        EXPECT_EQ(again, want) << "@" << offset;
        return type;
      case FrameType::kNotePreferred: {
        auto v = ParseNotePreferred(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        AppendNotePreferred(again, *v);
        EXPECT_EQ(again, want) << "@" << offset;
        return type + (*v ? " true" : " false");
      }
      case FrameType::kPeerGone: {
        auto v = ParsePeerGone(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        if (p.size() == kKeySize + 1) {
          AppendPeerGone(again, v->key, v->reason);
          EXPECT_EQ(again, want) << "@" << offset;
        }
        return type + " " + Name(v->key) + " reason=" + std::to_string(int(v->reason)) +
               " size=" + std::to_string(p.size());
      }
      case FrameType::kPeerPresent: {
        auto v = ParsePeerPresent(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        if (p.size() == 51) {
          AppendPeerPresent(again, *v);
          EXPECT_EQ(again, want) << "@" << offset;
        }
        return type + " " + Name(v->key) + (v->has_endpoint ? " endpoint" : " key-only");
      }
      case FrameType::kWatchConns: {
        auto v = ParseWatchConns(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        AppendWatchConns(again);
        EXPECT_EQ(again, want) << "@" << offset;
        return type;
      }
      case FrameType::kPing:
      case FrameType::kPong: {
        auto v = frame.type == FrameType::kPing ? ParsePing(p) : ParsePong(p);
        if (!v) return type + " error " + std::string(Describe(v.error()));
        if (frame.type == FrameType::kPing) {
          AppendPing(again, *v);
        } else {
          AppendPong(again, *v);
        }
        EXPECT_EQ(again, want) << "@" << offset;
        return type + " " + HexEncode(*v);
      }
      default:
        ADD_FAILURE() << "@" << offset << ": unexpected frame type " << int(frame.type) << " ("
                      << (dir == Direction::kClientToServer ? "c2s" : "s2c") << ")";
        return type;
    }
  }

  std::string RenderClientInfo(Transcript& t, std::size_t offset, ByteSpan p, const Bytes& want,
                               const std::string& client) {
    const PrivateKey& server = keys_.at("server").priv;
    auto opened = OpenClientInfo(p, server);
    if (!opened) return "ClientInfo error " + std::string(Describe(opened.error()));
    EXPECT_EQ(Name(opened->client), client);
    // The exact JSON bytes, to compare with boxes.json and to re-seal.
    Nonce nonce;
    std::memcpy(nonce.data(), p.data() + kKeySize, kNonceSize);
    const ByteSpan box = p.subspan(kKeySize + kNonceSize);
    auto json = OpenSealed(box, nonce, opened->client, server);
    EXPECT_TRUE(json.has_value());
    const std::string json_text = json ? std::string(AsText(*json)) : "";
    t.boxes[offset] = {"ClientInfo", Bytes(nonce.begin(), nonce.end()),
                       Bytes(box.begin(), box.end()), json_text};

    const PrivateKey& client_priv = keys_.at(client).priv;
    Bytes again;
    if (EncodeClientInfoJson(opened->info) == json_text) {
      AppendClientInfo(again, client_priv, server.Public(), opened->info, nonce);
    } else {
      // v1.36.2 mesh clients put "version" before "meshKey"; seal their bytes verbatim.
      t.sealed_verbatim.push_back(client);
      AppendClientInfoJson(again, client_priv, server.Public(), json_text, nonce);
    }
    EXPECT_EQ(again, want) << "ClientInfo @" << offset << " does not re-encode";

    std::string line = "ClientInfo " + Name(opened->client) +
                       " version=" + std::to_string(opened->info.version) +
                       " can_ack_pings=" + (opened->info.can_ack_pings ? "true" : "false");
    if (opened->info.mesh_key) line += " mesh_key=" + opened->info.mesh_key->ToHex();
    return line;
  }

  std::string RenderServerInfo(Transcript& t, std::size_t offset, ByteSpan p, const Bytes& want,
                               const std::string& client) {
    const TestKey& c = keys_.at(client);
    const TestKey& server = keys_.at("server");
    auto info = OpenServerInfo(p, c.priv, server.pub);
    if (!info) return "ServerInfo error " + std::string(Describe(info.error()));
    Nonce nonce;
    std::memcpy(nonce.data(), p.data(), kNonceSize);
    const ByteSpan box = p.subspan(kNonceSize);
    auto json = OpenSealed(box, nonce, server.pub, c.priv);
    EXPECT_TRUE(json.has_value());
    const std::string json_text = json ? std::string(AsText(*json)) : "";
    t.boxes[offset] = {"ServerInfo", Bytes(nonce.begin(), nonce.end()),
                       Bytes(box.begin(), box.end()), json_text};
    EXPECT_EQ(EncodeServerInfoJson(*info), json_text);
    Bytes again;
    AppendServerInfo(again, server.priv, c.pub, *info, nonce);
    EXPECT_EQ(again, want) << "ServerInfo @" << offset << " does not re-encode";
    return "ServerInfo version=" + std::to_string(info->version);
  }

  std::map<std::string, TestKey> keys_;
  std::map<PublicKey, std::string> names_;
};

// Checks every entry of <dir>/<client>.boxes.json against what the walk opened.
void ExpectBoxesMatch(const std::string& boxes_file, const Transcript& c2s, const Transcript& s2c,
                      const std::map<std::string, TestKey>& keys) {
  const auto boxes = ReadTestdataJson(boxes_file);
  ASSERT_EQ(boxes.size(), c2s.boxes.size() + s2c.boxes.size()) << boxes_file;
  for (const auto& b : boxes) {
    const auto offset = b["frame_offset"].get<std::size_t>();
    const Transcript& t = b["dir"] == "c2s" ? c2s : s2c;
    auto it = t.boxes.find(offset);
    ASSERT_NE(it, t.boxes.end()) << boxes_file << " @" << offset;
    const OpenedBox& got = it->second;
    EXPECT_EQ(got.frame, b["frame"].get<std::string>());
    EXPECT_EQ(HexEncode(got.nonce), b["nonce"].get<std::string>());
    EXPECT_EQ(HexEncode(got.box), b["box"].get<std::string>());
    EXPECT_EQ(got.json, b["json"].get<std::string>());
    EXPECT_TRUE(b["opened"].get<bool>());
    EXPECT_EQ(keys.at(b["sender"].get<std::string>()).pub.ToHex(),
              b["sender_public"].get<std::string>());
    EXPECT_EQ(keys.at(b["recipient"].get<std::string>()).pub.ToHex(),
              b["recipient_public"].get<std::string>());
  }
}

using Lines = std::vector<std::string>;

TEST(Captures, PlainClientA) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/plain/A.c2s.bin", Direction::kClientToServer, "A");
  const auto s2c = w.Walk("derp/plain/A.s2c.bin", Direction::kServerToClient, "A");
  EXPECT_EQ(c2s.head_size, 113u);
  EXPECT_EQ(s2c.head_size, 172u);
  EXPECT_EQ(c2s.frames, (Lines{
                            "@113 ClientInfo A version=2 can_ack_pings=true",
                            "@222 NotePreferred true",
                            "@228 SendPacket dst=B hello B, from A",
                            "@280 Ping 0102030405060708",
                            "@293 SendPacket dst=Z disco(66)",
                        }));
  EXPECT_EQ(s2c.frames, (Lines{
                            "@172 ServerKey server",
                            "@217 ServerInfo version=2",
                            "@275 RecvPacket src=B hello A, from B",
                            "@327 Pong 0102030405060708",
                            "@340 RecvPacket src=X forwarded to A, from X via mesh",
                            "@408 PeerGone B reason=0 size=32",
                            "@445 KeepAlive",
                        }));
  ExpectBoxesMatch("derp/plain/A.boxes.json", c2s, s2c, w.keys());
  EXPECT_TRUE(c2s.sealed_verbatim.empty());
}

TEST(Captures, PlainClientB) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/plain/B.c2s.bin", Direction::kClientToServer, "B");
  const auto s2c = w.Walk("derp/plain/B.s2c.bin", Direction::kServerToClient, "B");
  EXPECT_EQ(c2s.frames, (Lines{
                            "@113 ClientInfo B version=2 can_ack_pings=false",
                            "@223 SendPacket dst=A hello A, from B",
                        }));
  EXPECT_EQ(s2c.frames, (Lines{
                            "@172 ServerKey server",
                            "@217 ServerInfo version=2",
                            "@275 RecvPacket src=A hello B, from A",
                        }));
  ExpectBoxesMatch("derp/plain/B.boxes.json", c2s, s2c, w.keys());
}

TEST(Captures, PlainClientCHandshakeOnly) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/plain/C.c2s.bin", Direction::kClientToServer, "C");
  const auto s2c = w.Walk("derp/plain/C.s2c.bin", Direction::kServerToClient, "C");
  EXPECT_EQ(c2s.frames, (Lines{"@113 ClientInfo C version=2 can_ack_pings=false"}));
  EXPECT_EQ(s2c.frames, (Lines{"@172 ServerKey server", "@217 ServerInfo version=2"}));
  ExpectBoxesMatch("derp/plain/C.boxes.json", c2s, s2c, w.keys());
}

TEST(Captures, PlainMeshWatcherM) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/plain/M.c2s.bin", Direction::kClientToServer, "M");
  const auto s2c = w.Walk("derp/plain/M.s2c.bin", Direction::kServerToClient, "M");
  const std::string mesh = ReadTestdataJson("keys/keys.json")["MeshKey"].get<std::string>();
  EXPECT_EQ(c2s.frames, (Lines{
                            "@113 ClientInfo M version=2 can_ack_pings=false mesh_key=" + mesh,
                            "@300 WatchConns",
                            "@305 ForwardPacket src=X dst=A forwarded to A, from X via mesh",
                        }));
  EXPECT_EQ(s2c.frames, (Lines{
                            "@172 ServerKey server",
                            "@217 ServerInfo version=2",
                            "@275 PeerPresent A key-only",
                            "@312 PeerPresent B key-only",
                            "@349 PeerPresent M key-only",
                            "@386 PeerPresent C key-only",
                            "@423 PeerGone C reason=0 size=32",
                            "@460 PeerGone B reason=0 size=32",
                            "@497 KeepAlive",
                            "@502 PeerGone A reason=0 size=32",
                        }));
  ExpectBoxesMatch("derp/plain/M.boxes.json", c2s, s2c, w.keys());
  // Only the v1.36.2 mesh JSON ({"version":2,"meshKey":...}) differs from our member order.
  EXPECT_EQ(c2s.sealed_verbatim, (Lines{"M"}));
}

TEST(Captures, FastStartClientF) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/faststart/F.c2s.bin", Direction::kClientToServer, "F");
  const auto s2c = w.Walk("derp/faststart/F.s2c.bin", Direction::kServerToClient, "F");
  EXPECT_EQ(c2s.head_size, 127u);
  EXPECT_EQ(s2c.head_size, 0u);  // fast start: no HTTP response at all
  EXPECT_EQ(c2s.frames, (Lines{
                            "@127 ClientInfo F version=2 can_ack_pings=true",
                            "@236 NotePreferred true",
                            "@242 SendPacket dst=F hello F, from F (fast start)",
                            "@307 Ping 2122232425262728",
                        }));
  EXPECT_EQ(s2c.frames, (Lines{
                            "@0 ServerKey server",
                            "@45 ServerInfo version=2",
                            "@103 RecvPacket src=F hello F, from F (fast start)",
                            "@168 Pong 2122232425262728",
                        }));
  ExpectBoxesMatch("derp/faststart/F.boxes.json", c2s, s2c, w.keys());
}

TEST(Captures, WebSocketClientWUnwrappedStreams) {
  CaptureWalker w;
  const auto c2s = w.Walk("derp/websocket/W.c2s.derp.bin", Direction::kClientToServer, "W");
  const auto s2c = w.Walk("derp/websocket/W.s2c.derp.bin", Direction::kServerToClient, "W");
  EXPECT_EQ(c2s.frames, (Lines{
                            "@0 ClientInfo W version=2 can_ack_pings=false",
                            "@110 NotePreferred true",
                            "@116 SendPacket dst=W hello W, from W over websocket",
                            "@183 Ping 1112131415161718",
                        }));
  EXPECT_EQ(s2c.frames, (Lines{
                            "@0 ServerKey server",
                            "@45 ServerInfo version=2",
                            "@103 RecvPacket src=W hello W, from W over websocket",
                            "@170 Pong 1112131415161718",
                        }));
  ExpectBoxesMatch("derp/websocket/W.boxes.json", c2s, s2c, w.keys());
}

TEST(Captures, ServerKeyFramesMatchTheKeyFileAndHeader) {
  // The ServerKey every session received is the public half of keys/derper.key.
  auto key = ParseKeyFile(testing::ReadTestdata("keys/derper.key"));
  ASSERT_TRUE(key.has_value());
  const Bytes s2c = ReadTestdataBytes("derp/faststart/F.s2c.bin");
  auto server = ParseServerKey(ByteSpan(s2c).subspan(kFrameHeaderSize, 40));
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(*server, key->Public());
}

}  // namespace
}  // namespace derpkit::derp
