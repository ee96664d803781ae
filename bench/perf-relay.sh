#!/usr/bin/env bash
# Where the relay's CPU goes under one paced load: starts a derp-relay (--workers 1, or $WORKERS),
# drives it with derp-load (10 pairs x 1400 B at RATE Mbit/s), records the relay with `perf
# record -g` for 5 s in the middle of the run, and prints the relay's CPU time over the run, its
# CPU by shared object, then its top symbols.
# Backs the README's profile figures.
#
# Usage: bench/perf-relay.sh BUILD_DIR plain|tls RATE_MBPS [derp-load flags...]
#   e.g. bench/perf-relay.sh build/release tls 2000
#        bench/perf-relay.sh build/release tls 1000 --tls-record-per-frame
# Needs perf (linux-perf) and permission to profile another process (root here). With
# KEEP_PERF=FILE the recording is kept there (for `perf report -i FILE`).
set -euo pipefail
# shellcheck source=bench/relay-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/relay-port.sh"
relay_load_args perf-relay.sh 12 "$@"
keep_results() { [[ -n ${KEEP_PERF:-} ]] && cp "$WORK/perf.data" "$KEEP_PERF" 2>/dev/null || true; }
relay_work perf

relay_under_load "$BUILD_DIR/relay/derp-relay" 9
perf record -F 2000 -g -p "$RELAY_PID" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1
load_done
grep -E '^(summary:|relay CPU)' "$WORK/load.txt" || true
echo "relay CPU by shared object:"
perf report -i "$WORK/perf.data" --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]'
echo "top symbols:"
perf report -i "$WORK/perf.data" --no-children --sort dso,sym -g none 2>/dev/null |
  grep -E '^ +[0-9]' | head -20
