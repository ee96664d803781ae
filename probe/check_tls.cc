// The tls check (checks.h): plain asio TCP and an asio::ssl handshake judged by lib/net/tls.h
// exactly as a DERP client judges it (a sha256-raw pin alone, else the chain for CertName or
// HostName), then the dates of the chain the server sent, read with OpenSSL.
//
// Which certificates are judged: every one but derper's meta certificate (reported, never judged:
// it lives 30 days and is renewed at every restart) and self-signed certificates other than the
// leaf (roots a server sends along; clients never rely on their dates). The leaf is always
// judged, also when self-signed: a pinned self-signed leaf is exactly what clients check the
// dates of, and the reference's SKI==AKI rule would skip it (its false negative).
//
// No revocation check: the reference fetches the leaf's CRL; we do not, yet.
//
// Thread affinity: a coroutine on the io_context given; it owns its socket, TLS context and
// stream, and the race that bounds it waits for every branch before it reads them.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <asio/ssl.hpp>
#include <cctype>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "lib/derpclient/node_options.h"
#include "lib/net/openssl_util.h"
#include "lib/net/tls.h"
#include "lib/util/go_format.h"
#include "lib/util/netaddr.h"
#include "probe/check_common.h"
#include "probe/checks.h"

namespace derpkit::probe {
namespace {

using check_detail::Clock;
using tcp = asio::ip::tcp;

// --- Reading certificates -------------------------------------------------------------------

// The last CN of `name` (as Go's pkix.Name), else the whole name in one line.
std::string NameText(const X509_NAME* name) {
  int index = -1;
  int last = -1;
  while ((index = X509_NAME_get_index_by_NID(name, NID_commonName, index)) >= 0) last = index;
  if (last >= 0) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last));
    unsigned char* utf8 = nullptr;
    const int size = ASN1_STRING_to_UTF8(&utf8, data);
    if (size >= 0) {
      std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
      OPENSSL_free(utf8);
      if (!cn.empty()) return cn;
    }
  }
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  std::string text = "?";
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE) >= 0) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    text.assign(data, static_cast<std::size_t>(size));
  }
  BIO_free(bio);
  return text;
}

std::optional<SystemTime> ToSystemTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// "2026-12-02T10:00:00Z" (certificate times are whole seconds).
std::string Rfc3339(SystemTime t) {
  return GoRfc3339Nano(std::chrono::floor<std::chrono::seconds>(t));
}

// "2 days", "1 day", "5 hours", "12 minutes"
std::string SpanText(std::chrono::seconds d) {
  auto unit = [](long long n, const char* word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
  };
  if (d >= std::chrono::hours(24)) return unit(d.count() / 86400, "day");
  if (d >= std::chrono::hours(1)) return unit(d.count() / 3600, "hour");
  return unit(std::max<long long>(d.count() / 60, 0), "minute");
}

// "7-day", "36-hour", "90-second"
std::string WarningText(std::chrono::seconds w) {
  if (w.count() > 0 && w.count() % 86400 == 0) return std::to_string(w.count() / 86400) + "-day";
  if (w.count() > 0 && w.count() % 3600 == 0) return std::to_string(w.count() / 3600) + "-hour";
  return std::to_string(w.count()) + "-second";
}

// Issuer == subject and nothing names another key (no AKI, or AKI == SKI).
bool IsSelfSigned(X509* cert) {
  if (X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) != 0) return false;
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert);
  if (aki == nullptr) return true;
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert);
  return ski != nullptr && ASN1_OCTET_STRING_cmp(ski, aki) == 0;
}

struct ChainReport {
  CertFacts facts;
  std::vector<std::string> problems;  // date problems, in chain order
  std::string first_non_meta_sha256;  // what a pin is compared with
  bool leaf_self_signed = false;
};

// Reads the peer chain (leaf first); nullopt when the server sent none.
std::optional<ChainReport> JudgeChain(SSL* ssl, std::chrono::seconds expiry_warning) {
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  const int count = chain == nullptr ? 0 : sk_X509_num(chain);
  if (count == 0) return std::nullopt;
  ChainReport report;
  const SystemTime now = std::chrono::system_clock::now();
  const SystemTime warn_before = now + expiry_warning;
  bool saw_leaf = false;
  std::optional<SystemTime> earliest;
  for (int i = 0; i < count; ++i) {
    X509* cert = sk_X509_value(chain, i);
    const std::vector<unsigned char> der = net::internal::CertDer(cert);
    if (net::ParseMetaCertDer(der)) {
      report.facts.meta_cert_seen = true;
      continue;
    }
    const bool leaf = !saw_leaf;
    saw_leaf = true;
    const std::string subject = NameText(X509_get_subject_name(cert));
    const std::optional<SystemTime> not_before = ToSystemTime(X509_get0_notBefore(cert));
    const std::optional<SystemTime> not_after = ToSystemTime(X509_get0_notAfter(cert));
    if (leaf) {
      report.first_non_meta_sha256 = net::internal::Sha256Hex(der);
      report.leaf_self_signed = IsSelfSigned(cert);
      report.facts.subject = subject;
      report.facts.issuer = NameText(X509_get_issuer_name(cert));
      if (not_before) report.facts.not_before = *not_before;
      if (not_after) report.facts.not_after = *not_after;
    } else if (IsSelfSigned(cert)) {
      continue;
    }
    if (!not_before || !not_after) {
      report.problems.push_back("certificate " + subject + " has unreadable validity dates");
      continue;
    }
    if (!earliest || *not_after < *earliest) earliest = *not_after;
    if (*not_before > now) {
      report.problems.push_back("certificate " + subject + " is not valid before " +
                                Rfc3339(*not_before) + " (is the clock right?)");
    }
    if (*not_after <= now) {
      const auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - *not_after);
      report.problems.push_back("certificate " + subject + " expired " + SpanText(ago) + " ago (" +
                                Rfc3339(*not_after) + ")");
    } else if (*not_after < warn_before) {
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(*not_after - now);
      report.problems.push_back("certificate " + subject + " expires in " + SpanText(left) + " (" +
                                Rfc3339(*not_after) + "), within the " +
                                WarningText(expiry_warning) + " warning");
    }
  }
  if (earliest) report.facts.earliest_not_after = *earliest;
  return report;
}

std::string ToLower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string Joined(const std::vector<std::string>& parts) {
  std::string text;
  for (const std::string& p : parts) text += (text.empty() ? "" : "; ") + p;
  return text;
}

// lib/net's messages start with "TLS: ", "TLS handshake failed: " or "TLS certificate ..."; ours
// already say TLS.
std::string WithoutTlsPrefix(std::string text) {
  for (std::string_view prefix : {"TLS handshake failed: ", "TLS: ", "TLS "}) {
    if (text.starts_with(prefix)) return text.substr(prefix.size());
  }
  return text;
}

// What a handshake error most likely means, when OpenSSL's words alone are cryptic.
std::string HandshakeHint(const std::error_code& ec) {
  if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof) {
    return " (the server closed the connection during the handshake: not TLS on this port, or "
           "SNI refused?)";
  }
  if (ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_WRONG_VERSION_NUMBER) {
    return " (the server does not speak TLS on this port: plain HTTP?)";
  }
  return "";
}

// --- The check --------------------------------------------------------------------------------

struct TlsRun {
  TlsRun(asio::io_context& io, asio::ssl::context& context) : resolver(io), stream(io, context) {}
  tcp::resolver resolver;
  asio::ssl::stream<tcp::socket> stream;
  std::string where;  // "127.0.0.1:443", "[::1]:443" or "derp.example.com:443" before DNS
  std::string step = "starting";
  bool connected = false;
  std::error_code handshake_error;
  bool handshake_done = false;
  Clock::time_point connect_start{};
  std::chrono::nanoseconds latency{0};

  void Abort() {
    resolver.cancel();
    std::error_code ignored;
    stream.lowest_layer().close(ignored);
  }
};

// Resolves (when the node has no usable literal), connects and shakes hands. Returns an error
// for the steps before the handshake; the handshake's outcome stays in `run`.
asio::awaitable<std::string> Connect(TlsRun& run, const derpmap::Node& node,
                                     const std::string& dial_host, std::uint16_t port,
                                     const net::TlsClientOptions& tls) {
  co_await asio::this_coro::throw_if_cancelled(false);
  std::vector<tcp::endpoint> endpoints;
  if (dial_host.empty()) {
    run.step = "resolving " + node.host_name;
    auto [ec, results] =
        co_await run.resolver.async_resolve(node.host_name, std::to_string(port), net::kAsTuple);
    if (ec) co_return "resolve " + node.host_name + ": " + ec.message();
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  } else {
    std::error_code ec;
    const asio::ip::address address = asio::ip::make_address(dial_host, ec);
    if (ec) co_return "dial address " + dial_host + " is not an IP address";
    endpoints.emplace_back(address, port);
  }
  run.step = "connecting";
  run.connect_start = Clock::now();
  auto [cec, endpoint] =
      co_await asio::async_connect(run.stream.lowest_layer(), endpoints, net::kAsTuple);
  if (cec) co_return "connect: " + cec.message();
  run.connected = true;
  run.where = netaddr::JoinHostPort(endpoint.address().to_string(), endpoint.port());
  run.step = "in the TLS handshake";
  net::PrepareClientSsl(run.stream.native_handle(), tls);
  auto [hec] = co_await run.stream.async_handshake(asio::ssl::stream_base::client, net::kAsTuple);
  run.handshake_error = hec;
  run.handshake_done = true;
  run.latency = Clock::now() - run.connect_start;
  co_return "";
}

asio::awaitable<ProbeResult> TlsCheck(asio::io_context& io, derpmap::Node node,
                                      TlsCheckOptions options) {
  ProbeResult result;
  const std::uint16_t port = node.EffectiveDerpPort();
  const std::string dial_host = derpclient::NodeDialHost(node);
  net::TlsClientOptions tls;
  tls.server_name = node.host_name;
  tls.cert_name = node.cert_name;
  tls.ca_file = options.ca_file;
  tls.insecure = node.insecure_for_tests;
  const bool pinned = node.cert_name.starts_with(net::kCertNamePinPrefix);
  std::string where = netaddr::JoinHostPort(dial_host.empty() ? node.host_name : dial_host, port);

  std::unique_ptr<asio::ssl::context> context;
  try {
    context = net::MakeClientContext(tls);
  } catch (const std::exception& e) {
    result.error = node.name + " (" + where + "): TLS set-up: " + e.what();
    co_return result;
  }
  TlsRun run(io, *context);
  run.where = where;
  auto connect = Connect(run, node, dial_host, port, tls);
  auto bounded = co_await check_detail::RunBounded(
      std::move(connect), Clock::now() + options.timeout, [&run] { run.Abort(); });
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  SSL* ssl = run.stream.native_handle();
  const std::string prefix = node.name + " (" + run.where + "): ";

  // The chain, whenever one arrived: also on failure, so expiry can be charted while failing.
  std::optional<ChainReport> chain;
  if (run.connected) chain = JudgeChain(ssl, options.expiry_warning);
  if (chain) {
    chain->facts.pinned = pinned;
    if (run.handshake_done && !run.handshake_error) chain->facts.tls_version = SSL_get_version(ssl);
    result.cert = chain->facts;
  }
  std::error_code ignored;
  run.stream.lowest_layer().close(ignored);

  if (bounded.timed_out) {
    result.error =
        prefix + "timed out after " + check_detail::DurationText(options.timeout) + " " + run.step;
    co_return result;
  }
  if (state.cancelled() != asio::cancellation_type::none || !bounded.exception.empty()) {
    result.error = prefix + "cancelled " + run.step;
    co_return result;
  }
  if (bounded.value && !bounded.value->empty()) {
    result.error = prefix + *bounded.value;
    co_return result;
  }
  if (!run.handshake_done) {
    result.error = prefix + "ended early " + run.step;
    co_return result;
  }
  if (run.handshake_error) {
    const std::string expected_pin =
        pinned ? ToLower(node.cert_name.substr(net::kCertNamePinPrefix.size())) : "";
    std::string what;
    if (pinned && chain && !chain->first_non_meta_sha256.empty() &&
        chain->first_non_meta_sha256 != expected_pin) {
      what = "pin mismatch: map says sha256-raw:" + expected_pin +
             ", server sent sha256-raw:" + chain->first_non_meta_sha256;
    } else {
      what = "TLS handshake: " +
             WithoutTlsPrefix(net::DescribeHandshakeFailure(ssl, run.handshake_error)) +
             HandshakeHint(run.handshake_error);
      // A self-signed relay judged by a CA: say how a DERP map trusts it instead.
      if (!pinned && chain && chain->leaf_self_signed) {
        what += " (a self-signed certificate: pin it in the map with CertName \"sha256-raw:" +
                chain->first_non_meta_sha256 + "\", or trust it with --ca-file)";
      }
    }
    if (chain && !chain->problems.empty()) what += "; " + Joined(chain->problems);
    result.error = prefix + what;
    co_return result;
  }
  if (std::string problem = net::CheckPeerAfterHandshake(ssl, tls); !problem.empty()) {
    result.error = prefix + "TLS peer check: " + WithoutTlsPrefix(std::move(problem));
    co_return result;
  }
  if (!chain) {
    result.error = prefix + "the server sent no certificate";
    co_return result;
  }
  if (!chain->problems.empty()) {
    result.error = prefix + Joined(chain->problems);
    co_return result;
  }
  result.ok = true;
  result.latency = run.latency;
  co_return result;
}

}  // namespace

// Runs the body with throw_if_cancelled off, so that a cancelled run ends with a result instead
// of an exception, then restores the caller's setting (it belongs to the whole coroutine thread).
asio::awaitable<ProbeResult> CheckTls(asio::io_context& io, derpmap::Node node,
                                      TlsCheckOptions options) {
  const bool throws = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  auto check = TlsCheck(io, std::move(node), std::move(options));
  ProbeResult result = co_await std::move(check);
  co_await asio::this_coro::throw_if_cancelled(throws);
  co_return result;
}

}  // namespace derpkit::probe
