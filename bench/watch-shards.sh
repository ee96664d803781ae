#!/usr/bin/env bash
# Where a --workers 2 relay keeps its pairs under one load, over time: starts a derp-relay with
# two workers, drives it with derp-load (10 pairs x 1400 B at RATE Mbit/s, or "unpaced") for
# SECONDS, and every STEP seconds prints each shard's connections, the moves into it so far and
# its thread's share of a core over the step (derp_shard_connections,
# derp_shard_connections_moved_in_total, derp_shard_cpu_seconds_total from /debug/varz); then
# derp-load's summary. Backs the README's figures on gathering and spreading (relay/placement.h).
#
# Usage: bench/watch-shards.sh BUILD_DIR plain|tls RATE_MBPS|unpaced SECONDS STEP [derp-load flags...]
#   e.g. bench/watch-shards.sh build/release tls 3000 60 5
#        bench/watch-shards.sh build/release tls 1000 10 1 --tls-record-per-frame
# With RELAY=BIN another derp-relay binary is watched (an older build), and with RELAY_ARGS
# extra relay flags are added (e.g. RELAY_ARGS='--move-gather-below 0.5').
set -euo pipefail
# shellcheck source=bench/relay-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/relay-port.sh"
[[ $# -ge 5 ]] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
MODE=$2
RATE=$3
SECS=$4
STEP=$5
shift 5
[[ $MODE == plain || $MODE == tls ]] || { echo "watch-shards.sh: mode is plain or tls" >&2; exit 2; }
[[ $SECS =~ ^[0-9]+$ && $STEP =~ ^[0-9]+$ && $STEP -ge 1 && $SECS -ge $STEP && $SECS -le 3600 ]] ||
  { echo "watch-shards.sh: SECONDS 1..3600, STEP 1..SECONDS" >&2; exit 2; }
RELAY_BIN=${RELAY:-$BUILD_DIR/relay/derp-relay}
relay_work watch

# shellcheck disable=SC2086 # RELAY_ARGS is a list of flags, split on purpose
start_relay "$RELAY_BIN" "$MODE" 2 "$WORK" ${RELAY_ARGS:-} || exit 1
varz=${RELAY_URL%/derp}/debug/varz
if [[ $RATE == unpaced ]]; then rate=(--unpaced); else rate=(--rate-mbps "$RATE"); fi
"$BUILD_DIR/bench/derp-load" --url "$RELAY_URL" "${RELAY_CLIENT[@]}" --pairs 10 --size 1400 "${rate[@]}" \
  --duration "${SECS}s" --relay-pid "$RELAY_PID" "$@" >"$WORK/load.txt" 2>&1 &
LOAD_PID=$!

# One line per step: t, then per shard: connections, moves in so far, busy over the step.
sample() {
  curl -s --max-time 2 "${RELAY_CURL[@]}" "$varz" |
    awk '/^derp_shard_(connections|connections_moved_in_total|cpu_seconds_total)\{/ {
           split($1, a, "\""); name = $1; sub(/\{.*/, "", name); print name, a[2], $2 }'
}
printf '%6s  %s\n' "t (s)" "shard: connections, moved in, busy (of a core) over the step"
prev=$(sample)
for ((t = STEP; t <= SECS; t += STEP)); do
  sleep "$STEP"
  now=$(sample)
  line=$(awk -v step="$STEP" '
    NR == FNR { if ($1 == "derp_shard_cpu_seconds_total") before[$2] = $3; next }
    $1 == "derp_shard_connections" { conns[$2] = $3 }
    $1 == "derp_shard_connections_moved_in_total" { moved[$2] = $3 }
    $1 == "derp_shard_cpu_seconds_total" { busy[$2] = ($3 - before[$2]) / step }
    END { for (s = 0; s in conns; s++) printf "  %s: %3d, %3d, %.2f", s, conns[s], moved[s], busy[s] }
  ' <(echo "$prev") <(echo "$now"))
  printf '%6d %s\n' "$t" "$line"
  prev=$now
done
wait "$LOAD_PID" || { cat "$WORK/load.txt" >&2; exit 1; }
LOAD_PID=""
grep -E '^summary:' "$WORK/load.txt" || true
