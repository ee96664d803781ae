// Metric families of the certificate thread (see cert_metrics.h).
#include "relay/cert_metrics.h"

#include <string>
#include <string_view>

#include "relay/cert_manager.h"

namespace derpkit::relay {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily& CertFamily(std::vector<MetricFamily>& out, std::string_view name,
                         std::string_view help, MetricType type) {
  return out.emplace_back(MetricFamily{std::string(name), std::string(help), type, {}});
}

void CertSample(MetricFamily& family, double value, std::string_view label = {},
                std::string_view label_value = {}) {
  ClientMetric& m = family.metric.emplace_back();
  if (!label.empty()) m.label.push_back({std::string(label), std::string(label_value)});
  if (family.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
}

double CertCount(std::uint64_t v) { return static_cast<double>(v); }

}  // namespace

void AppendCertMetrics(const CertManager& certs, std::vector<MetricFamily>& out) {
  const CertStats& s = certs.stats();
  CertSample(
      CertFamily(
          out, "derp_tls_cert_reloads_total",
          "TLS certificates put in service after start-up (file reloads and ACME issuances).",
          MetricType::Counter),
      CertCount(s.installs.load()));
  auto& refused =
      CertFamily(out, "derp_tls_cert_reload_failures_total",
                 "New TLS certificate pairs refused (the previous one kept serving), by "
                 "reason.",
                 MetricType::Counter);
  for (std::size_t i = 0; i < kCertProblemCount; ++i) {
    CertSample(refused, CertCount(s.refused[i].load()), "reason",
               CertProblemLabel(static_cast<CertProblem>(i)));
  }
  CertSample(
      CertFamily(out, "derp_tls_cert_expiry_timestamp_seconds",
                 "When the TLS certificate in service expires (Unix time); 0 while there is none.",
                 MetricType::Gauge),
      static_cast<double>(s.not_after_unix.load()));
  if (!certs.acme()) return;
  CertSample(CertFamily(out, "derp_acme_certificates_issued_total",
                        "Certificates the ACME CA issued to this relay.", MetricType::Counter),
             CertCount(s.acme_issued.load()));
  auto& failures =
      CertFamily(out, "derp_acme_failures_total",
                 "ACME issuances or renewals that failed, by reason.", MetricType::Counter);
  for (std::size_t i = 0; i < acme::kFailureKindCount; ++i) {
    CertSample(failures, CertCount(s.acme_failures[i].load()), "reason",
               acme::FailureKindLabel(static_cast<acme::FailureKind>(i)));
  }
  CertSample(
      CertFamily(out, "derp_acme_next_attempt_timestamp_seconds",
                 "When the next ACME issuance or renewal is due (Unix time).", MetricType::Gauge),
      static_cast<double>(s.acme_next_attempt_unix.load()));
  auto& answered = CertFamily(out, "derp_acme_challenges_answered_total",
                              "ACME challenge validations the relay answered, by challenge type.",
                              MetricType::Counter);
  for (std::size_t i = 0; i < kChallengeTypeLabel.size(); ++i) {
    CertSample(answered, CertCount(certs.challenges()->answered(i)), "type",
               kChallengeTypeLabel[i]);
  }
}

}  // namespace derpkit::relay
