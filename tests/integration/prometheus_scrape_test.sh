#!/usr/bin/env bash
# A real Prometheus scrapes a real derp-relay's /debug/varz: the target comes up, and after a
# little traffic (a DERP upgrade, /generate_204, a STUN request from coturn's client) the series
# it stored have the values that traffic implies. No assertion depends on the machine's speed:
# the relay's uptime is checked against wall clock reads taken around its start and around the
# query. Usage: prometheus_scrape_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] || continue
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true  # reaped here, so the shell reports no "Killed"
  done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }

# Waits (bounded) until the relay's log has a line matching $2; prints the match.
wait_log() {
  local log=$1 pattern=$2
  for _ in $(seq 1 100); do
    if grep -qE "$pattern" "$log"; then grep -oE "$pattern" "$log" | head -n 1; return 0; fi
    sleep 0.05
  done
  cat "$log" >&2
  fail "no log line matching '$pattern'"
}

# A port nothing listens on now (the kernel's pick; Prometheus cannot be told to use port 0 and
# report it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- the relay and some traffic ------------------------------------------------------------------
log="$work/relay.log"
launched_at=$(date +%s.%N)  # the relay's clock starts after this ...
"$relay" -a 127.0.0.1:0 -c "$work/derper.key" -stun-port=0 -http-port -1 >"$log" 2>&1 &
pids+=($!)
url=$(wait_log "$log" "http://127\.0\.0\.1:[0-9]+/derp")
ready_at=$(date +%s.%N)  # ... and before this: it logs its address after starting
port=${url##*:}; port=${port%/derp}
stun_port=$(wait_log "$log" "STUN on UDP port [0-9]+" | grep -oE "[0-9]+$")

code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/generate_204")
[ "$code" = 204 ] || fail "/generate_204: $code"
# A DERP upgrade by hand: the relay answers 101 and its ServerKey frame, then gives up waiting for
# ClientInfo; the upgrade alone counts as a DERP accept.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /derp HTTP/1.1\r\nHost: localhost\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n' >&3
head=$(timeout 5 head -c 12 <&3 || true)
exec 3<&- 3>&-
[ "$head" = "HTTP/1.1 101" ] || fail "DERP upgrade: got '$head'"
stun_out=$(timeout 5 turnutils_stunclient -p "$stun_port" 127.0.0.1 2>&1 || true)
echo "$stun_out" | grep -q "UDP reflexive addr: 127.0.0.1:" || fail "STUN: $stun_out"
pass "relay on port $port: /generate_204, a DERP upgrade and a STUN request served"

curl -sS --max-time 5 -o "$work/varz.txt" "http://127.0.0.1:$port/debug/varz"
grep -q '^derp_accepts_total ' "$work/varz.txt" || fail "/debug/varz: $(head -c 300 "$work/varz.txt")"
promtool_rc=0
timeout 30 promtool check metrics <"$work/varz.txt" >"$work/promtool.out" 2>&1 || promtool_rc=$?
[ "$promtool_rc" = 0 ] || fail "promtool check metrics exit $promtool_rc: $(cat "$work/promtool.out")"
[ ! -s "$work/promtool.out" ] || fail "promtool check metrics warns: $(cat "$work/promtool.out")"
pass "/debug/varz passes promtool check metrics (exit 0, no warning)"

# --- Prometheus ----------------------------------------------------------------------------------
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: derp
    metrics_path: /debug/varz
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

# Prints the value of the first series `query` returns (evaluated at unix time $2 if given), or
# nothing.
query() {
  local at=()
  [ -z "${2:-}" ] || at=(--data-urlencode "time=$2")
  curl -sS --max-time 2 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" \
    "${at[@]}" 2>/dev/null | jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true
}

up=""
for _ in $(seq 1 80); do  # 20 s
  up=$(query 'up{job="derp"}')
  [ "$up" = 1 ] && break
  sleep 0.25
done
if [ "$up" != 1 ]; then
  tail -n 20 "$work/prometheus.log" >&2
  fail "up{job=\"derp\"} is '$up' after 20 s"
fi
pass "Prometheus scrapes the relay: up{job=\"derp\"} = 1"

# Checks that `query` returns a value satisfying the jq condition `cond` on `v`.
expect() {
  local q=$1 cond=$2 v
  v=$(query "$q")
  [ -n "$v" ] || fail "$q: no value"
  jq -en --arg v "$v" "(\$v | tonumber) as \$v | $cond" >/dev/null || fail "$q = $v, want $cond"
  pass "$q = $v"
}
expect 'derp_accepts_total' '$v >= 1'
expect 'derp_http_requests_total{route="generate_204"}' '$v >= 1'
expect 'stun_requests_total{disposition="success"}' '$v >= 1'
expect 'stun_addrfamily_total{family="ipv4"}' '$v >= 1'
expect 'stun_response_duration_seconds_count' '$v >= 1'
expect 'process_resident_memory_bytes' '$v > 0'
expect 'process_open_fds' '$v > 0'
expect 'count(derp_packets_dropped_total)' '$v == 16'
expect 'derpkit_build_info' '$v == 1'

# Uptime: one stored sample, its value and its scrape timestamp read at the same evaluation time.
# Prometheus stamps a sample when the scrape starts; the relay computes uptime while answering,
# within the 1 s scrape timeout. So timestamp - uptime lies between (relay start - 1 s) and the
# relay start, which lies in [launched_at, ready_at]; and uptime <= (now - launched_at).
# Prometheus timestamps have millisecond resolution, hence 0.002 s of slack.
eval_at=$(date +%s.%N)
uptime=$(query 'derp_uptime_seconds' "$eval_at")
stamp=$(query 'timestamp(derp_uptime_seconds)' "$eval_at")
now=$(date +%s.%N)
[ -n "$uptime" ] && [ -n "$stamp" ] || fail "derp_uptime_seconds: no sample (value '$uptime', timestamp '$stamp')"
jq -en --argjson up "$uptime" --argjson ts "$stamp" --argjson launched "$launched_at" \
  --argjson ready "$ready_at" --argjson now "$now" \
  '($ts - $up) >= ($launched - 1.002) and ($ts - $up) <= ($ready + 0.002) and $up <= ($now - $launched + 0.002)' \
  >/dev/null || fail "derp_uptime_seconds = $uptime scraped at $stamp: relay start would be $(jq -n "$stamp - $uptime"), launched $launched_at, ready $ready_at, now $now"
pass "derp_uptime_seconds = $uptime: consistent with the relay's start between launch and readiness"

echo "prometheus scrape checks: $passed passed, 0 failed"
