// NodeDialHost / NodeDerpUrl / NodeClientOptions: DERP map node -> client options.
#include "lib/derpclient/node_options.h"

#include "lib/util/netaddr.h"

namespace derpkit::derpclient {
namespace {

bool IsLiteral(const std::string& text, bool v4) {
  auto ip = netaddr::ParseIp(text);
  return ip && ip->is_v4() == v4;
}

}  // namespace

std::string NodeDialHost(const derpmap::Node& node) {
  if (IsLiteral(node.ipv4, true)) return node.ipv4;
  if (node.ipv4.empty()) return "";
  if (IsLiteral(node.ipv6, false)) return node.ipv6;
  return "";
}

std::string NodeDerpUrl(const derpmap::Node& node) {
  const int port = node.EffectiveDerpPort();
  const bool v6_name = node.host_name.find(':') != std::string::npos;
  std::string url = "https://" + (v6_name ? "[" + node.host_name + "]" : node.host_name);
  if (port != 443) url += ":" + std::to_string(port);
  return url + "/derp";
}

ClientOptions NodeClientOptions(const derpmap::Node& node, const derp::PrivateKey& key,
                                const NodeClientSettings& settings) {
  ClientOptions o;
  o.url = NodeDerpUrl(node);
  o.dial_host = NodeDialHost(node);
  o.key = key;
  o.tls.cert_name = node.cert_name;
  o.tls.insecure = node.insecure_for_tests;
  o.tls.ca_file = settings.ca_file;
  o.websocket = settings.websocket;
  o.connect_timeout = settings.connect_timeout;
  return o;
}

}  // namespace derpkit::derpclient
