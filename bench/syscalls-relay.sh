#!/usr/bin/env bash
# How many system calls and context switches the relay makes per packet under one paced load:
# starts a derp-relay (--workers 1, or $WORKERS), drives it with derp-load (10 pairs x 1400 B at
# RATE Mbit/s), counts the relay's recvfrom, sendmsg and epoll_wait calls and its context
# switches with `perf stat` for 4 s in the middle of the run, and prints each per packet offered.
# Backs the README's syscalls-per-packet figures; bench/perf-relay.sh says where the CPU goes.
#
# Usage: bench/syscalls-relay.sh BUILD_DIR plain|tls RATE_MBPS [derp-load flags...]
#   e.g. bench/syscalls-relay.sh build/release tls 500 --tls-record-per-frame
# With RELAY_BIN=FILE another relay binary is measured (an older build, or one with an
# experiment's patch). Needs perf (linux-perf) and permission to trace another process (root).
set -euo pipefail
# shellcheck source=bench/relay-port.sh
source "$(dirname "${BASH_SOURCE[0]}")/relay-port.sh"
[[ $# -ge 3 ]] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
MODE=$2
RATE=$3
shift 3
[[ $MODE == plain || $MODE == tls ]] || { echo "syscalls-relay.sh: mode is plain or tls" >&2; exit 2; }
[[ $RATE =~ ^[0-9]+$ && $RATE -gt 0 ]] || { echo "syscalls-relay.sh: RATE_MBPS wants a whole number above 0" >&2; exit 2; }
command -v perf >/dev/null || { echo "syscalls-relay.sh: perf is not installed" >&2; exit 2; }
relay_work syscalls

start_relay "${RELAY_BIN:-$BUILD_DIR/relay/derp-relay}" "$MODE" "${WORKERS:-1}" "$WORK" || exit 1
"$BUILD_DIR/bench/derp-load" --url "$RELAY_URL" "${RELAY_CLIENT[@]}" --pairs 10 --size 1400 \
  --rate-mbps "$RATE" --duration 7s --relay-pid "$RELAY_PID" "$@" >"$WORK/load.txt" 2>&1 &
LOAD_PID=$!
sleep 2
perf stat -x, -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendmsg' \
  -e 'syscalls:sys_enter_epoll_wait,context-switches' -p "$RELAY_PID" -o "$WORK/stat.csv" \
  -- sleep 4 >/dev/null 2>&1
wait "$LOAD_PID" || { cat "$WORK/load.txt" >&2; exit 1; }
LOAD_PID=""
grep -E '^summary:' "$WORK/load.txt" || true
# Packets offered in the 4 s: RATE Mbit/s of 1400-byte payloads.
packets=$((RATE * 1000000 / 8 / 1400 * 4))
echo "per packet ($packets offered in 4 s):"
awk -F, -v n="$packets" '$1 ~ /^[0-9]+$/ {
  name = $3; sub(/^syscalls:sys_enter_/, "", name)
  printf "  %-18s %6.3f  (%d)\n", name, $1 / n, $1 }' "$WORK/stat.csv"
