// How a tool dials one node of a DERP map (derp-protocol.md §12.2): which address (IPv4 literal,
// else DNS on HostName, else IPv6 literal), which URL and port, and how TLS judges the node (its
// CertName, a sha256-raw pin, or InsecureForTests). netcheck --connect and derp-probe both use it,
// so a node means the same thing to every tool.
//
// Pure function of its inputs; no I/O. Any thread.
#pragma once

#include <string>

#include "lib/derp/keys.h"
#include "lib/derpclient/client.h"
#include "lib/derpmap/derpmap.h"

namespace derpkit::derpclient {

// The address to dial instead of HostName, or "" to resolve HostName: a literal IPv4 is dialled
// as is; "" means DNS; anything else turns IPv4 off, and then a literal IPv6 is used if there is
// one.
std::string NodeDialHost(const derpmap::Node& node);

// "https://<HostName>[:<DERPPort>]/derp" (brackets for an IPv6 HostName; port left out at 443).
std::string NodeDerpUrl(const derpmap::Node& node);

struct NodeClientSettings {
  std::string ca_file{};  // extra trust anchors; "" = system roots
  std::chrono::milliseconds connect_timeout{10000};
  bool websocket = false;
};

// ClientOptions that reach `node` with `key`: URL, dial host, SNI = HostName, verification by
// CertName (name or sha256-raw pin) or none for InsecureForTests.
ClientOptions NodeClientOptions(const derpmap::Node& node, const derp::PrivateKey& key,
                                const NodeClientSettings& settings);

}  // namespace derpkit::derpclient
