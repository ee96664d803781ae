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
relay_load_args syscalls-relay.sh 11 "$@"
relay_work syscalls

relay_under_load "${RELAY_BIN:-$BUILD_DIR/relay/derp-relay}" 7
perf stat -x, -e 'syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendmsg' \
  -e 'syscalls:sys_enter_epoll_wait,context-switches' -p "$RELAY_PID" -o "$WORK/stat.csv" \
  -- sleep 4 >/dev/null 2>&1
load_done
grep -E '^summary:' "$WORK/load.txt" || true
# Packets offered in the 4 s: RATE Mbit/s of 1400-byte payloads.
packets=$((RATE * 1000000 / 8 / 1400 * 4))
echo "per packet ($packets offered in 4 s):"
awk -F, -v n="$packets" '$1 ~ /^[0-9]+$/ {
  name = $3; sub(/^syscalls:sys_enter_/, "", name)
  printf "  %-18s %6.3f  (%d)\n", name, $1 / n, $1 }' "$WORK/stat.csv"
