#!/usr/bin/env bash
# stunc as a real process against real STUN servers on loopback: our derp-relay's responder
# (default and --stun-strict), coturn (turnserver --stun-only) and stund (package stun-server),
# each over IPv4 and, where the server supports it, IPv6; a closed port, a silent server, bad
# flags, --json through jq, and --count summaries. The mapped address every server reports must
# be the client's own source address and port (read from --json). Usage: stunc_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
stunc="$build/stunc/stunc"
relay="$build/relay/derp-relay"
work=$(mktemp -d)
pids=()
# Servers run under `timeout`, which passes SIGTERM on to them (SIGKILL would orphan them).
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }

for tool in jq python3 turnserver stund timeout; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh installs it)"
done
[ -x "$stunc" ] || fail "no stunc binary at $stunc"
[ -x "$relay" ] || fail "no derp-relay binary at $relay"

# Runs stunc (bounded) and sets $out (stdout), $err (stderr) and $rc.
run() {
  set +e
  out=$(timeout 60 "$stunc" "$@" 2>"$work/stderr")
  rc=$?
  set -e
  err=$(cat "$work/stderr")
}
lines() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | wc -l; fi; }

# Waits (bounded) until $1 has a line matching $2; prints the first match.
wait_log() {
  local log=$1 pattern=$2
  for _ in $(seq 1 200); do
    if grep -qE "$pattern" "$log"; then grep -oE "$pattern" "$log" | head -n 1; return 0; fi
    sleep 0.05
  done
  cat "$log" >&2
  fail "no line matching '$pattern' in $log"
}

# A UDP port that is free on 127.0.0.1 (and on ::1 when $2 is "v6 too") right now.
free_udp_port() {
  python3 - "$@" <<'PY'
import socket, sys
for _ in range(50):
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(("127.0.0.1", 0))
    port = s4.getsockname()[1]
    try:
        t4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t4.bind(("127.0.0.1", port)); t4.close()
        if len(sys.argv) > 1:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.bind(("::1", port)); s6.close()
            t6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); t6.bind(("::1", port)); t6.close()
    except OSError:
        s4.close(); continue
    s4.close(); print(port); sys.exit(0)
sys.exit(1)
PY
}

# Polls (bounded) until stunc gets an answer from $@; the server is then up.
wait_answer() {
  for _ in $(seq 1 100); do
    timeout 5 "$stunc" --timeout 100ms "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

have_v6=0
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' \
  2>/dev/null; then
  have_v6=1
else
  echo "note: no ::1 on this host; the IPv6 checks are skipped"
fi

# Checks one answered request in each output form against server $1 port $2 (IP literal);
# $3 names the server, $4 the response size in bytes (derp-protocol.md §11.3 for our relay; "any"
# for third-party servers, whose attribute sets vary by version); further arguments go to stunc.
check_server() {
  local ip=$1 port=$2 name=$3 size=$4
  shift 4
  local hp="$ip:$port"
  [[ $ip == *:* ]] && hp="[$ip]:$port"

  run "$@" "$ip" "$port"
  [ "$rc" = 0 ] || fail "$name: exit $rc: $err"
  [ "$(lines "$out")" = 3 ] || fail "$name: want 3 lines, got: $out"
  [ "$(sed -n 1p <<<"$out")" = "sent addr: $hp" ] || fail "$name: sent line: $out"
  [ "$(sed -n 2p <<<"$out")" = "from addr: $hp" ] || fail "$name: from line: $out"
  local want_stun="^stun addr: $ip:[0-9]+$"
  [[ $ip == *:* ]] && want_stun="^stun addr: \\[$ip\\]:[0-9]+$"
  sed -n 3p <<<"$out" | grep -qE "$want_stun" || fail "$name: stun line: $out"
  [ -z "$err" ] || fail "$name: unexpected stderr: $err"
  pass "$name: the reference's three lines: $(tr '\n' '|' <<<"$out")"

  run --json "$@" "$ip" "$port"
  [ "$rc" = 0 ] || fail "$name --json: exit $rc: $err"
  local local_addr stun_addr
  local_addr=$(jq -er .local_addr <<<"$out") || fail "$name --json: no local_addr: $out"
  stun_addr=$(jq -er .stun_addr <<<"$out") || fail "$name --json: no stun_addr: $out"
  [ "$stun_addr" = "$local_addr" ] || fail "$name: mapped $stun_addr != our source $local_addr"
  jq -e --arg size "$size" --arg hp "$hp" \
    '.sent == 1 and .received == 1 and .server == $hp and .replies[0].from == $hp and
     ($size == "any" or .replies[0].bytes == ($size | tonumber)) and
     .replies[0].stun_port == .local_port and
     (.replies[0].txid | test("^[0-9a-f]{24}$"))' <<<"$out" >/dev/null ||
    fail "$name --json fields: $out"
  pass "$name: --json stun_addr $stun_addr equals our source address; $(jq .replies[0].bytes <<<"$out")-byte answer"
}

# --- usage errors: exit 2, one line on stderr, nothing on stdout --------------------------------
for args in "--no-such-flag 127.0.0.1" "" "--count 0 127.0.0.1" "--count x 127.0.0.1" \
  "--timeout 3 127.0.0.1" "--interval -1s 127.0.0.1" "127.0.0.1 70000" "127.0.0.1 0" \
  "127.0.0.1 abc" "-4 -6 127.0.0.1" "127.0.0.1 3478 extra" "[127.0.0.1]"; do
  # shellcheck disable=SC2086
  run $args
  [ "$rc" = 2 ] || fail "'stunc $args': exit $rc, want 2 ($err)"
  [ "$(lines "$err")" = 1 ] && [ -z "$out" ] || fail "'stunc $args': want one line: $err / $out"
  grep -q "^stunc: " <<<"$err" || fail "'stunc $args': line not prefixed: $err"
  pass "usage error 'stunc $args' -> exit 2: $err"
done
run --help
[ "$rc" = 0 ] && grep -q "stunc" <<<"$out" && grep -q "Examples:" <<<"$out" || fail "--help: $out"
pass "--help names the program and shows examples"

# --- resolution ------------------------------------------------------------------------------
run -6 127.0.0.1 3478
[ "$rc" = 1 ] && [ "$err" = "stunc: 127.0.0.1 has no IPv6 address (-6)" ] && [ -z "$out" ] ||
  fail "-6 with an IPv4 literal: rc=$rc $err"
pass "no address of the asked family -> exit 1: $err"

# --- our relay's responder ---------------------------------------------------------------------
# Starts a relay (listen address, name, extra flags...) and sets $stun_port. Not in a $(...)
# subshell, so that $pids keeps the process for cleanup.
start_relay() {
  local addr=$1 name=$2
  shift 2
  "$relay" -a "$addr" -c "$work/$name.key" --stun-port 0 --http-port -1 "$@" \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  stun_port=$(wait_log "$work/$name.log" "STUN on UDP port [0-9]+" | grep -oE "[0-9]+$")
}

start_relay 127.0.0.1:0 relay4
p4=$stun_port
check_server 127.0.0.1 "$p4" "relay v4" 32
check_server 127.0.0.1 "$p4" "relay v4 --rfc5389" 32 --rfc5389
run -4 localhost "$p4"
[ "$rc" = 0 ] && [ "$(sed -n 1p <<<"$out")" = "sent addr: 127.0.0.1:$p4" ] || fail "-4 localhost: $out $err"
pass "a name: -4 localhost resolves to 127.0.0.1"
run -timeout 2s 127.0.0.1 "$p4"
[ "$rc" = 0 ] || fail "Go-style -timeout: rc=$rc $err"
pass "Go-style single-dash -timeout 2s is accepted, as the reference's flag package does"

run --count 3 --interval 100ms 127.0.0.1 "$p4"
[ "$rc" = 0 ] || fail "--count 3: exit $rc: $err"
for seq in 1 2 3; do
  grep -qE "^32 bytes from 127\.0\.0\.1:$p4: seq=$seq stun addr=127\.0\.0\.1:[0-9]+ time=[0-9]+\.[0-9]{3} ms$" \
    <<<"$out" || fail "--count 3: no line for seq=$seq: $out"
done
grep -qE "^3 sent, 3 received, 0% loss, rtt min/avg/max/stddev = [0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+ ms$" \
  <<<"$out" || fail "--count 3 summary: $out"
pass "--count 3: three reply lines and the summary: $(tail -n 1 <<<"$out")"

run --count 3 --interval 50ms --json 127.0.0.1 "$p4"
jq -e '.sent == 3 and .received == 3 and (.replies | length) == 3 and
       ([.replies[].stun_port] | unique) == [.local_port] and
       ([.replies[].txid] | unique | length) == 3 and .rtt_ms.min <= .rtt_ms.max' <<<"$out" \
  >/dev/null || fail "--count 3 --json: $out"
pass "--count 3 --json: three answers, one mapped port (ours), three distinct transaction IDs"

# derper's strict rule: only Tailscale's form is answered, so --rfc5389 is met with silence.
start_relay 127.0.0.1:0 strict4 --stun-strict
ps4=$stun_port
check_server 127.0.0.1 "$ps4" "relay --stun-strict v4" 32
run --rfc5389 --timeout 500ms 127.0.0.1 "$ps4"
[ "$rc" = 1 ] && [ -z "$out" ] || fail "silent server: rc=$rc out=$out err=$err"
[ "$err" = "stunc: no answer from 127.0.0.1:$ps4 within 500ms" ] || fail "silent server line: $err"
pass "unanswered (strict relay, bare request) -> exit 1, one line: $err"
run --rfc5389 --timeout 300ms --count 2 --interval 50ms 127.0.0.1 "$ps4"
[ "$rc" = 1 ] && grep -qx "2 sent, 0 received, 100% loss" <<<"$out" || fail "all lost: $out"
grep -qx "seq=2: no answer from 127.0.0.1:$ps4 within 300ms" <<<"$out" || fail "loss line: $out"
pass "--count 2 with no answers -> exit 1 and 100% loss"

if [ "$have_v6" = 1 ]; then
  start_relay "[::1]:0" relay6
  p6=$stun_port
  check_server ::1 "$p6" "relay v6" 44
  check_server ::1 "$p6" "relay v6 --rfc5389" 44 --rfc5389
  run "[::1]" "$p6"
  [ "$rc" = 0 ] && [ "$(sed -n 1p <<<"$out")" = "sent addr: [::1]:$p6" ] || fail "[::1]: $out"
  pass "a bracketed IPv6 literal works as HOST"
fi

# --- a closed port: ICMP port unreachable ends it at once, with one line ------------------------
closed=$(free_udp_port)
run --timeout 30s 127.0.0.1 "$closed"
[ "$rc" = 1 ] && [ -z "$out" ] && [ "$(lines "$err")" = 1 ] || fail "closed port: rc=$rc $out $err"
grep -q "refused" <<<"$err" || fail "closed port: the line should say refused: $err"
pass "closed port -> exit 1, one line: $err"
run --json 127.0.0.1 "$closed"
jq -e '.received == 0 and .failures[0].kind == "refused" and (.error | test("refused"))' \
  <<<"$out" >/dev/null && [ "$rc" = 1 ] || fail "closed port --json: $out"
pass "closed port --json: failures[0].kind = refused"
if [ "$have_v6" = 1 ]; then
  closed6=$(free_udp_port v6)
  run ::1 "$closed6"
  [ "$rc" = 1 ] && grep -q "refused by \[::1\]:$closed6" <<<"$err" || fail "closed v6 port: $err"
  pass "closed IPv6 port -> $err"
fi

# --- coturn ----------------------------------------------------------------------------------
coturn_up=0
for _ in 1 2 3 4 5; do  # a free port can be taken between our check and coturn's bind: retry
  port=$(if [ "$have_v6" = 1 ]; then free_udp_port v6; else free_udp_port; fi)
  listen=(--listening-ip=127.0.0.1)
  [ "$have_v6" = 1 ] && listen+=(--listening-ip=::1)
  timeout -k 5 120 turnserver "${listen[@]}" --listening-port="$port" --stun-only --no-cli --no-tls \
    --no-dtls --log-file=stdout --simple-log >"$work/coturn.log" 2>&1 &
  pids+=($!)
  if wait_answer --rfc5389 127.0.0.1 "$port"; then coturn_up=1; break; fi
  kill -TERM "${pids[-1]}" 2>/dev/null || true
done
[ "$coturn_up" = 1 ] || { cat "$work/coturn.log" >&2; fail "coturn did not start"; }
check_server 127.0.0.1 "$port" "coturn v4" any
check_server 127.0.0.1 "$port" "coturn v4 --rfc5389" any --rfc5389
if [ "$have_v6" = 1 ]; then
  check_server ::1 "$port" "coturn v6" any
  check_server ::1 "$port" "coturn v6 --rfc5389" any --rfc5389
fi

# --- stund (RFC 3489-era; needs two addresses and two ports; IPv4 only) --------------------------
stund_up=0
for _ in 1 2 3 4 5; do
  port=$(free_udp_port)
  alt=$((port + 1))
  timeout -k 5 120 stund -h 127.0.0.1 -a 127.0.0.2 -p "$port" -o "$alt" >"$work/stund.log" 2>&1 &
  pids+=($!)
  if wait_answer --rfc5389 127.0.0.1 "$port"; then stund_up=1; break; fi
  kill -TERM "${pids[-1]}" 2>/dev/null || true
done
[ "$stund_up" = 1 ] || { cat "$work/stund.log" >&2; fail "stund did not start"; }
check_server 127.0.0.1 "$port" "stund v4" any
check_server 127.0.0.1 "$port" "stund v4 --rfc5389" any --rfc5389
echo "note: stund has no IPv6 support (it binds IPv4 sockets only), so it is checked over IPv4"

echo "stunc checks: $passed passed, 0 failed"
