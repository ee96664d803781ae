#!/usr/bin/env bash
# Measures what idle connections cost the relay in CPU: COUNT plain DERP connections held open
# by derp-conns, nothing sent but the relay's KeepAlives, and the relay's CPU time (all threads,
# from /proc/PID/task/*/schedstat, nanoseconds) over 10 s once they are all connected. It backs
# the per-shard ticker's cost in the README and compares builds (give RELAY_BIN).
#
# Usage: bench/idle-cpu.sh BUILD_DIR COUNT [RELAY_BIN]
#   BUILD_DIR  a build with derp-conns (bench/), and derp-relay unless RELAY_BIN
#   COUNT      connections to hold (the open-file limit caps it; derp-conns says so)
# Prints: COUNT, relay CPU milliseconds over the 10 s.
set -euo pipefail
# shellcheck source=bench/relay-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/relay-port.sh"
[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
COUNT=$2
RELAY=${3:-$BUILD_DIR/relay/derp-relay}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-idle.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$RELAY" -a 127.0.0.1:0 --stun-port 0 -c "$WORK/k" --workers 1 --http-port -1 >"$WORK/log" 2>&1 &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
port=$(relay_port "$WORK/log")
[[ -n $port ]] || { cat "$WORK/log" >&2; exit 1; }
timeout 120 "$BUILD_DIR/bench/derp-conns" --url "http://127.0.0.1:$port/derp" --count "$COUNT" \
  --hold 16s >"$WORK/conns.out" 2>&1 &
PIDS+=($!)
cpu_ns() { cat /proc/"$RELAY_PID"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
sleep 5  # all connected (derp-conns takes ~1 s for 20,000 here)
t0=$(cpu_ns)
sleep 10
t1=$(cpu_ns)
echo "$COUNT idle connections: relay CPU $(( (t1 - t0) / 1000000 )) ms over 10 s"
