// The words and numbers derp-probe's renderers share, so the status page, the --once table and
// JSON, and /debug/probe-run say the same thing the same way: latency ("1.2ms"), the tls probe's
// certificate note, the bw probe's transfer note, the map probe's size note, counted nouns.
//
// Pure: values in, text out. Any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "probe/model.h"

namespace derpkit::probe {

// "1.2ms": one decimal of milliseconds for every latency, so a column reads at a glance.
std::string Millis(std::chrono::nanoseconds d);

// One number through printf: FormatNumber("%.1f", 2.25) == "2.2". `printf_format` is a literal
// with exactly one floating-point conversion.
std::string FormatNumber(const char* printf_format, double value);

// "1 region", "0 regions", "3 regions".
std::string Counted(std::size_t n, std::string_view singular, std::string_view plural);

// The map probe's note: "1 region, 1 node", "2 regions, 3 nodes".
std::string MapSizeNote(std::size_t regions, std::size_t nodes);

// Whole days from `now` until `t` (negative once past), rounded down as a person counts them.
std::int64_t DaysLeft(SystemTime t, SystemTime now);

// The tls probe's note on a certificate it saw: "cert derp-1a.test, 89 days left",
// "cert x, 1 day left, pinned", "cert x, expired 3 days ago" (counted to CertFacts::Expiry()).
std::string CertNote(const CertFacts& cert, SystemTime now);

// The bw probe's note on one run: "1.0 MB in 12.3ms (650 Mbit/s)" (decimal units, as network
// rates are counted; the rate only when the transfer took any time).
std::string BwNote(const ProbeResult& result);

}  // namespace derpkit::probe
