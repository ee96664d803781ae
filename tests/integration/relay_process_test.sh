#!/usr/bin/env bash
# derp-relay as a real process: flags (Go-style spellings, errors with exit 2), the key file,
# plain and TLS listeners with curl, the port-80-style listener, STUN with coturn's client, and a
# bounded graceful shutdown on SIGTERM. Usage: relay_process_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
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

# --- flags ---------------------------------------------------------------------------------------
set +e
out=$("$relay" --no-such-flag 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown flag: exit $rc, want 2"
[ "$(echo "$out" | wc -l)" = 1 ] || fail "unknown flag: want one line, got: $out"
pass "unknown flag -> exit 2, one line: $out"

set +e
out=$("$relay" -c "$work/k" --tcp-write-timeout 10 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && echo "$out" | grep -q "missing unit" || fail "bad duration: rc=$rc out=$out"
pass "bad duration -> $out"

set +e
out=$("$relay" -c "$work/k" -a 127.0.0.1:443 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && echo "$out" | grep -q "certmode" || fail ":443 without certmode: rc=$rc out=$out"
pass ":443 without TLS material -> $out"

# Read all of --help first: grep -q stops at its match, and the relay would then die of SIGPIPE
# writing the rest (pipefail turns that into a failure once --help outgrows the pipe buffer).
help=$("$relay" --help)
grep -q -- "--tcp-user-timeout" <<<"$help" || fail "--help lacks flags"
pass "--help lists the flags"

# --- plain relay, Go-style single-dash flags ----------------------------------------------------
log="$work/plain.log"
"$relay" -a=127.0.0.1:0 -c "$work/state/derper.key" -stun-port=0 -http-port -1 -workers 2 \
  >"$log" 2>&1 &
pids+=($!)
plain_pid=$!
url=$(wait_log "$log" "http://127\.0\.0\.1:[0-9]+/derp")
port=${url##*:}; port=${port%/derp}
key1=$(wait_log "$log" "nodekey:[0-9a-f]{64}")
[ -f "$work/state/derper.key" ] || fail "key file not created"
[ "$(stat -c %a "$work/state/derper.key")" = 600 ] || fail "key file mode is not 0600"
grep -q '"PrivateKey": "privkey:' "$work/state/derper.key" || fail "key file format"
pass "key file created with mode 0600 in derper's format"

resp=$(curl -sS -i --max-time 5 -H "X-Tailscale-Challenge: ts_127.0.0.1" "http://127.0.0.1:$port/generate_204")
echo "$resp" | head -n 1 | grep -q "204" || fail "generate_204: $resp"
echo "$resp" | grep -qi "^X-Tailscale-Response: response ts_127.0.0.1" || fail "challenge: $resp"
pass "/generate_204 answers the challenge"

code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/derp")
[ "$code" = 426 ] || fail "/derp without upgrade: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -I "http://127.0.0.1:$port/derp/probe")
[ "$code" = 200 ] || fail "/derp/probe HEAD: $code"
pass "/derp without Upgrade -> 426, /derp/probe -> 200"

stun_port=$(wait_log "$log" "STUN on UDP port [0-9]+" | grep -oE "[0-9]+$")
stun_out=$(timeout 5 turnutils_stunclient -p "$stun_port" 127.0.0.1 2>&1 || true)
echo "$stun_out" | grep -q "UDP reflexive addr: 127.0.0.1:" || fail "STUN: $stun_out"
pass "coturn's turnutils_stunclient gets its reflexive address"

# SIGTERM: the relay stops by itself, through its shutdown path, with status 0. The wait is
# generous (a loaded machine is only slower); how long it took is printed, not asserted.
start=$(date +%s%N)
kill -TERM "$plain_pid"
for _ in $(seq 1 600); do kill -0 "$plain_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$plain_pid" 2>/dev/null && fail "relay still running 60 s after SIGTERM"
rc=0
wait "$plain_pid" || rc=$?
[ "$rc" = 0 ] || fail "exit code after SIGTERM: $rc"
grep -q "signal 15, shutting down" "$log" || fail "no shutdown line for SIGTERM in the log"
grep -q "derp-relay: stopped" "$log" || fail "the relay exited without logging that it stopped"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
pass "SIGTERM -> graceful shutdown logged, exit 0 (took ${ms} ms)"

# Restart: the same key is loaded, not replaced.
"$relay" -a 127.0.0.1:0 -c "$work/state/derper.key" --stun=false --http-port=-1 >"$log.2" 2>&1 &
pids+=($!)
key2=$(wait_log "$log.2" "nodekey:[0-9a-f]{64}")
[ "$key1" = "$key2" ] || fail "key changed across restarts: $key1 vs $key2"
kill -TERM $! ; wait $! || true
pass "restart keeps the key"

# A corrupt key file is an error, never silently replaced.
echo '{"PrivateKey": "privkey:nothex"}' >"$work/bad.key"
set +e
out=$("$relay" -a 127.0.0.1:0 -c "$work/bad.key" --stun=false 2>&1); rc=$?
set -e
[ "$rc" != 0 ] && echo "$out" | grep -q "bad.key" || fail "corrupt key file: rc=$rc out=$out"
grep -q nothex "$work/bad.key" || fail "corrupt key file was replaced"
pass "corrupt key file -> error naming it: $out"

# --- TLS relay with a generated certificate and the plain port beside it ------------------------
log="$work/tls.log"
"$relay" -a 127.0.0.1:0 -c "$work/state/derper.key" --certmode selfsigned --certdir "$work/certs" \
  --hostname localhost --http-port 0 --stun=false >"$log" 2>&1 &
pids+=($!)
tls_pid=$!
url=$(wait_log "$log" "https://127\.0\.0\.1:[0-9]+/derp")
port=${url##*:}; port=${port%/derp}
http_port=$(wait_log "$log" "plain HTTP on port [0-9]+" | grep -oE "[0-9]+$")
pin=$(wait_log "$log" "sha256-raw:[0-9a-f]{64}")
want=$(openssl x509 -in "$work/certs/localhost.crt" -outform der | sha256sum | cut -d' ' -f1)
[ "$pin" = "sha256-raw:$want" ] || fail "logged pin $pin != certificate's $want"
pass "self-signed certificate generated; logged pin matches"

code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$work/certs/localhost.crt" \
  --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/derp/latency-check")
[ "$code" = 200 ] || fail "TLS latency-check: $code"
certs=$(timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost -showcerts \
  </dev/null 2>/dev/null | grep -c "BEGIN CERTIFICATE")
[ "$certs" = 2 ] || fail "want leaf + meta certificate, got $certs"
pass "TLS: curl verifies the certificate; the chain carries the meta certificate"

resp=$(curl -sS -i --max-time 5 "http://127.0.0.1:$http_port/generate_204")
echo "$resp" | head -n 1 | grep -q 204 || fail "plain port generate_204: $resp"
loc=$(curl -sS -o /dev/null -w '%{redirect_url}' --max-time 5 -H "Host: localhost:$http_port" \
  "http://127.0.0.1:$http_port/derp")
[ "$loc" = "https://localhost:$http_port/derp" ] || fail "plain port /derp redirect: $loc"
pass "plain port: /generate_204 served, /derp redirected to HTTPS"

kill -TERM "$tls_pid"; wait "$tls_pid" || fail "TLS relay exit code after SIGTERM"
echo "relay process checks: $passed passed, 0 failed"
