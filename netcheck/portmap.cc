// ProbePortMapping: one UDP socket, five datagrams to the gateway (NAT-PMP external address, PCP
// ANNOUNCE, two SSDP M-SEARCHes) plus the same M-SEARCHes to the SSDP multicast group, then
// answers until all three protocols have spoken or the timeout. Codecs: lib/portmap.
//
// Thread affinity: a coroutine on the caller's executor; everything it owns lives in its frame.
#include "netcheck/portmap.h"

#include <array>
#include <asio/experimental/awaitable_operators.hpp>
#include <fstream>
#include <iterator>
#include <string_view>

#include "lib/net/stream.h"
#include "lib/portmap/pcp.h"
#include "lib/portmap/pmp.h"
#include "lib/portmap/route.h"
#include "lib/portmap/ssdp.h"
#include "lib/util/netaddr.h"

namespace derpkit::netcheck {
namespace {

using asio::ip::udp;
using namespace asio::experimental::awaitable_operators;

constexpr std::size_t kMaxRouteFileBytes = 1 << 20;
// A LAN full of UPnP devices answers ssdp:all many times over; past this we stop listening.
constexpr int kMaxDatagrams = 256;
constexpr std::size_t kMaxIgnoredNotes = 3;

// What the gateway (and the LAN, for SSDP) said so far.
struct Heard {
  bool upnp = false;
  bool upnp_device = false;  // an answer naming the InternetGatewayDevice itself, not a service
  std::string upnp_note;
  std::optional<portmap::PmpExternalAddressResponse> pmp;  // the best answer to our request
  std::optional<portmap::PcpResponse> pcp;                 // the first ANNOUNCE answer
  bool pcp_refused_by_pmp = false;  // a NAT-PMP-only gateway answered our PCP packet
  int ignored = 0;
  std::vector<std::string> ignored_notes;

  // ssdp:all brings the gateway's service answers too; the device's own answer makes the best
  // note, and it follows within milliseconds when the gateway has one.
  bool Done() const { return upnp_device && pmp && (pcp || pcp_refused_by_pmp); }

  void Ignore(const udp::endpoint& from, std::string_view why) {
    ++ignored;
    if (ignored_notes.size() < kMaxIgnoredNotes) {
      ignored_notes.push_back("ignored a datagram from " + from.address().to_string() + ":" +
                              std::to_string(from.port()) + ": " + std::string(why));
    }
  }
};

std::string Ipv4Text(const std::array<std::byte, 4>& b) {
  return netaddr::IpAddress::V4(b).ToString();
}

void OnPxpDatagram(ByteSpan data, const udp::endpoint& from, Heard& heard) {
  if (data.empty()) return heard.Ignore(from, "empty NAT-PMP/PCP datagram");
  if (data[0] == std::byte{portmap::kPmpVersion}) {
    auto r = portmap::ParsePmpExternalAddressResponse(data);
    if (!r) return heard.Ignore(from, portmap::Describe(r.error()));
    // Our NAT-PMP request is version 0, so "unsupported version" answers our PCP packet.
    if (r->result_code == portmap::kPmpResultUnsupportedVersion) {
      heard.pcp_refused_by_pmp = true;
      return;
    }
    const bool better = !heard.pmp || (heard.pmp->result_code != portmap::kPmpResultSuccess &&
                                       r->result_code == portmap::kPmpResultSuccess);
    if (better) heard.pmp = *r;
    return;
  }
  auto r = portmap::ParsePcpResponse(data);
  if (!r) return heard.Ignore(from, portmap::Describe(r.error()));
  if (r->opcode != portmap::kPcpOpAnnounce) {
    return heard.Ignore(
        from, "PCP answer to opcode " + std::to_string(r->opcode) + ", not to our ANNOUNCE");
  }
  if (!heard.pcp) {
    heard.pcp = *r;
    heard.pcp->body = {};  // aliases the receive buffer; not needed later
  }
}

void OnSsdpDatagram(ByteSpan data, const udp::endpoint& from, const asio::ip::address& gateway,
                    Heard& heard) {
  auto r = portmap::ParseSsdpResponse(data);
  if (!r) return heard.Ignore(from, portmap::Describe(r.error()));
  if (!portmap::IsInternetGatewayDevice(*r)) return;  // other UPnP devices on the LAN
  const bool device = r->st.find(":InternetGatewayDevice:") != std::string::npos;
  if (heard.upnp && (heard.upnp_device || !device)) return;  // duplicates
  heard.upnp = true;
  heard.upnp_device = device;
  heard.upnp_note = "UPnP: " + from.address().to_string() + ":" + std::to_string(from.port()) +
                    " answered as " + r->st;
  if (!r->server.empty()) heard.upnp_note += " (" + r->server + ")";
  if (!r->location.empty()) heard.upnp_note += ", description at " + r->location;
  if (from.address() != gateway) heard.upnp_note += "; it is not the default gateway";
}

asio::awaitable<void> ReceiveLoop(udp::socket& socket, udp::endpoint pxp, Heard& heard) {
  std::array<std::byte, 1500> buf{};
  for (int i = 0; i < kMaxDatagrams && !heard.Done(); ++i) {
    udp::endpoint from;
    auto [ec, n] = co_await socket.async_receive_from(asio::buffer(buf), from, net::kAsTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      heard.Ignore(from, "receive failed: " + ec.message());
      continue;
    }
    const ByteSpan data(buf.data(), n);
    // RFC 6886 §3.1 / RFC 6887 §8.3: only the gateway's own NAT-PMP/PCP port may answer those.
    if (from == pxp) {
      OnPxpDatagram(data, from, heard);
    } else {
      OnSsdpDatagram(data, from, pxp.address(), heard);
    }
  }
}

std::optional<netaddr::IpAddress> GatewayFromRouteFile() {
  std::ifstream in("/proc/net/route", std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  text.resize(kMaxRouteFileBytes);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return portmap::DefaultGatewayFromProcNetRoute(text);
}

// The address our datagrams to `gateway` leave from: PCP puts it in the request, and a mismatch
// with what the server sees is answered ADDRESS_MISMATCH. Connecting a UDP socket sends nothing.
asio::ip::address_v4 LocalAddressToward(const asio::any_io_executor& executor,
                                        const udp::endpoint& gateway) {
  udp::socket probe(executor);
  std::error_code ec;
  probe.open(udp::v4(), ec);
  if (!ec) probe.connect(gateway, ec);
  if (ec) return {};
  auto local = probe.local_endpoint(ec);
  if (ec || !local.address().is_v4()) return {};
  return local.address().to_v4();
}

std::string Seconds(std::uint32_t s) { return std::to_string(s) + " s"; }

void Summarise(const Heard& heard, PortMapResult& result) {
  result.upnp = heard.upnp;
  result.notes.push_back(heard.upnp ? heard.upnp_note
                                    : "UPnP: no Internet Gateway Device answered the M-SEARCH");

  result.pmp = heard.pmp && heard.pmp->result_code == portmap::kPmpResultSuccess;
  if (!heard.pmp) {
    result.notes.push_back("NAT-PMP: no answer");
  } else if (*result.pmp) {
    const std::string address =
        heard.pmp->external_ipv4 ? Ipv4Text(*heard.pmp->external_ipv4) : std::string("?");
    result.notes.push_back("NAT-PMP: public address " + address + " (gateway epoch " +
                           Seconds(heard.pmp->epoch_seconds) + ")");
  } else {
    const std::string_view name = portmap::PmpResultName(heard.pmp->result_code);
    result.notes.push_back("NAT-PMP: the gateway answered " +
                           std::string(name.empty() ? "result" : name) + " (" +
                           std::to_string(heard.pmp->result_code) + ")");
  }

  result.pcp = heard.pcp && heard.pcp->result_code == portmap::kPcpResultSuccess;
  if (heard.pcp) {
    const std::string_view name = portmap::PcpResultName(heard.pcp->result_code);
    result.notes.push_back("PCP: ANNOUNCE answered " + std::string(name.empty() ? "result" : name) +
                           " (" + std::to_string(heard.pcp->result_code) + ", gateway epoch " +
                           Seconds(heard.pcp->epoch_seconds) + ")");
  } else if (heard.pcp_refused_by_pmp) {
    result.notes.push_back(
        "PCP: not spoken (the gateway answered with NAT-PMP's UNSUPPORTED_VERSION)");
  } else {
    result.notes.push_back("PCP: no answer");
  }
  for (const std::string& n : heard.ignored_notes) result.notes.push_back(n);
  if (heard.ignored > static_cast<int>(heard.ignored_notes.size())) {
    result.notes.push_back(
        std::to_string(heard.ignored - static_cast<int>(heard.ignored_notes.size())) +
        " more datagrams ignored");
  }
}

}  // namespace

asio::awaitable<PortMapResult> ProbePortMapping(PortMapOptions options) {
  PortMapResult result;
  const auto executor = co_await asio::this_coro::executor;

  std::optional<netaddr::IpAddress> gateway_ip;
  if (options.gateway.empty()) {
    gateway_ip = GatewayFromRouteFile();
    if (!gateway_ip) {
      result.notes.push_back("no IPv4 default route in /proc/net/route: port mapping not checked");
      co_return result;
    }
  } else {
    auto parsed = netaddr::ParseIp(options.gateway);
    if (!parsed || !parsed->is_v4()) {
      result.notes.push_back("gateway " + options.gateway +
                             " is not an IPv4 address: port mapping not checked");
      co_return result;
    }
    gateway_ip = *parsed;
  }
  const auto gw_bytes = gateway_ip->v4_bytes();
  asio::ip::address_v4::bytes_type gw_raw{};
  for (std::size_t i = 0; i < gw_raw.size(); ++i) {
    gw_raw[i] = std::to_integer<unsigned char>(gw_bytes[i]);
  }
  const asio::ip::address_v4 gateway(gw_raw);
  result.gateway = gateway.to_string();
  result.notes.push_back("gateway " + result.gateway +
                         (options.gateway.empty() ? " (IPv4 default route)" : " (given)"));

  asio::ip::address_v4 bind_address;
  if (!options.bind_address.empty()) {
    std::error_code ec;
    bind_address = asio::ip::make_address_v4(options.bind_address, ec);
    if (ec) {
      result.notes.push_back("bind address " + options.bind_address +
                             " is not an IPv4 address: port mapping not checked");
      co_return result;
    }
  }
  udp::socket socket(executor);
  std::error_code ec;
  socket.open(udp::v4(), ec);
  if (!ec) socket.bind(udp::endpoint(bind_address, 0), ec);
  if (ec) {
    result.notes.push_back("UDP socket: " + ec.message() + ": port mapping not checked");
    co_return result;
  }

  const udp::endpoint pxp(gateway, options.pxp_port);
  const udp::endpoint ssdp(gateway, options.ssdp_port);
  const asio::ip::address_v4 me =
      bind_address.is_unspecified() ? LocalAddressToward(executor, pxp) : bind_address;

  Bytes pmp_request;
  portmap::AppendPmpExternalAddressRequest(pmp_request);
  Bytes pcp_request;
  const auto me_bytes = me.to_bytes();
  portmap::AppendPcpAnnounceRequest(
      pcp_request,
      netaddr::IpAddress::V4(me_bytes[0], me_bytes[1], me_bytes[2], me_bytes[3]).As16());
  std::string search_all;
  portmap::AppendSsdpSearch(search_all, portmap::kSearchTargetAll);
  std::string search_igd;
  portmap::AppendSsdpSearch(search_igd, portmap::kSearchTargetIgd);

  struct Send {
    asio::const_buffer bytes;
    udp::endpoint to;
  };
  std::vector<Send> sends = {{asio::buffer(pmp_request), pxp},
                             {asio::buffer(pcp_request), pxp},
                             {asio::buffer(search_all), ssdp},
                             {asio::buffer(search_igd), ssdp}};
  // Unicast first: it teaches a stateful host firewall to expect the gateway's unicast answers
  // to the multicast search too (Tailscale's reasoning, net/portmapper Probe).
  if (options.ssdp_multicast && !gateway.is_loopback()) {
    const udp::endpoint group(asio::ip::make_address_v4(std::string(portmap::kSsdpMulticastGroup)),
                              options.ssdp_port);
    if (!bind_address.is_unspecified()) {
      socket.set_option(asio::ip::multicast::outbound_interface(bind_address), ec);
    }
    sends.push_back({asio::buffer(search_all), group});
    sends.push_back({asio::buffer(search_igd), group});
  }
  for (const Send& s : sends) {
    auto [send_ec, n] = co_await socket.async_send_to(s.bytes, s.to, net::kAsTuple);
    if (send_ec) {
      result.notes.push_back("send to " + s.to.address().to_string() + ":" +
                             std::to_string(s.to.port()) + ": " + send_ec.message());
    }
  }

  Heard heard;
  asio::steady_timer deadline(executor, options.timeout);
  co_await (ReceiveLoop(socket, pxp, heard) || deadline.async_wait(net::kAsTuple));
  Summarise(heard, result);
  co_return result;
}

}  // namespace derpkit::netcheck
