#!/usr/bin/env bash
# bench_smoke: each load generator in bench/ runs for a second or two against a real derp-relay
# on 127.0.0.1 (kernel-chosen ports) and must exit 0 and print its figures; derp-load's --json
# must parse and carry the fields the report reads, in every mode (paced, bursty senders over
# plain and TLS, one TLS record per frame, WebSocket bursts over ws and wss); bad flags exit 2;
# forward-floor's forwarders and its latency mode run; the open-file limits are reported in words,
# on our side and on the relay's; and
# bench/run-benchmarks.sh writes a report (summary, sections, --workers comparison) for a few
# rows. No figure is asserted: the relay's numbers are the benchmark's business.
#
# Usage: bench_smoke_test.sh BUILD_DIR   (ctest passes the project binary dir)
set -euo pipefail

BUILD_DIR=${1:?usage: bench_smoke_test.sh BUILD_DIR}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RELAY=$BUILD_DIR/relay/derp-relay
LOAD=$BUILD_DIR/bench/derp-load
CONNS=$BUILD_DIR/bench/derp-conns
STUN=$BUILD_DIR/bench/stun-load
FLOOR=$BUILD_DIR/bench/forward-floor
for bin in "$RELAY" "$LOAD" "$CONNS" "$STUN" "$FLOOR"; do
  [[ -x $bin ]] || { echo "bench_smoke: $bin is missing (build the bench targets)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-smoke.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "bench_smoke: FAIL: $*" >&2
  exit 1
}

# start_relay NAME plain|tls [NOFILE]: starts a relay (under `ulimit -n NOFILE` when given) and
# sets PID, URL, STUN_PORT and TLS_ARGS.
start_relay() {
  local name=$1 mode=$2 nofile=${3:-}
  local log=$WORK/$name.log
  local args=(-a 127.0.0.1:0 --stun-port 0 -c "$WORK/derper.key" --workers 1 --http-port -1)
  TLS_ARGS=()
  if [[ $mode == tls ]]; then
    args+=(--certmode selfsigned --certdir "$WORK/certs" --hostname localhost)
    TLS_ARGS=(--ca-file "$WORK/certs/localhost.crt" --dial-host 127.0.0.1)
  fi
  if [[ -n $nofile ]]; then
    # UBSan checks a vptr by probing the memory with a pipe(2); with every descriptor in use that
    # probe fails and it reports "invalid vptr" on healthy objects. So a relay run at its
    # open-file limit skips only that check (see SANITIZE in CMakeLists.txt); the sanitizer
    # build runs it everywhere else.
    printf 'vptr_check:*\n' >"$WORK/ubsan.supp"
    (ulimit -n "$nofile" && UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:suppressions=$WORK/ubsan.supp" \
      exec "$RELAY" "${args[@]}") >"$log" 2>&1 &
  else
    "$RELAY" "${args[@]}" >"$log" 2>&1 &
  fi
  PID=$!
  PIDS+=("$PID")
  : >>"$log"  # the background job creates it too, but maybe only after our first look
  local port="" stun=""
  for _ in $(seq 100); do
    port=$(sed -n 's|.*DERP on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/derp.*|\1|p' "$log" | head -1)
    stun=$(sed -n 's|.*STUN on UDP port \([0-9][0-9]*\).*|\1|p' "$log" | head -1)
    [[ -n $port && -n $stun ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port && -n $stun ]] || { cat "$log" >&2; fail "relay $name did not start"; }
  STUN_PORT=$stun
  if [[ $mode == tls ]]; then URL=https://localhost:$port/derp; else URL=http://127.0.0.1:$port/derp; fi
}

# run NAME EXPECTED_RC CMD...: runs CMD under timeout, keeps stdout/stderr in $WORK/NAME.out/.err
# and fails unless it exits EXPECTED_RC.
run() {
  local name=$1 want=$2
  shift 2
  local rc=0
  timeout 60 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [[ $rc -ne $want ]]; then
    cat "$WORK/$name.out" "$WORK/$name.err" >&2
    fail "$name: exit $rc, want $want"
  fi
}

# expect NAME PATTERN [out|err]: the output of run NAME matches the extended regex PATTERN.
expect() {
  local name=$1 pattern=$2 stream=${3:-out}
  grep -Eq -- "$pattern" "$WORK/$name.$stream" ||
    { cat "$WORK/$name.out" "$WORK/$name.err" >&2; fail "$name: no line matches /$pattern/ in $stream"; }
}

json_check() {  # json_check NAME PYTHON-EXPRESSION-ON-d
  python3 -c 'import json,sys; d = json.load(sys.stdin); assert '"$2"', d' <"$WORK/$1.out" ||
    fail "$1: JSON check failed: $2"
}

start_relay plain plain
PLAIN_PID=$PID PLAIN_URL=$URL PLAIN_STUN=$STUN_PORT

run tput 0 "$LOAD" --url "$PLAIN_URL" --pairs 2 --rate-mbps 50 --duration 1s --warmup 200ms \
  --relay-pid "$PLAIN_PID"
expect tput '^delivered +[0-9.]+ Mbit/s$'
expect tput '^loss +[0-9.]+ %'
expect tput '^Mbit per relay CPU-second +[0-9]+$'
expect tput '^summary: [0-9.]+ Mbit/s delivered of 50 Mbit/s offered'

run tput-json 0 "$LOAD" --url "$PLAIN_URL" --pairs 2 --unpaced --duration 1s --warmup 200ms \
  --relay-pid "$PLAIN_PID" --json
json_check tput-json 'd["delivered_mbps"] > 0 and d["sent_packets"] > 0 and d["relay_cpu_seconds"] is not None and d["offered_mbps"] is None'

# The fields report.py reads from every throughput row.
TPUT_FIELDS='all(k in d for k in ("offered_mbps", "sent_mbps", "delivered_mbps", "loss_percent", "mbit_per_relay_cpu_second", "loadgen_busy_fraction", "relay_cpu_seconds", "window_seconds", "tls", "sender", "tls_record_per_frame"))'

# Bursty senders: a blocking thread per pair, one write() per frame.
run bursty 0 "$LOAD" --url "$PLAIN_URL" --sender bursty --pairs 2 --rate-mbps 50 --duration 1s \
  --warmup 200ms --relay-pid "$PLAIN_PID" --json
json_check bursty "$TPUT_FIELDS"' and d["sender"] == "bursty" and d["sent_packets"] > 0 and d["write_calls_per_frame"] >= 1 and d["errors"] == []'
run bursty-text 0 "$LOAD" --url "$PLAIN_URL" --sender bursty --pairs 1 --rate-mbps 20 \
  --duration 1s --warmup 200ms
expect bursty-text 'bursty senders \(a blocking thread each, one write per frame\)'
expect bursty-text '^summary: [0-9.]+ Mbit/s delivered of 20 Mbit/s offered'

# WebSocket bursts over ws://.
run wsburst 0 "$LOAD" --url "${PLAIN_URL/#http/ws}" --mode ws-burst --tries 2 --burst-packets 20 \
  --burst-wait 1s --relay-pid "$PLAIN_PID" --json
json_check wsburst 'd["mode"] == "ws-burst" and d["websocket"] and not d["tls"] and d["tries"] == d["tries_requested"] == 2 and len(d["lost_per_try"]) == 2 and d["sent_per_try"] == 40 and d["total_sent"] == 80 and d["worst_try_lost"] is not None and "loss_percent" in d and d["errors"] == []'
run wsburst-text 0 "$LOAD" --url "$PLAIN_URL" --mode ws-burst --tries 1 --burst-packets 5 \
  --burst-wait 1s
expect wsburst-text '^summary: [0-9]+ of 10 packets lost, worst try [0-9]+ of 10$'

run latency 0 "$LOAD" --url "$PLAIN_URL" --mode latency --samples 300 --interval 1ms \
  --warmup 200ms
expect latency '^round trips +[0-9]+ of [0-9]+ answered$'
expect latency '^rtt p99.9 +[0-9.]+ us$'

run latency-bg 0 "$LOAD" --url "$PLAIN_URL" --mode latency --samples 300 --warmup 200ms \
  --pairs 2 --background-mbps 20 --json
json_check latency-bg 'd["latency"]["p50_us"] > 0 and d["latency"]["answered"] > 0 and d["background"]["delivered_mbps"] > 0'

run conns 0 "$CONNS" --url "$PLAIN_URL" --count 50 --settle 0s --hold 0s --relay-pid "$PLAIN_PID"
expect conns '^established +50$'
expect conns '^relay RSS per connection +-?[0-9]+ B$'

run stun 0 "$STUN" --target "127.0.0.1:$PLAIN_STUN" --sockets 2 --duration 1s --warmup 100ms \
  --relay-pid "$PLAIN_PID"
expect stun '^answers/s +[0-9]+$'
expect stun '^answers per responder CPU-second +[0-9]+$'

# forward-floor needs no relay: both forwarders move what the sender wrote (everything a paced
# 20 Mbit/s sender writes in 1 s arrives well within the window's edges). A kernel that refuses
# io_uring (kernel.io_uring_disabled, a seccomp filter) must be named in one line, exit 1.
run floor-epoll 0 "$FLOOR" --loop epoll --pairs 2 --rate-mbps 20 --duration 1s --warmup 200ms \
  --json
json_check floor-epoll 'd["loop"] == "epoll" and d["delivered_mbps"] > 10 and d["forwarder_cpu_seconds"] > 0 and d["mbit_per_forwarder_cpu_second"] > 0 and d["wire_bytes_per_packet"] == 1459'
rc=0
timeout 60 "$FLOOR" --loop io_uring --pairs 2 --rate-mbps 20 --duration 1s --warmup 200ms --json \
  >"$WORK/floor-uring.out" 2>"$WORK/floor-uring.err" || rc=$?
if [[ $rc -eq 0 ]]; then
  json_check floor-uring 'd["loop"] == "io_uring" and d["delivered_mbps"] > 10 and d["forwarder_cpu_seconds"] > 0'
else
  [[ $rc -eq 1 ]] && grep -Eq '^forward-floor: io_uring_[a-z_]+ .*: ' "$WORK/floor-uring.err" ||
    { cat "$WORK/floor-uring.err" >&2; fail "floor-uring: exit $rc without naming io_uring"; }
  echo "bench_smoke: this kernel refuses io_uring: $(cat "$WORK/floor-uring.err")" >&2
fi
run floor-unpaced 0 "$FLOOR" --pairs 1 --rate-mbps 0 --duration 200ms --warmup 0s
expect floor-unpaced '^offered +unpaced$'
# Its latency mode: every ping answered through the bare forwarder, the JSON shaped as derp-load's.
run floor-latency 0 "$FLOOR" --mode latency --samples 50 --interval 2ms --json
json_check floor-latency 'd["mode"] == "latency" and d["latency"]["sent"] == 50 and d["latency"]["answered"] == 50 and d["latency"]["lost"] == 0 and 0 < d["latency"]["p50_us"] <= d["latency"]["p99_us"] and d["wire_bytes_per_packet"] == 123'
run floor-latency-text 0 "$FLOOR" --mode latency --samples 20 --interval 1ms --size 200
expect floor-latency-text '^round trips +20 of 20 answered$'
expect floor-latency-text '^ping +200 B payload, 259 B on the wire, every 1000 us$'
run floor-bad 2 "$FLOOR" --loop select
expect floor-bad 'forward-floor: --loop: select not in' err

# Our own open-file limit: asked for more than it allows, derp-conns says so and opens fewer.
run conns-limit 0 bash -c 'ulimit -n 120 && exec "$@"' _ "$CONNS" --url "$PLAIN_URL" --count 500 \
  --settle 0s --hold 0s
expect conns-limit 'asked for 500 connections but this process may open at most 120 files' err
expect conns-limit '^established +70$'

# Bad flags: one line, exit 2.
run bad-flag 2 "$LOAD" --url "$PLAIN_URL" --bogus
run bad-value 2 "$LOAD" --url "$PLAIN_URL" --pairs 0
expect bad-value 'derp-load: --pairs must be 1..10000' err
run bad-sender 2 "$LOAD" --url "$PLAIN_URL" --sender bursty --mode latency
expect bad-sender 'derp-load: --sender bursty works with --mode throughput' err
run bad-tries 2 "$LOAD" --url "$PLAIN_URL" --mode ws-burst --tries 0
expect bad-tries 'derp-load: --tries must be 1..10000' err
run bad-duration 2 "$STUN" --duration 5parsecs
[[ $(wc -l <"$WORK/bad-duration.err") -eq 1 ]] || fail "bad-duration: want one line on stderr"

# TLS.
start_relay tls tls
run tls 0 "$LOAD" --url "$URL" "${TLS_ARGS[@]}" --pairs 1 --rate-mbps 20 --duration 1s \
  --warmup 200ms --relay-pid "$PID"
expect tls '\(TLS\)'
expect tls '^summary: '
# TLS senders that write frame by frame: the bursty one (its SSL moved onto a blocking socket)
# and the paced one with one TLS record per frame; and WebSocket bursts over wss://.
run tls-bursty 0 "$LOAD" --url "$URL" "${TLS_ARGS[@]}" --sender bursty --pairs 2 --rate-mbps 20 \
  --duration 1s --warmup 200ms --relay-pid "$PID" --json
json_check tls-bursty "$TPUT_FIELDS"' and d["tls"] and d["sender"] == "bursty" and d["sent_packets"] > 0 and d["errors"] == []'
run tls-record 0 "$LOAD" --url "$URL" "${TLS_ARGS[@]}" --tls-record-per-frame --pairs 2 \
  --rate-mbps 20 --duration 1s --warmup 200ms --relay-pid "$PID" --json
json_check tls-record "$TPUT_FIELDS"' and d["tls"] and d["sender"] == "paced" and d["tls_record_per_frame"] and d["sent_packets"] > 0'
run wsburst-tls 0 "$LOAD" --url "${URL/#https/wss}" "${TLS_ARGS[@]}" --mode ws-burst --tries 2 \
  --burst-packets 20 --burst-wait 1s --json
json_check wsburst-tls 'd["tls"] and d["websocket"] and d["tries"] == 2 and len(d["lost_per_try"]) == 2'
run tls-conns 0 "$CONNS" --url "$URL" "${TLS_ARGS[@]}" --count 20 --settle 0s --hold 0s
expect tls-conns '^established +20$'

# The relay's open-file limit: derp-conns stops at the first unanswered connection and says why.
start_relay small plain 60
run relay-limit 1 "$CONNS" --url "$URL" --count 100 --connect-timeout 3s --settle 0s --hold 0s \
  --relay-pid "$PID"
expect relay-limit 'the relay \(pid [0-9]+\) may open at most 60 files' err
expect relay-limit 'stopped after [1-9][0-9]* established connections: .*open-file limit' err
# ... and the relay itself says so in its log, and keeps serving the clients it has.
grep -q 'out of file descriptors' "$WORK/small.log" || { cat "$WORK/small.log" >&2; fail "relay-limit: the relay's log does not name the limit"; }
kill -0 "$PID" 2>/dev/null || { cat "$WORK/small.log" >&2; fail "relay-limit: the relay died at its open-file limit"; }

# The report script, on a few rows: a paced row with --workers 1 and 2 (for the comparison), a
# bursty row and STUN. (The backquotes below are Markdown, not command substitution.)
run report 0 bash "$REPO/bench/run-benchmarks.sh" "$BUILD_DIR" --seconds 1 \
  --only 'tput-plain-w1-1000 tput-plain-w2-1000 bursty-plain-w1-1000 stun floor-epoll-500 floor-latency-idle' \
  --out "$WORK/BENCHMARKS.md"
# shellcheck disable=SC2016
grep -Eq '^\| `tput-plain-w1-1000` \| plain \| 1 \| 1,000 \| [0-9,]+ \|.* \| loss < 0\.1%; delivered >= 99% of offered.* \| (yes|\*\*no\*\*: .*) \|$' \
  "$WORK/BENCHMARKS.md" || { cat "$WORK/BENCHMARKS.md" >&2; fail "report: no throughput row with its checks"; }
# shellcheck disable=SC2016
grep -Eq '^\| `stun` \| [0-9,]+ \|' "$WORK/BENCHMARKS.md" || fail "report: no STUN row"
# shellcheck disable=SC2016
grep -Eq '^\| `bursty-plain-w1-1000` \| plain \| 1 \| 1,000 \| [0-9,]+ \|.* \| loss < 0\.1%.* \| (yes|\*\*no\*\*: .*) \|$' \
  "$WORK/BENCHMARKS.md" || { cat "$WORK/BENCHMARKS.md" >&2; fail "report: no bursty row with its check"; }
# shellcheck disable=SC2016
grep -Eq '^\| `tput-plain-w1-1000` → `tput-plain-w2-1000` \| [0-9.]+ \| [0-9.]+ \| .* \| (yes|\*\*no\*\*: .*) \|$' \
  "$WORK/BENCHMARKS.md" || { cat "$WORK/BENCHMARKS.md" >&2; fail "report: no --workers comparison"; }
# shellcheck disable=SC2016
grep -Eq '^\| `floor-epoll-500` \| epoll \| 500 \| [0-9,]+ \|' "$WORK/BENCHMARKS.md" ||
  { cat "$WORK/BENCHMARKS.md" >&2; fail "report: no forward-floor row"; }
# shellcheck disable=SC2016
grep -Eq '^\| `floor-latency-idle` \| none \(forward-floor\) \| idle \| 2,000 of 2,000 \| [0-9,]+ \|' \
  "$WORK/BENCHMARKS.md" || { cat "$WORK/BENCHMARKS.md" >&2; fail "report: no latency floor row"; }
grep -q '^## Summary: issue #11' "$WORK/BENCHMARKS.md" || fail "report: no summary"
expect report '^Issue #11 rows'
grep -q '^## Commands' "$WORK/BENCHMARKS.md" || fail "report: no commands"

echo "bench_smoke: all passed"
