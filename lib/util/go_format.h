// Go's spellings of durations and times, for output that must read like a Go program's:
// netcheck's text and JSON (as `tailscale netcheck` prints with Go's fmt and encoding/json) and
// derp-probe's times (as derpprobe's JSON): "12.3ms", "451µs", "1m2.5s", and RFC 3339 with
// nanoseconds.
//
// Pure: values in, strings out; the caller passes the time zone offset. Thread affinity: none.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace derpkit {

// Go's time.Duration.String(): "0s", "999ns", "1.5µs", "12.3ms", "2s", "1m30s", "1h0m0s".
std::string GoDurationString(std::chrono::nanoseconds d);

// Go's Duration.Round(m): rounds half away from zero to a multiple of m (m > 0).
std::chrono::nanoseconds GoRound(std::chrono::nanoseconds d, std::chrono::nanoseconds m);

// Go's time.RFC3339Nano layout ("2006-01-02T15:04:05.999999999Z07:00": trailing zeros of the
// fraction dropped, "Z" for a zero offset) of `t` shown at `utc_offset_seconds` east of UTC.
std::string GoRfc3339Nano(std::chrono::system_clock::time_point t, long utc_offset_seconds = 0);

// Go's fmt width handling counts runes, not bytes: pads `s` with spaces to `width` runes, on the
// left (right-aligned, "%3s") or on the right (left-aligned, "%-7s").
std::string PadRunes(std::string_view s, std::size_t width, bool left_align);

}  // namespace derpkit
