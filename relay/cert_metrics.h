// The certificate's metrics (CertManager): reloads and refusals by reason, the expiry of the
// certificate in service, and in letsencrypt mode ACME issuances, failures by reason, the next
// attempt and the challenge answers served. Every labelled series exists from the start, at 0.
//
// Any thread (the counters are atomics).
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

namespace derpkit::relay {

class CertManager;

// Appends the families of `certs` to `out`.
void AppendCertMetrics(const CertManager& certs, std::vector<prometheus::MetricFamily>& out);

}  // namespace derpkit::relay
