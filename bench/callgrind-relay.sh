#!/usr/bin/env bash
# Counts the relay's own (user-space) instructions per packet relayed or per STUN answer with
# callgrind: repeatable whatever else the machine does, so it backs the per-packet claims in the
# README ("What limits the figures now"). Only relaying is counted: instrumentation starts once
# the load generator's connections are up and relaying (start-up, key and certificate
# generation, DERP and TLS handshakes are not counted), and the packets are the relay's own
# derp_packets_sent_total over the counted time (read from /debug/varz just outside it, so a
# few packets more than were counted, well under 1% at this rate).
#
# Usage: bench/callgrind-relay.sh BUILD_DIR MODE [RELAY_BIN]
#   BUILD_DIR  a build with derp-load and stun-load (bench/), and derp-relay unless RELAY_BIN
#   MODE       plain   2 pairs x 1400 B at 8 Mbit/s over plain DERP, 4 s
#              tls     the same over TLS
#              tlsrec  the same over TLS with one TLS record per frame (as Tailscale's client)
#              stun    stun-load's Tailscale-form binding requests, 3 s
#   RELAY_BIN  another relay binary to count (an older commit's build, to compare)
# Prints: MODE, instructions, packets (or answers), instructions per packet.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
MODE=$2
RELAY=${3:-$BUILD_DIR/relay/derp-relay}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  { echo "callgrind-relay.sh: valgrind (callgrind_control) is needed" >&2; exit 2; }
case $MODE in plain | tls | tlsrec | stun) ;; *) echo "callgrind-relay.sh: unknown mode $MODE" >&2; exit 2 ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-callgrind.XXXXXX")
PID=""
LOAD=""
cleanup() {
  [[ -n $LOAD ]] && kill "$LOAD" 2>/dev/null
  [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

TLS_ARGS=()
[[ $MODE == tls || $MODE == tlsrec ]] &&
  TLS_ARGS=(--certmode selfsigned --certdir "$WORK/certs" --hostname localhost)
timeout 180 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
  "$RELAY" -a 127.0.0.1:0 --stun-port 0 -c "$WORK/k" --workers 1 --http-port -1 \
  "${TLS_ARGS[@]}" >"$WORK/log" 2>&1 &
PID=$!
VG=""  # valgrind itself (timeout's child): callgrind_control needs its pid
for _ in $(seq 100); do
  VG=$(pgrep -P "$PID" | head -1 || true)
  [[ -n $VG ]] && break
  sleep 0.05
done
[[ -n $VG ]] || { echo "callgrind-relay.sh: valgrind did not start" >&2; exit 1; }
port="" stun=""
for _ in $(seq 600); do
  port=$(sed -n 's|.*DERP on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/derp.*|\1|p' "$WORK/log" | head -1)
  stun=$(sed -n 's|.*STUN on UDP port \([0-9][0-9]*\).*|\1|p' "$WORK/log" | head -1)
  [[ -n $port && -n $stun ]] && break
  sleep 0.1
done
[[ -n $port ]] || { cat "$WORK/log" >&2; exit 1; }

# derp_packets_sent_total from the relay's own metrics (localhost may read them).
packets_sent() {
  local scheme=http
  [[ $MODE != plain ]] && scheme=https
  curl -sk --max-time 20 "$scheme://127.0.0.1:$port/debug/varz" |
    awk '$1 == "derp_packets_sent_total" { print $2; found = 1 } END { if (!found) print "" }'
}

if [[ $MODE == stun ]]; then
  callgrind_control -i on "$VG" >/dev/null 2>&1
  timeout 60 "$BUILD_DIR/bench/stun-load" --target "127.0.0.1:$stun" --duration 3s --json \
    >"$WORK/out.json"
  callgrind_control -i off "$VG" >/dev/null 2>&1
  COUNT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["answers"])' \
    "$WORK/out.json")
else
  URL=(--url "http://127.0.0.1:$port/derp")
  [[ $MODE != plain ]] && URL=(--url "https://localhost:$port/derp"
    --ca-file "$WORK/certs/localhost.crt" --dial-host 127.0.0.1)
  EXTRA=()
  [[ $MODE == tlsrec ]] && EXTRA=(--tls-record-per-frame)
  timeout 90 "$BUILD_DIR/bench/derp-load" "${URL[@]}" "${EXTRA[@]}" --pairs 2 --size 1400 \
    --rate-mbps 8 --warmup 4s --duration 4s --json >"$WORK/out.json" &
  LOAD=$!
  # Wait (at most 30 s) until packets flow: every connection is up and past its handshake.
  before=""
  for _ in $(seq 300); do
    before=$(packets_sent)
    [[ -n $before && $before != 0 ]] && break
    sleep 0.1
  done
  [[ -n $before && $before != 0 ]] || { echo "callgrind-relay.sh: no packets relayed" >&2; exit 1; }
  before=$(packets_sent)
  callgrind_control -i on "$VG" >/dev/null 2>&1
  wait "$LOAD"
  LOAD=""
  callgrind_control -i off "$VG" >/dev/null 2>&1
  after=$(packets_sent)
  COUNT=$((after - before))
fi
callgrind_control -d "$VG" >/dev/null 2>&1
kill -TERM "$PID"
wait "$PID" 2>/dev/null || true
PID=""

python3 - "$MODE" "$WORK" "$COUNT" <<'PY'
import glob, sys
mode, work, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
total = 0
for path in glob.glob(work + "/cg.out*"):
    for line in open(path):
        if line.startswith("totals:"):  # ("summary:" is 0 in a dump taken on request)
            total += int(line.split()[1])
            break
unit = "answer" if mode == "stun" else "packet"
print(f"{mode}: {total:,} instructions, {count:,} {unit}s, {total / max(count, 1):,.0f} per {unit}")
PY
