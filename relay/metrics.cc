#include "relay/metrics.h"

#include <dirent.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>

#include "relay/cert_metrics.h"
#include "relay/http_routes.h"
#include "relay/server.h"

namespace derpkit::relay {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// CloseReasons that end a connection before its DERP session (or HTTP exchange) began.
constexpr std::array kHandshakeFailureReasons = {
    CloseReason::kHandshakeTimeout,    CloseReason::kTlsError,
    CloseReason::kBadProxyHeader,      CloseReason::kBadHttp,
    CloseReason::kHeadTooLarge,        CloseReason::kBadClientInfo,
    CloseReason::kFrameBeforeHandshake};

// The label values of StatsSnapshot::tls_versions, as derper spells them.
constexpr std::array<std::string_view, 2> kTlsVersionLabel = {"1.2", "1.3"};

// What the process looks like from /proc; a value that cannot be read is left out (for example
// the descriptor count while the process has none left to open /proc/self/fd with).
struct ProcessStats {
  std::optional<double> cpu_seconds;
  std::optional<double> start_time_seconds;
  std::optional<double> resident_memory_bytes;
  std::optional<double> open_fds;
  std::optional<double> max_fds;
};

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<double> ParseNumber(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  return v;
}

// The whitespace-separated fields of /proc/self/stat after "pid (comm) ": fields[0] is field 3
// (state) of proc(5). comm may itself contain spaces and parentheses, hence the last ')'.
std::vector<std::string_view> StatFields(std::string_view stat) {
  std::vector<std::string_view> fields;
  const std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return fields;
  std::size_t at = close + 1;
  while (at < stat.size()) {
    while (at < stat.size() && stat[at] == ' ') ++at;
    const std::size_t end = std::min(stat.find(' ', at), stat.size());
    if (end > at) fields.push_back(stat.substr(at, end - at));
    at = end;
  }
  return fields;
}

// The value after `key` on its line ("VmRSS:   1234 kB" -> 1234), or nullopt.
std::optional<double> FieldAfter(std::string_view text, std::string_view key) {
  std::size_t at = text.find(key);
  while (at != std::string_view::npos && at != 0 && text[at - 1] != '\n') {
    at = text.find(key, at + 1);
  }
  if (at == std::string_view::npos) return std::nullopt;
  at += key.size();
  while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
  const std::size_t end = text.find_first_of(" \t\n", at);
  return ParseNumber(text.substr(at, end == std::string_view::npos ? end : end - at));
}

std::optional<double> CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const std::string own = std::to_string(::dirfd(dir));
  double n = 0;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != ".." && name != own) ++n;
  }
  ::closedir(dir);
  return n;
}

ProcessStats ReadProcessStats() {
  ProcessStats p;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (const auto stat = ReadFile("/proc/self/stat"); stat && ticks > 0) {
    const auto fields = StatFields(*stat);
    // proc(5): utime is field 14, stime 15, starttime 22 (clock ticks after boot).
    if (fields.size() > 19) {
      const auto utime = ParseNumber(fields[11]);
      const auto stime = ParseNumber(fields[12]);
      if (utime && stime) p.cpu_seconds = (*utime + *stime) / static_cast<double>(ticks);
      const auto start = ParseNumber(fields[19]);
      const auto boot = FieldAfter(ReadFile("/proc/stat").value_or(""), "btime");
      if (start && boot) p.start_time_seconds = *boot + *start / static_cast<double>(ticks);
    }
  }
  if (const auto status = ReadFile("/proc/self/status")) {
    if (const auto kib = FieldAfter(*status, "VmRSS:")) p.resident_memory_bytes = *kib * 1024;
  }
  p.open_fds = CountOpenFds();
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    p.max_fds = limit.rlim_cur == RLIM_INFINITY ? HUGE_VAL : static_cast<double>(limit.rlim_cur);
  }
  return p;
}

// Builds the families in the order they are declared. A deque, so that the reference Family()
// returns stays valid while later families are added.
class Families {
 public:
  std::vector<MetricFamily> Take() {
    return {std::make_move_iterator(families_.begin()), std::make_move_iterator(families_.end())};
  }

  MetricFamily& Family(std::string_view name, std::string_view help, MetricType type) {
    return families_.emplace_back(MetricFamily{std::string(name), std::string(help), type, {}});
  }
  void Counter(std::string_view name, std::string_view help, double value) {
    Sample(Family(name, help, MetricType::Counter), value);
  }
  void Gauge(std::string_view name, std::string_view help, double value) {
    Sample(Family(name, help, MetricType::Gauge), value);
  }
  static void Sample(MetricFamily& f, double value, Labels labels = {}) {
    ClientMetric& m = f.metric.emplace_back();
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
  }
  // `counts` are per bucket (not cumulative), one more than `bounds`: the last is +Inf.
  static void Histogram(MetricFamily& f, std::span<const double> bounds,
                        std::span<const std::uint64_t> counts, double sum) {
    ClientMetric& m = f.metric.emplace_back();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      cumulative += counts[i];
      ClientMetric::Bucket b;
      b.cumulative_count = cumulative;
      b.upper_bound = i < bounds.size() ? bounds[i] : HUGE_VAL;
      m.histogram.bucket.push_back(b);
    }
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = sum;
  }
  void Histogram(std::string_view name, std::string_view help, const HistogramSnapshot& h) {
    Histogram(Family(name, help, MetricType::Histogram), h.bounds, h.counts, h.sum);
  }

 private:
  std::deque<MetricFamily> families_;
};

ClientMetric::Label L(std::string_view name, std::string_view value) {
  return {std::string(name), std::string(value)};
}

double D(std::uint64_t v) { return static_cast<double>(v); }
double D(std::int64_t v) { return static_cast<double>(v); }

void AddConnectionFamilies(Families& out, const StatsSnapshot& s) {
  out.Counter("derp_accepts_total",
              "DERP connections accepted: HTTP upgrades to DERP, WebSocket ones included.",
              D(s.derp_accepts));
  out.Counter("derp_websocket_accepts_total", "DERP connections accepted over WebSocket.",
              D(s.websocket_accepts));
  out.Counter("derp_tcp_accepts_total",
              "TCP connections accepted on the relay's listeners, whatever they carried.",
              D(s.accepts));
  out.Counter("derp_accept_errors_total",
              "Failed accept() calls on the relay's listeners (e.g. out of file descriptors).",
              D(s.accept_errors));
  out.Gauge("derp_current_connections", "DERP connections open now.", D(s.current_connections));
  out.Gauge("derp_current_home_connections",
            "DERP connections open now whose client has this relay as its home.",
            D(s.home_connections));
  out.Counter("derp_home_moves_in_total",
              "Times a connected client made this relay its home (NotePreferred true).",
              D(s.home_moves_in));
  out.Counter("derp_home_moves_out_total",
              "Times a connected client stopped having this relay as its home.",
              D(s.home_moves_out));

  const Registry::Totals& r = s.registry;
  out.Gauge("derp_clients_local", "Client keys with a connection to this relay.", D(r.keys_local));
  out.Gauge("derp_clients_remote",
            "Client keys reachable only through a mesh peer of this relay's region.",
            D(r.keys_remote));
  out.Gauge("derp_clients", "Client keys reachable in this relay's region.",
            D(r.keys_local + r.keys_remote));
  out.Gauge("derp_current_dup_client_keys", "Client keys with two or more connections now.",
            D(r.dup_keys));
  out.Gauge("derp_current_dup_client_conns",
            "Connections now belonging to keys with two or more connections.", D(r.dup_conns));
  out.Counter("derp_dup_client_conns_total",
              "Connections that were registered as a duplicate of a connected key.",
              D(r.total_dup_conns));
  out.Gauge("derp_watchers", "Mesh peers' connections watching this relay's clients come and go.",
            D(r.watchers));

  auto& closed = out.Family("derp_connections_closed_total",
                            "Connections that ended (DERP, HTTP and failed ones), by reason.",
                            MetricType::Counter);
  for (std::size_t i = 0; i < kCloseReasonCount; ++i) {
    Families::Sample(closed, D(s.closes[i]), {L("reason", kCloseReasonLabel[i])});
  }
  auto& failed = out.Family(
      "derp_handshake_failures_total",
      "Connections that ended before their DERP session or HTTP exchange began, by reason.",
      MetricType::Counter);
  for (CloseReason reason : kHandshakeFailureReasons) {
    Families::Sample(failed, D(s.closed(reason)),
                     {L("reason", kCloseReasonLabel[static_cast<std::size_t>(reason)])});
  }
  out.Histogram("derp_connection_duration_seconds", "How long DERP connections lasted.",
                s.connection_seconds);
}

void AddPacketFamilies(Families& out, const StatsSnapshot& s) {
  auto& received = out.Family("derp_packets_received_total",
                              "Packets clients sent through the relay, by kind (disco or other).",
                              MetricType::Counter);
  for (std::size_t k = 0; k < kPacketKindCount; ++k) {
    Families::Sample(received, D(s.packets_received_kind[k]), {L("kind", kPacketKindLabel[k])});
  }
  out.Counter("derp_bytes_received_total", "Payload bytes of the packets clients sent.",
              D(s.bytes_received));
  out.Counter("derp_packets_sent_total", "Packets the relay wrote to their destination client.",
              D(s.packets_sent));
  out.Counter("derp_bytes_sent_total", "Payload bytes of the packets written to clients.",
              D(s.bytes_sent));

  auto& dropped =
      out.Family("derp_packets_dropped_total",
                 "Packets the relay did not deliver, by reason and kind.", MetricType::Counter);
  auto& dropped_bytes =
      out.Family("derp_bytes_dropped_total",
                 "Payload bytes of undelivered packets, by reason and kind.", MetricType::Counter);
  for (std::size_t r = 0; r < kDropReasonCount; ++r) {
    for (std::size_t k = 0; k < kPacketKindCount; ++k) {
      const Labels labels = {L("reason", kDropReasonLabel[r]), L("kind", kPacketKindLabel[k])};
      Families::Sample(dropped, D(s.packets_dropped_by_kind[r][k]), labels);
      Families::Sample(dropped_bytes, D(s.bytes_dropped_by_kind[r][k]), labels);
    }
  }

  out.Counter("derp_packets_forwarded_in_total",
              "Packets mesh peers forwarded to this relay (ForwardPacket frames received).",
              D(s.packets_forwarded_in));
  out.Counter("derp_packets_forwarded_out_total",
              "Packets this relay forwarded to mesh peers (ForwardPacket frames written).",
              D(s.packets_forwarded_out));
  out.Counter("derp_got_ping_total", "Ping frames received from clients.", D(s.got_ping));
  out.Counter("derp_sent_pong_total", "Pong frames sent to clients.", D(s.sent_pong));
  auto& gone = out.Family("derp_peer_gone_frames_total",
                          "PeerGone frames sent to clients, by reason.", MetricType::Counter);
  Families::Sample(gone, D(s.peer_gone_disconnected_frames), {L("reason", "disconnected")});
  Families::Sample(gone, D(s.peer_gone_not_here_frames), {L("reason", "not_here")});
  out.Counter("derp_unknown_frames_total",
              "Frames clients sent that the relay does not act on (unknown or server-to-client "
              "types, Pong, a second ClientInfo): skipped, as derper does.",
              D(s.unknown_frames));
  out.Counter("derp_keepalives_sent_total", "KeepAlive frames sent to clients.",
              D(s.keepalives_sent));
  out.Counter("derp_write_timeouts_total",
              "Writes to clients that took no byte of them for --tcp-write-timeout, and Pongs the "
              "client took no byte of for as long.",
              D(s.write_timeouts));
  out.Counter("derp_sender_pauses_total",
              "Times the relay stopped reading a sender because a receiver it sends to had more "
              "than a quarter of --send-queue-bytes queued (back-pressure instead of drops).",
              D(s.sender_pauses));
  out.Histogram("derp_queue_duration_seconds",
                "How long delivered packets waited in the relay, from the read that brought "
                "them (or the drain of their shard's mailbox) until their write.",
                s.queue_delay_seconds);
  out.Histogram("derp_frames_per_write", "Frames written to a client per socket write.",
                s.frames_per_write);

  const Registry::Totals& r = s.registry;
  out.Counter("derp_multiforwarder_created_total",
              "Times a key became reachable through two or more mesh peers.",
              D(r.multiforwarder_created));
  out.Counter("derp_multiforwarder_deleted_total",
              "Times a key went back to being reachable through at most one mesh peer.",
              D(r.multiforwarder_deleted));
  out.Counter("derp_packet_forwarder_delete_other_total",
              "Removals of a mesh forwarder that was not the one registered for the key.",
              D(r.forwarder_delete_other));
}

void AddMeshFamilies(Families& out, const Server& server) {
  struct Link {
    double up = 0, connects = 0, disconnects = 0, forwarded = 0, dropped = 0, keys = 0;
  };
  // By peer name: a name repeated in --mesh-with gets one series (its links summed).
  std::map<std::string, Link> links;
  for (const auto& link : server.mesh_links()) {
    const MeshLinkStats& st = link->stats();
    if (st.is_self.load(std::memory_order_relaxed)) continue;
    Link& l = links[link->peer().name];
    l.up += st.connected.load(std::memory_order_relaxed) ? 1 : 0;
    l.connects += D(st.connects.load(std::memory_order_relaxed));
    l.disconnects += D(st.disconnects.load(std::memory_order_relaxed));
    l.forwarded += D(st.forwarded.load(std::memory_order_relaxed));
    l.dropped += D(st.dropped.load(std::memory_order_relaxed));
    l.keys += D(st.keys.load(std::memory_order_relaxed));
  }
  if (links.empty()) return;
  struct Column {
    std::string_view name, help;
    MetricType type;
    double Link::*value;
  };
  static constexpr std::array<Column, 6> kColumns = {{
      {"derp_mesh_link_up", "Whether the mesh link to the peer is connected (1) or not (0).",
       MetricType::Gauge, &Link::up},
      {"derp_mesh_link_connects_total",
       "Times the mesh link to the peer connected; more than 1 means it reconnected.",
       MetricType::Counter, &Link::connects},
      {"derp_mesh_link_disconnects_total", "Times the mesh link to the peer broke.",
       MetricType::Counter, &Link::disconnects},
      {"derp_mesh_link_forwarded_packets_total",
       "Packets forwarded to the peer over the mesh link.", MetricType::Counter, &Link::forwarded},
      {"derp_mesh_link_dropped_packets_total",
       "Packets for the peer dropped because the link was down or its queue full.",
       MetricType::Counter, &Link::dropped},
      {"derp_mesh_link_keys", "Client keys the peer reports as connected to it.", MetricType::Gauge,
       &Link::keys},
  }};
  for (const Column& c : kColumns) {
    auto& f = out.Family(c.name, c.help, c.type);
    for (const auto& [name, link] : links) Families::Sample(f, link.*c.value, {L("peer", name)});
  }
}

void AddShardFamilies(Families& out, const StatsSnapshot& s) {
  auto& conns = out.Family("derp_shard_connections", "DERP connections open now, by shard.",
                           MetricType::Gauge);
  auto& received =
      out.Family("derp_shard_packets_received_total",
                 "Packets clients sent, by the shard that read them.", MetricType::Counter);
  auto& sent =
      out.Family("derp_shard_packets_sent_total",
                 "Packets written to clients, by the shard that wrote them.", MetricType::Counter);
  auto& crossed =
      out.Family("derp_shard_cross_shard_packets_total",
                 "Packets a shard handed to another shard for delivery.", MetricType::Counter);
  auto& moved = out.Family(
      "derp_shard_connections_moved_in_total",
      "Connections that moved to this shard to be with the peer they talk to (--workers > 1).",
      MetricType::Counter);
  auto& cpu = out.Family("derp_shard_cpu_seconds_total",
                         "CPU time of the shard's thread, as its ticker last read it (every "
                         "250 ms by default; at most 1 s old).",
                         MetricType::Counter);
  for (std::size_t i = 0; i < s.shards.size(); ++i) {
    const Labels shard = {L("shard", std::to_string(i))};
    const ShardLoad& load = s.shards[i];
    Families::Sample(conns, D(load.connections), shard);
    Families::Sample(received, D(load.packets_received), shard);
    Families::Sample(sent, D(load.packets_sent), shard);
    Families::Sample(crossed, D(load.cross_shard_packets), shard);
    Families::Sample(moved, D(load.connections_moved_in), shard);
    Families::Sample(cpu, load.cpu_seconds, shard);
  }
}

void AddHttpAndTlsFamilies(Families& out, const StatsSnapshot& s) {
  auto& http =
      out.Family("derp_http_requests_total",
                 "HTTP requests answered (not DERP upgrades), by route.", MetricType::Counter);
  for (std::size_t i = 0; i < kRouteIdCount; ++i) {
    Families::Sample(http, D(s.http_requests_by_route[i]),
                     {L("route", RouteName(static_cast<RouteId>(i)))});
  }
  // derper's names; like its limiter, ours counts connections, before any TLS handshake.
  out.Counter("tls_listener_accepted_connections_total",
              "Connections the main listener accepted within --accept-connection-limit.",
              D(s.listener_accepted));
  out.Counter("tls_listener_rejected_connections_total",
              "Connections the main listener closed at once for exceeding "
              "--accept-connection-limit.",
              D(s.listener_rejected));
  auto& versions =
      out.Family("derper_tls_request_version_total",
                 "TLS handshakes that completed, by negotiated TLS version.", MetricType::Counter);
  for (std::size_t i = 0; i < kTlsVersionLabel.size(); ++i) {
    Families::Sample(versions, D(s.tls_versions[i]), {L("version", kTlsVersionLabel[i])});
  }
  out.Counter("derp_tls13_record_layer_connections_total",
              "TLS 1.3 connections handed from OpenSSL to the relay's own record layer after the "
              "handshake (the other TLS connections stay on OpenSSL).",
              D(s.tls13_record_layer));
  out.Counter("derp_proxy_header_failures_total",
              "Connections closed for a missing or malformed PROXY protocol header.",
              D(s.proxy_header_failures));
}

// /bootstrap-dns (relay/bootstrap_dns.h): derper's counters, and how the refreshes fare.
void AddBootstrapDnsFamilies(Families& out, const BootstrapDnsStats& s) {
  // derper's bootstrap_dns_requests is derp_http_requests_total{route="bootstrap_dns"}.
  constexpr std::array<std::string_view, kBootstrapDnsCounterCount> kHelp = {
      "?q= requests for a published name that has addresses.",
      "?q= requests for a published name without addresses.",
      "?q= requests for an unpublished name that has addresses.",
      "?q= requests for a name in neither list.",
      "?q= requests for an unpublished name from a caller outside its rollout percentage."};
  for (std::size_t i = 0; i < kBootstrapDnsCounterCount; ++i) {
    out.Counter(kBootstrapDnsCounterName[i], kHelp[i], D(s.counters[i]));
  }
  out.Gauge("bootstrap_dns_queried_domains",
            "Distinct ?q= names seen (the set is cleared past 500).", D(s.queried_domains));
  auto& failures = out.Family("derp_bootstrap_dns_lookup_failures_total",
                              "Failed lookups of the background refresh of bootstrap DNS names.",
                              MetricType::Counter);
  for (std::size_t i = 0; i < kDnsLookupFailureCount; ++i) {
    Families::Sample(failures, D(s.lookup_failures[i]), {L("reason", kDnsLookupFailureLabel[i])});
  }
}

void AddStunFamilies(Families& out, const StunStatsSnapshot& s) {
  auto& requests = out.Family("stun_requests_total",
                              "Datagrams the STUN responder received, by what became of them.",
                              MetricType::Counter);
  for (std::size_t i = 0; i < kStunDispositionCount; ++i) {
    Families::Sample(requests, D(s.requests[i]), {L("disposition", kStunDispositionLabel[i])});
  }
  auto& family =
      out.Family("stun_addrfamily_total", "STUN requests answered, by the client's address family.",
                 MetricType::Counter);
  for (std::size_t i = 0; i < kStunAddrFamilyCount; ++i) {
    Families::Sample(family, D(s.addr_family[i]), {L("family", kStunAddrFamilyLabel[i])});
  }
  Families::Histogram(
      out.Family("stun_response_duration_seconds",
                 "Time from reading a STUN request's batch to its reply being sent.",
                 MetricType::Histogram),
      kStunResponseBounds, s.response_buckets, s.response_seconds_sum);
}

// Client verification (relay/admission.h); every series exists from the start, also when no
// check is configured.
void AddAdmissionFamilies(Families& out, const AdmissionStats& a) {
  auto& admitted =
      out.Family("derp_admission_admitted_total",
                 "Clients admitted by client verification, by how.", MetricType::Counter);
  for (std::size_t i = 0; i < kAdmitViaCount; ++i) {
    Families::Sample(admitted, D(a.admitted[i]), {L("via", kAdmitViaLabel[i])});
  }
  auto& refused = out.Family("derp_admission_refusals_total",
                             "Clients refused by client verification (and closed), by reason.",
                             MetricType::Counter);
  for (std::size_t i = 0; i < kRefusalCount; ++i) {
    Families::Sample(refused, D(a.refused[i]), {L("reason", kRefusalLabel[i])});
  }
  out.Counter("derp_admission_cache_hits_total",
              "Verification decisions answered from the decision cache.", D(a.cache_hits));
  auto& requests = out.Family("derp_admission_verifier_requests_total",
                              "Requests sent to a verifier (tailscaled or the admission URL).",
                              MetricType::Counter);
  Families::Sample(requests, D(a.tailscaled_requests), {L("verifier", "tailscaled")});
  Families::Sample(requests, D(a.url_requests), {L("verifier", "url")});
  out.Gauge("derp_admission_in_flight", "Verifications asked and not yet answered.",
            D(a.in_flight));
  out.Gauge("derp_admission_cache_entries", "Decisions in the verification cache.",
            D(a.cache_entries));
  out.Gauge("derp_admission_allow_keys", "Node keys in force from --allow-keys-file.",
            static_cast<double>(a.allow_keys.keys));
  auto& reloads = out.Family("derp_admission_allow_keys_reloads_total",
                             "Changed --allow-keys-file versions loaded (ok) or refused (error).",
                             MetricType::Counter);
  Families::Sample(reloads, D(a.allow_keys.reloads), {L("result", "ok")});
  Families::Sample(reloads, D(a.allow_keys.reload_errors), {L("result", "error")});
}

void AddProcessFamilies(Families& out, const Server& server) {
  const ProcessStats p = ReadProcessStats();
  if (p.open_fds) {
    out.Gauge("derp_current_file_descriptors", "File descriptors the relay has open.", *p.open_fds);
    out.Gauge("process_open_fds", "Number of open file descriptors.", *p.open_fds);
  }
  if (p.max_fds) {
    out.Gauge("process_max_fds", "Maximum number of open file descriptors.", *p.max_fds);
  }
  if (p.resident_memory_bytes) {
    out.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
              *p.resident_memory_bytes);
  }
  if (p.cpu_seconds) {
    out.Counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                *p.cpu_seconds);
  }
  if (p.start_time_seconds) {
    out.Gauge("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.", *p.start_time_seconds);
  }
  out.Gauge("derp_uptime_seconds", "Seconds since the relay started.",
            std::chrono::duration<double>(std::chrono::steady_clock::now() - server.start_time())
                .count());
  Families::Sample(out.Family("derpkit_build_info",
                              "Always 1; the version label says which derpkit build this is.",
                              MetricType::Gauge),
                   1, {L("version", kDerpkitVersion)});
}

std::string FormatBound(double bound) {
  if (std::isinf(bound)) return "+Inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, bound);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

// Integers stay integers in the JSON (expvar prints counters as integers).
nlohmann::ordered_json JsonNumber(double v) {
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < kExactIntegers) {
    return static_cast<std::int64_t>(v);
  }
  return v;
}

nlohmann::ordered_json JsonValue(const MetricFamily& f, const ClientMetric& m) {
  switch (f.type) {
    case MetricType::Counter:
      return JsonNumber(m.counter.value);
    case MetricType::Histogram: {
      nlohmann::ordered_json h;
      h["count"] = m.histogram.sample_count;
      h["sum"] = JsonNumber(m.histogram.sample_sum);
      auto& buckets = h["buckets"] = nlohmann::ordered_json::object();
      for (const auto& b : m.histogram.bucket)
        buckets[FormatBound(b.upper_bound)] = b.cumulative_count;
      return h;
    }
    default:
      return JsonNumber(m.gauge.value);
  }
}

}  // namespace

std::vector<MetricFamily> RelayCollector::Collect() const {
  const StatsSnapshot s = server_.Snapshot();
  Families out;
  AddConnectionFamilies(out, s);
  AddPacketFamilies(out, s);
  AddMeshFamilies(out, server_);
  AddShardFamilies(out, s);
  AddHttpAndTlsFamilies(out, s);
  AddBootstrapDnsFamilies(out, s.bootstrap_dns);
  AddStunFamilies(out, server_.stun_stats().Snapshot());
  AddAdmissionFamilies(out, server_.admission().Snapshot());
  AddProcessFamilies(out, server_);
  std::vector<MetricFamily> families = out.Take();
  if (const CertManager* certs = server_.certs()) AppendCertMetrics(*certs, families);
  return families;
}

std::string RenderPrometheus(const Server& server) {
  return prometheus::TextSerializer().Serialize(RelayCollector(server).Collect());
}

std::string RenderVarsJson(const Server& server) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const MetricFamily& f : RelayCollector(server).Collect()) {
    if (f.metric.size() == 1 && f.metric[0].label.empty()) {
      out[f.name] = JsonValue(f, f.metric[0]);
      continue;
    }
    auto& series = out[f.name] = nlohmann::ordered_json::object();
    for (const ClientMetric& m : f.metric) {
      std::string key;
      for (const auto& label : m.label) {
        if (!key.empty()) key += ',';
        key += label.name + "=" + label.value;
      }
      series[key] = JsonValue(f, m);
    }
  }
  return out.dump();
}

}  // namespace derpkit::relay
