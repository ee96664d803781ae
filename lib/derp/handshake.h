// The DERP handshake frames (protocol.h "Connection flow", derp-protocol.md §6): the JSON inside
// ClientInfo/ServerInfo, and the NaCl boxes around it. Pure apart from RandomNonce(); the caller
// passes nonces in, so every Append* is deterministic and byte-exact in tests.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"
#include "lib/derp/protocol.h"
#include "lib/util/bytes.h"
#include "lib/util/expected.h"

namespace derpkit::derp {

// What the client tells the server about itself (JSON inside the ClientInfo box).
struct ClientInfo {
  int version = kProtocolVersion;   // "version"; informational, the server does not act on it
  bool can_ack_pings = false;       // "CanAckPings": the client answers server Pings
  bool is_prober = false;           // "IsProber": a monitoring prober (PeerPresent flag)
  std::optional<MeshKey> mesh_key;  // "meshKey": grants mesh privileges if it matches the region's
  std::string app_name;             // "AppName": opaque, for stats (v1.102+)
};

// What the server tells the client (JSON inside the ServerInfo box).
struct ServerInfo {
  int version = kProtocolVersion;                  // "version"
  std::int64_t token_bucket_bytes_per_second = 0;  // "TokenBucketBytesPerSecond"; 0 = no limit
  std::int64_t token_bucket_bytes_burst = 0;       // "TokenBucketBytesBurst"
};

enum class HandshakeError {
  kTooShort,        // payload too short to hold its keys, nonce and box tag
  kTooLarge,        // payload over the limit (ClientInfo 256 KiB, ServerInfo 24 + 1 MiB)
  kBoxDoesNotOpen,  // wrong keys, or the box was tampered with
  kBadJson,         // not a JSON object, or a known member has the wrong type
  kBadMeshKey,      // "meshKey" present but not exactly 64 hex digits (including "")
};
std::string_view Describe(HandshakeError e);

// Returns the JSON the current reference client sends, member order and all:
// {"meshKey":"<hex>","version":2,"CanAckPings":false,"IsProber":true,"AppName":"x"}, where
// meshKey is omitted when absent or zero, version when 0, IsProber when false and AppName when
// empty (Go's omitempty). Strings are escaped as Go's encoding/json does.
std::string EncodeClientInfoJson(const ClientInfo& info);

// Parses ClientInfo JSON the way Go's encoding/json does: member names match case-insensitively
// (an exact match wins), unknown members and nulls are ignored, missing members keep Go's zero
// values (version 0, false, no mesh key, ""). Any member order is accepted (v1.36.2 sends
// version before meshKey). An all-zero mesh key decodes as no mesh key. Errors: kBadJson,
// kBadMeshKey. Never throws, whatever the input.
Expected<ClientInfo, HandshakeError> DecodeClientInfoJson(std::string_view json);

// Returns {"version":2} plus "TokenBucketBytesPerSecond"/"TokenBucketBytesBurst" when non-zero
// (version is omitted when 0).
std::string EncodeServerInfoJson(const ServerInfo& info);

// Parses ServerInfo JSON with the same rules as DecodeClientInfoJson. Errors: kBadJson.
Expected<ServerInfo, HandshakeError> DecodeServerInfoJson(std::string_view json);

using Nonce = std::array<std::byte, kNonceSize>;

// Returns a fresh random nonce (the one impure function here; the caller owns randomness).
Nonce RandomNonce();

// Appends crypto_box_easy(message, nonce, recipient, sender) = 16-byte tag || ciphertext.
void AppendSealed(Bytes& out, ByteSpan message, const Nonce& nonce, const PublicKey& recipient,
                  const PrivateKey& sender);

// Opens a box made by AppendSealed. Errors: kTooShort (no room for the tag), kBoxDoesNotOpen.
// Allocates box.size() - 16 bytes; the caller bounds box.size().
Expected<Bytes, HandshakeError> OpenSealed(ByteSpan box, const Nonce& nonce,
                                           const PublicKey& sender, const PrivateKey& recipient);

// Appends a whole ClientInfo frame: client public key || nonce || box(EncodeClientInfoJson).
void AppendClientInfo(Bytes& out, const PrivateKey& client, const PublicKey& server,
                      const ClientInfo& info, const Nonce& nonce);
// As AppendClientInfo, with the JSON given verbatim (tools, tests, other member orders).
void AppendClientInfoJson(Bytes& out, const PrivateKey& client, const PublicKey& server,
                          std::string_view json, const Nonce& nonce);

struct OpenedClientInfo {
  PublicKey client;  // the key the client claimed, proven by the box opening
  ClientInfo info;
};

// Opens a ClientInfo payload with the server's private key and decodes its JSON. Errors:
// kTooShort (under 72 bytes = key + nonce + tag), kTooLarge (over kMaxClientInfoSize),
// kBoxDoesNotOpen, kBadJson, kBadMeshKey.
Expected<OpenedClientInfo, HandshakeError> OpenClientInfo(ByteSpan payload,
                                                          const PrivateKey& server);

// Appends a whole ServerInfo frame: nonce || box(EncodeServerInfoJson).
void AppendServerInfo(Bytes& out, const PrivateKey& server, const PublicKey& client,
                      const ServerInfo& info, const Nonce& nonce);
// As AppendServerInfo, with the JSON given verbatim.
void AppendServerInfoJson(Bytes& out, const PrivateKey& server, const PublicKey& client,
                          std::string_view json, const Nonce& nonce);

// Opens a ServerInfo payload on the client side and decodes its JSON. Errors: kTooShort (under
// 40 bytes = nonce + tag), kTooLarge (over 24 + kMaxInfoSize), kBoxDoesNotOpen, kBadJson.
Expected<ServerInfo, HandshakeError> OpenServerInfo(ByteSpan payload, const PrivateKey& client,
                                                    const PublicKey& server);

}  // namespace derpkit::derp
