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
[[ $# -ge 3 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
MODE=$2
RATE=$3
shift 3
[[ $MODE == plain || $MODE == tls ]] || { echo "perf-relay.sh: mode is plain or tls" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf-relay.sh: perf is not installed" >&2; exit 2; }
keep_results() { [[ -n ${KEEP_PERF:-} ]] && cp "$WORK/perf.data" "$KEEP_PERF" 2>/dev/null || true; }
relay_work perf

start_relay "$BUILD_DIR/relay/derp-relay" "$MODE" "${WORKERS:-1}" "$WORK" || exit 1
"$BUILD_DIR/bench/derp-load" --url "$RELAY_URL" "${RELAY_CLIENT[@]}" --pairs 10 --size 1400 \
  --rate-mbps "$RATE" --duration 9s --relay-pid "$RELAY_PID" "$@" >"$WORK/load.txt" 2>&1 &
LOAD_PID=$!
sleep 2
perf record -F 2000 -g -p "$RELAY_PID" -o "$WORK/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$LOAD_PID" || { cat "$WORK/load.txt" >&2; exit 1; }
LOAD_PID=""
grep -E '^(summary:|relay CPU)' "$WORK/load.txt" || true
echo "relay CPU by shared object:"
perf report -i "$WORK/perf.data" --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]'
echo "top symbols:"
perf report -i "$WORK/perf.data" --no-children --sort dso,sym -g none 2>/dev/null |
  grep -E '^ +[0-9]' | head -20
