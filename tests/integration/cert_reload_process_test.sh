#!/usr/bin/env bash
# derp-relay --certmode manual as a real process: SIGHUP reloads a replaced pair (logged with its
# new sha256-raw pin, served to the next handshake, meta certificate still appended), a broken
# pair on SIGHUP is refused with a log line naming the file and the reason and counted in
# /debug/varz while the previous certificate keeps serving, and the certificate flags are checked
# at start-up (exit 2, one line). Usage: cert_reload_process_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Waits (bounded) until the log has $3 lines (default 1) matching $2; prints the last match.
wait_log() {
  local log=$1 pattern=$2 count=${3:-1}
  for _ in $(seq 1 200); do
    if [ "$(grep -cE "$pattern" "$log")" -ge "$count" ]; then
      grep -oE "$pattern" "$log" | tail -n 1
      return 0
    fi
    sleep 0.05
  done
  cat "$log" >&2
  fail "no $count log line(s) matching '$pattern'"
}

# A self-signed P-256 pair for localhost in $1.crt / $1.key.
make_pair() {
  timeout 20 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
leaf_sha() { openssl x509 -in "$1" -outform der | sha256sum | cut -d' ' -f1; }
# The SHA-256 of the leaf a new handshake gets, and how many certificates came with it.
served_sha() {
  timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null \
    2>/dev/null | openssl x509 -outform der | sha256sum | cut -d' ' -f1
}
served_count() {
  timeout 5 openssl s_client -connect "127.0.0.1:$port" -servername localhost -showcerts \
    </dev/null 2>/dev/null | grep -c "BEGIN CERTIFICATE"
}
varz() { curl -sS --max-time 5 "http://127.0.0.1:$debug_port/debug/varz"; }

# --- flags ----------------------------------------------------------------------------------------
for args in "--certmode letsencrypt --certdir $work/x --acme-challenge dns-01" \
            "--certmode letsencrypt --certdir $work/x --http-port -1 --acme-challenge http-01" \
            "--certmode letsencrypt --certdir $work/x --acme-directory http://ca.example/dir" \
            "--certmode letsencrypt --certdir $work/x --acme-renew-before 10"; do
  set +e
  # shellcheck disable=SC2086
  out=$("$relay" -c "$work/k" $args 2>&1); rc=$?
  set -e
  [ "$rc" = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] || fail "$args: rc=$rc out=$out"
  pass "$args -> $out"
done
help=$("$relay" --help)
grep -q -- "--acme-directory" <<<"$help" || fail "--help lacks --acme-directory"

# --- SIGHUP reloads a replaced pair ----------------------------------------------------------------
mkdir -p "$work/certs"
make_pair "$work/certs/localhost"
first=$(leaf_sha "$work/certs/localhost.crt")
log="$work/relay.log"
"$relay" -a 127.0.0.1:0 -c "$work/derper.key" --certmode manual --certdir "$work/certs" \
  --hostname localhost --http-port -1 --stun=false --debug-addr 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
url=$(wait_log "$log" "https://127\.0\.0\.1:[0-9]+/derp")
port=${url##*:}; port=${port%/derp}
debug_port=$(wait_log "$log" "/debug/ on port [0-9]+" | grep -oE "[0-9]+$")
[ "$(wait_log "$log" "sha256-raw:[0-9a-f]{64}")" = "sha256-raw:$first" ] || fail "start-up pin"
[ "$(served_sha)" = "$first" ] || fail "first certificate not served"

make_pair "$work/next"
second=$(leaf_sha "$work/next.crt")
cp "$work/next.key" "$work/certs/localhost.key"
cp "$work/next.crt" "$work/certs/localhost.crt"
kill -HUP "$pid"
wait_log "$log" "sha256-raw:$second" >/dev/null
[ "$(served_sha)" = "$second" ] || fail "after SIGHUP the new certificate is not served"
[ "$(served_count)" = 2 ] || fail "after SIGHUP: want leaf + meta certificate"
kill -0 "$pid" || fail "SIGHUP ended the relay"
grep -qx "derp_tls_cert_reloads_total 1" <<<"$(varz)" || fail "reload not counted"
pass "SIGHUP: new pair served ($second), meta certificate appended, counted"

# --- a broken pair is refused; the previous one keeps serving --------------------------------------
echo "garbage" >"$work/certs/localhost.crt"
kill -HUP "$pid"
line=$(wait_log "$log" "refusing the new pair \(unparsable\): [^;]*")
echo "$line" | grep -q "$work/certs/localhost.crt" || fail "refusal does not name the file: $line"
[ "$(served_sha)" = "$second" ] || fail "a broken pair replaced the good one"
grep -qx 'derp_tls_cert_reload_failures_total{reason="unparsable"} 1' <<<"$(varz)" ||
  fail "refusal not counted"
pass "broken pair refused ($line), previous certificate still served"

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "SIGTERM did not stop the relay (SIGHUP handler left pending?)"
pid=""
pass "SIGTERM still stops the relay after SIGHUPs"
