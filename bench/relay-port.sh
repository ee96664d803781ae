# Sourced by the bench scripts that start a derp-relay of their own (perf-relay.sh,
# syscalls-relay.sh, watch-shards.sh, idle-cpu.sh).

# relay_work NAME: makes WORK, a temporary directory, sets RELAY_PID and LOAD_PID empty, and on
# exit kills both, calls the script's keep_results function if it has one, and removes WORK.
relay_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-$1.XXXXXX")
  RELAY_PID=""
  LOAD_PID=""
  trap relay_work_cleanup EXIT
}
relay_work_cleanup() {
  [[ -n $LOAD_PID ]] && kill "$LOAD_PID" 2>/dev/null || true
  [[ -n $RELAY_PID ]] && kill "$RELAY_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if declare -F keep_results >/dev/null; then keep_results; fi
  rm -rf "$WORK"
}

# relay_load_args NAME USAGE_END "$@": the arguments perf-relay.sh and syscalls-relay.sh share,
# BUILD_DIR plain|tls RATE_MBPS [derp-load flags...]. Too few prints lines 2..USAGE_END of the
# script's own header and exits 2; so do a bad mode or rate, and a missing perf. Sets BUILD_DIR,
# MODE, RATE and LOAD_FLAGS (an array).
relay_load_args() {
  local name=$1 usage_end=$2
  shift 2
  [[ $# -ge 3 ]] || { sed -n "2,${usage_end}p" "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
  BUILD_DIR=$(cd "$1" && pwd)
  MODE=$2
  RATE=$3
  shift 3
  LOAD_FLAGS=("$@")
  [[ $MODE == plain || $MODE == tls ]] || { echo "$name: mode is plain or tls" >&2; exit 2; }
  [[ $RATE =~ ^[0-9]+$ && $RATE -gt 0 ]] ||
    { echo "$name: RATE_MBPS wants a whole number above 0" >&2; exit 2; }
  command -v perf >/dev/null || { echo "$name: perf is not installed" >&2; exit 2; }
}

# relay_under_load BIN SECONDS: starts BIN (start_relay, --workers $WORKERS or 1) and derp-load
# against it in the background (10 pairs x 1400 B at RATE, LOAD_FLAGS, SECONDS long, output in
# WORK/load.txt), and returns 2 s in, when the load is steady. Sets LOAD_PID; exits 1 when the
# relay did not start.
relay_under_load() {
  start_relay "$1" "$MODE" "${WORKERS:-1}" "$WORK" || exit 1
  "$BUILD_DIR/bench/derp-load" --url "$RELAY_URL" "${RELAY_CLIENT[@]}" --pairs 10 --size 1400 \
    --rate-mbps "$RATE" --duration "${2}s" --relay-pid "$RELAY_PID" "${LOAD_FLAGS[@]}" \
    >"$WORK/load.txt" 2>&1 &
  LOAD_PID=$!
  sleep 2
}

# load_done: waits for relay_under_load's derp-load; on its failure prints its output and exits 1.
load_done() {
  wait "$LOAD_PID" || { cat "$WORK/load.txt" >&2; exit 1; }
  LOAD_PID=""
}

# relay_port LOG: prints the DERP port the relay logged in LOG ("DERP on http(s)://HOST:PORT/derp"),
# waiting up to 10 s for the line; prints nothing when it never came.
relay_port() {
  local log=$1 port=""
  for _ in $(seq 100); do
    port=$(sed -n 's|.*DERP on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/derp.*|\1|p' "$log" | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  echo "$port"
}

# start_relay BIN plain|tls WORKERS WORK [relay flags...]: starts BIN on 127.0.0.1 (a port of its
# choosing, no STUN, no HTTP port; for tls a self-signed certificate for "localhost" in
# WORK/certs), logging to WORK/relay.log. Sets RELAY_PID, RELAY_PORT, RELAY_URL (its DERP URL),
# RELAY_CLIENT (derp-load's flags to reach it, an array) and RELAY_CURL (curl's, an array).
# Returns 1, after printing the log, when the relay did not start; the caller's cleanup kills
# RELAY_PID.
start_relay() {
  local bin=$1 mode=$2 workers=$3 work=$4
  shift 4
  local args=(-a 127.0.0.1:0 --stun-port 0 -c "$work/derper.key" --workers "$workers"
              --http-port -1)
  RELAY_CLIENT=()
  RELAY_CURL=()
  if [[ $mode == tls ]]; then
    args+=(--certmode selfsigned --certdir "$work/certs" --hostname localhost)
  fi
  "$bin" "${args[@]}" "$@" >"$work/relay.log" 2>&1 &
  RELAY_PID=$!
  RELAY_PORT=$(relay_port "$work/relay.log")
  if [[ -z $RELAY_PORT ]]; then
    echo "derp-relay did not start:" >&2
    cat "$work/relay.log" >&2
    return 1
  fi
  if [[ $mode == tls ]]; then
    RELAY_URL=https://localhost:$RELAY_PORT/derp
    RELAY_CLIENT=(--ca-file "$work/certs/localhost.crt" --dial-host 127.0.0.1)
    RELAY_CURL=(--cacert "$work/certs/localhost.crt" --resolve "localhost:$RELAY_PORT:127.0.0.1")
  else
    RELAY_URL=http://127.0.0.1:$RELAY_PORT/derp
  fi
}
