#!/usr/bin/env bash
# Runs the benchmark matrix of issues #3 and #11 against local derp-relay instances, rewrites
# BENCHMARKS.md (machine, commands, figures, targets met or not) and prints issue #11's rows with
# their verdicts. `make bench` calls this; the whole matrix takes about 6 minutes on 2 cores.
#
# Usage: bench/run-benchmarks.sh BUILD_DIR [--out FILE] [--seconds N] [--only 'ID-GLOB ...']
#                                [--relay BIN] [--results DIR]
#   BUILD_DIR   a build with derp-relay, derp-load, derp-conns and stun-load (a Release build:
#               figures from a Debug or ASan build say little about the relay).
#   --out       where to write the report (default: BENCHMARKS.md at the repository root).
#   --seconds   measurement window of each throughput point (default 5).
#   --only      run only the rows whose id matches one of these globs (e.g. 'tput-plain-* stun');
#               the ids are listed in bench/targets.json.
#   --relay     another derp-relay binary to measure (an older build; bench/ab-relays.sh).
#   --results   also keep each row's JSON (the load tool's --json output) in DIR/<id>.json.
#
# Every relay runs on 127.0.0.1 with kernel-chosen ports, a key and certificate in a temporary
# directory, and is stopped on exit (trap). Every tool runs under `timeout`.
set -euo pipefail

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
BUILD_DIR=$1
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/BENCHMARKS.md
SECONDS_PER_POINT=5
ONLY=""
RELAY_OVERRIDE=""
KEEP_RESULTS=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --seconds) SECONDS_PER_POINT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --relay) RELAY_OVERRIDE=$2; shift 2 ;;
    --results) KEEP_RESULTS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run-benchmarks.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $SECONDS_PER_POINT =~ ^[0-9]+$ && $SECONDS_PER_POINT -ge 1 ]] ||
  { echo "run-benchmarks.sh: --seconds wants a whole number of seconds >= 1" >&2; exit 2; }

BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
RELAY_BIN=${RELAY_OVERRIDE:-$BUILD_DIR/relay/derp-relay}
LOAD_BIN=$BUILD_DIR/bench/derp-load
CONNS_BIN=$BUILD_DIR/bench/derp-conns
STUN_BIN=$BUILD_DIR/bench/stun-load
FLOOR_BIN=$BUILD_DIR/bench/forward-floor
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0  # bash counts the run's time from here
for bin in "$RELAY_BIN" "$LOAD_BIN" "$CONNS_BIN" "$STUN_BIN"; do
  if [[ ! -x $bin ]]; then
    echo "run-benchmarks.sh: $bin is missing; build it first:" >&2
    echo "  cmake --build $BUILD_DIR --target derp-relay derp-load derp-conns stun-load" >&2
    exit 2
  fi
done
command -v python3 >/dev/null || { echo "run-benchmarks.sh: python3 is needed for the report" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-bench.XXXXXX")
RESULTS=$WORK/results
mkdir -p "$RESULTS"
RELAY_PID=""
RELAY_ID=""
RELAY_SEQ=0

stop_relay() {
  [[ -n $RELAY_PID ]] || return 0
  kill -TERM "$RELAY_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$RELAY_PID" 2>/dev/null || true
  wait "$RELAY_PID" 2>/dev/null || true
  RELAY_PID=""
}
cleanup() {
  stop_relay
  if [[ -n $KEEP_RESULTS ]]; then
    mkdir -p "$KEEP_RESULTS" && cp "$RESULTS"/*.json "$KEEP_RESULTS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Returns success when row id $1 is selected by --only.
want() {
  [[ -z $ONLY ]] && return 0
  local glob
  for glob in $ONLY; do
    # shellcheck disable=SC2053  # the glob is meant to match
    [[ $1 == $glob ]] && return 0
  done
  return 1
}
want_any() {
  local id
  for id in "$@"; do want "$id" && return 0; done
  return 1
}

# start_relay plain|tls WORKERS: starts a fresh relay; sets RELAY_PID, RELAY_URL, STUN_PORT,
# TLS_ARGS (client flags for TLS) and RELAY_ID (its id in the report).
start_relay() {
  local mode=$1 workers=$2
  stop_relay
  RELAY_SEQ=$((RELAY_SEQ + 1))
  RELAY_ID=relay-$RELAY_SEQ
  local log=$WORK/$RELAY_ID.log
  local args=(-a 127.0.0.1:0 --stun-port 0 -c "$WORK/derper.key" --workers "$workers"
              --http-port -1)
  TLS_ARGS=()
  if [[ $mode == tls ]]; then
    args+=(--certmode selfsigned --certdir "$WORK/certs" --hostname localhost)
    TLS_ARGS=(--ca-file "$WORK/certs/localhost.crt" --dial-host 127.0.0.1)
  fi
  "$RELAY_BIN" "${args[@]}" >"$log" 2>&1 &
  RELAY_PID=$!
  : >>"$log"  # the background job creates it too, but maybe only after our first look
  local port="" stun=""
  for _ in $(seq 100); do
    port=$(sed -n 's|.*DERP on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/derp.*|\1|p' "$log" | head -1)
    stun=$(sed -n 's|.*STUN on UDP port \([0-9][0-9]*\).*|\1|p' "$log" | head -1)
    [[ -n $port && -n $stun ]] && break
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port || -z $stun ]]; then
    echo "run-benchmarks.sh: derp-relay did not start; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  STUN_PORT=$stun
  if [[ $mode == tls ]]; then RELAY_URL=https://localhost:$port/derp; else RELAY_URL=http://127.0.0.1:$port/derp; fi
  printf '%s\t%s\t%s\t%s\n' "$RELAY_ID" "$mode" "$workers" \
    "derp-relay ${args[*]}" >>"$RESULTS/relays.tsv"
  echo "== $RELAY_ID: $mode, --workers $workers, $RELAY_URL (pid $RELAY_PID)" >&2
}

# point ID TOOL ARGS...: runs one row (TOOL is derp-load, derp-conns or stun-load) with --json
# and --relay-pid, keeps its JSON, stderr, exit status and command line for the report.
# forward-floor runs no relay: it gets only --json, and its row's relay is "none".
point() {
  local id=$1 tool=$2
  shift 2
  local bin
  case $tool in
    derp-load) bin=$LOAD_BIN ;;
    derp-conns) bin=$CONNS_BIN ;;
    stun-load) bin=$STUN_BIN ;;
    forward-floor) bin=$FLOOR_BIN ;;
  esac
  local relay_args=(--relay-pid "$RELAY_PID") relay_id=$RELAY_ID
  if [[ $tool == forward-floor ]]; then relay_args=(); relay_id=none; fi
  local cmd=("$tool" "$@" "${relay_args[@]}" --json)
  echo "   $id: ${cmd[*]}" >&2
  local rc=0
  timeout 300 "$bin" "$@" "${relay_args[@]}" --json \
    >"$RESULTS/$id.json" 2>"$RESULTS/$id.err" || rc=$?
  echo "$rc" >"$RESULTS/$id.rc"
  echo "$id" >>"$RESULTS/order"
  echo "$relay_id" >"$RESULTS/$id.relay"
  # The command as a reader would type it: temporary paths and the pid made symbolic.
  local text="${cmd[*]}"
  text=${text//$WORK/\$TMP}
  text=${text//--relay-pid $RELAY_PID/--relay-pid \$RELAY_PID}
  echo "$text" >"$RESULTS/$id.cmd"
  if [[ $rc -ne 0 ]]; then echo "   $id: exit $rc: $(tail -1 "$RESULTS/$id.err")" >&2; fi
}

D=${SECONDS_PER_POINT}s

# 1. Throughput, 10 pairs x 1400 B, paced senders; with --workers 1 also pair counts, 64-byte
# packets and latency.
for mode in plain tls; do
  for workers in 1 2; do
    ids=()
    for rate in 1000 2000 3000 unpaced; do ids+=("tput-$mode-w$workers-$rate"); done
    if [[ $workers == 1 ]]; then
      ids+=("pairs-1-$mode-w1" "pairs-100-$mode-w1" "small64-$mode-w1"
            "latency-$mode-idle" "latency-$mode-1000")
    fi
    want_any "${ids[@]}" || continue
    start_relay "$mode" "$workers"
    for rate in 1000 2000 3000 unpaced; do
      id=tput-$mode-w$workers-$rate
      want "$id" || continue
      if [[ $rate == unpaced ]]; then rate_args=(--unpaced); else rate_args=(--rate-mbps "$rate"); fi
      point "$id" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --pairs 10 --size 1400 \
        "${rate_args[@]}" --duration "$D"
    done
    [[ $workers == 1 ]] || continue
    for pairs in 1 100; do
      id=pairs-$pairs-$mode-w1
      want "$id" || continue
      point "$id" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --pairs "$pairs" --size 1400 \
        --rate-mbps 1000 --duration "$D"
    done
    if want "small64-$mode-w1"; then
      point "small64-$mode-w1" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --pairs 10 --size 64 \
        --unpaced --duration "$D"
    fi
    if want "latency-$mode-idle"; then
      point "latency-$mode-idle" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --mode latency \
        --samples 2000 --interval 1ms
    fi
    if want "latency-$mode-1000"; then
      point "latency-$mode-1000" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --mode latency \
        --samples 2000 --interval 1ms --pairs 10 --size 1400 --background-mbps 1000
    fi
  done
done

# forward-floor rows need its binary, which an older build directory may lack.
need_floor_bin() {
  [[ -x $FLOOR_BIN ]] && return 0
  echo "run-benchmarks.sh: $FLOOR_BIN is missing; build it first:" >&2
  echo "  cmake --build $BUILD_DIR --target forward-floor" >&2
  exit 2
}

# The latency rows' floor: the same pings through a bare forwarder, no relay running.
if want floor-latency-idle; then
  need_floor_bin
  stop_relay
  point floor-latency-idle forward-floor --mode latency --samples 2000 --interval 1ms
fi

# 2. Issue #11's senders, each group on a fresh relay: bursty senders (a blocking thread per
# pair, one write() per frame, ~1 ms sleeps) over plain TCP, and TLS with one TLS record per
# frame (as Tailscale's Go client writes).
for workers in 1 2; do
  ids=()
  for rate in 1000 2000 3000; do ids+=("bursty-plain-w$workers-$rate"); done
  want_any "${ids[@]}" || continue
  start_relay plain "$workers"
  for rate in 1000 2000 3000; do
    id=bursty-plain-w$workers-$rate
    want "$id" || continue
    point "$id" derp-load --url "$RELAY_URL" --sender bursty --pairs 10 --size 1400 \
      --rate-mbps "$rate" --duration "$D"
  done
done
for workers in 1 2; do
  ids=()
  for rate in 500 1000 2000; do ids+=("tlsrec-w$workers-$rate"); done
  want_any "${ids[@]}" || continue
  start_relay tls "$workers"
  for rate in 500 1000 2000; do
    id=tlsrec-w$workers-$rate
    want "$id" || continue
    point "$id" derp-load --url "$RELAY_URL" "${TLS_ARGS[@]}" --tls-record-per-frame --pairs 10 \
      --size 1400 --rate-mbps "$rate" --duration "$D"
  done
done

# The kernel's floor for the tlsrec rows' shape: the same pacing, one write per message of a
# TLS row's wire size, forwarded unparsed and unencrypted by an epoll and an io_uring forwarder
# (bench/forward_floor.cc). No relay runs meanwhile.
for loop in epoll io_uring; do
  for rate in 500 1000 2000; do
    id=floor-$loop-$rate
    want "$id" || continue
    need_floor_bin
    stop_relay
    point "$id" forward-floor --loop "$loop" --pairs 10 --size 1400 --rate-mbps "$rate" \
      --duration "$D"
  done
done

# 3. WebSocket bursts (what a browser tab does when it wakes), ws:// and wss://, a fresh relay
# each. The relay serves DERP over WebSocket at the same /derp URL.
for mode in plain tls; do
  if [[ $mode == plain ]]; then id=wsburst-ws; else id=wsburst-wss; fi
  want "$id" || continue
  start_relay "$mode" 1
  ws_url=${RELAY_URL/#http/ws}  # http:// -> ws://, https:// -> wss://
  point "$id" derp-load --url "$ws_url" "${TLS_ARGS[@]}" --mode ws-burst --tries 20 \
    --burst-packets 200 --size 600 --burst-wait 2s
done

# 4. Idle connections, each count on a fresh relay so the RSS delta is its own. "max" asks
# for more than the open-file limit allows; derp-conns trims the count and says so.
for count in 1000 10000 max; do
  id=conns-tls-$count
  want "$id" || continue
  n=$count
  [[ $count == max ]] && n=1000000
  start_relay tls 2
  point "$id" derp-conns --url "$RELAY_URL" "${TLS_ARGS[@]}" --count "$n" --hold 2s
done
# The same for plain connections (the other memory target).
for count in 1000 10000; do
  id=conns-plain-$count
  want "$id" || continue
  start_relay plain 2
  point "$id" derp-conns --url "$RELAY_URL" --count "$count" --hold 2s
done

# 5. STUN binding answers per second. (Rows of other worker counts go here as stun-w<N>; the
# report lists every stun* row it finds and compares stun-w2 with stun-w1.)
if want stun; then
  start_relay plain 1
  point stun stun-load --target "127.0.0.1:$STUN_PORT" --sockets 4 --duration "$D"
fi
if want stun-w2; then
  start_relay plain 2
  point stun-w2 stun-load --target "127.0.0.1:$STUN_PORT" --sockets 4 --duration "$D"
fi
stop_relay

# 6. The report.
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
SANITIZE=$(sed -n 's/^SANITIZE:STRING=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -1) ]]; then COMMIT="$COMMIT (with local changes)"; fi
ELAPSED_SECONDS=$SECONDS
export RESULTS OUT WORK BUILD_TYPE SANITIZE COMMIT SECONDS_PER_POINT ELAPSED_SECONDS LOADAVG
TARGETS=$REPO/bench/targets.json
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
NPROC=$(nproc)
KERNEL=$(uname -sr)
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
NOFILE="$(ulimit -Sn) soft / $(ulimit -Hn) hard"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export TARGETS CPU_MODEL NPROC KERNEL MEM NOFILE DATE
python3 "$REPO/bench/report.py"
echo "wrote $OUT" >&2
