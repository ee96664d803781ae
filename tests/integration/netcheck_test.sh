#!/usr/bin/env bash
# netcheck as a real process against real derp-relays on loopback: three relays (127.0.0.1,
# 127.0.0.2, ::1) with STUN on free ports and self-signed certificates pinned in a DERP map file
# (as `make run` pins them), then: the JSON report (UDP, IPv4/IPv6, GlobalV4/GlobalV6,
# MappingVariesByDestIP, HairPinning, latencies, PreferredDERP); the text form; one region's STUN
# port closed; no UDP at all (HTTPS /derp/latency-check instead); --textfile checked by promtool;
# --every with a bounded run ended by SIGINT; --connect; the captive-portal check against a relay
# and against a fake portal; bad flags and unusable map sources.
# Nothing leaves loopback: every run passes --derp-map and --portmap=false.
# Usage: netcheck_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
netcheck="$build/netcheck/netcheck"
for tool in jq promtool python3 openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
# The system interpreter: a pyenv shim in PATH costs a second per call.
py=$(command -v /usr/bin/python3 || command -v python3)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.err "$work"/relay-*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
pass() { passed=$((passed + 1)); echo "ok: $*"; }

# A UDP or TCP port that is free right now on $1 (nothing listens on it afterwards either).
free_port() {  # free_port udp|tcp ADDR
  "$py" - "$1" "$2" <<'PY'
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(family, kind)
s.bind((sys.argv[2], 0))
print(s.getsockname()[1])
PY
}

# Waits (bounded) for a log line matching $2 and prints the match.
wait_log() {
  for _ in $(seq 1 100); do
    if grep -qE "$2" "$1"; then grep -oE "$2" "$1" | head -n 1; return 0; fi
    sleep 0.05
  done
  fail "no line matching '$2' in $1"
}

# --- three relays --------------------------------------------------------------------------------
start_relay() {  # start_relay NAME LISTEN_ADDR
  "$relay" -a "$2" --http-port 0 --stun-port 0 -c "$work/$1.key" --certmode selfsigned \
    --certdir "$work/$1-certs" --hostname localhost >"$work/relay-$1.log" 2>&1 &
  pids+=($!)
}
start_relay a 127.0.0.1:0
start_relay b 127.0.0.2:0
start_relay c "[::1]:0"
declare -A derp stun http pin
for r in a b c; do
  url=$(wait_log "$work/relay-$r.log" "https://[^ ]+/derp")
  derp[$r]=$(sed -E 's|.*:([0-9]+)/derp|\1|' <<<"$url")
  stun[$r]=$(wait_log "$work/relay-$r.log" "STUN on UDP port [0-9]+" | grep -oE "[0-9]+$")
  http[$r]=$(wait_log "$work/relay-$r.log" "plain HTTP on port [0-9]+" | grep -oE "[0-9]+$")
  pin[$r]=$(wait_log "$work/relay-$r.log" "sha256-raw:[0-9a-f]{64}")
done

# write_map FILE STUN_A STUN_B [STUN_C]: regions 901 (a), 902 (b) and, with STUN_C, 903 (c, IPv6).
# STUNTestIP marks b and c as test nodes (like IPv4 127.0.0.1 for a), so they are probed whatever
# addresses this machine has. Only 901a has CanPort80 (the captive-portal check).
write_map() {
  local region_c=""
  if [ -n "${4:-}" ]; then
    region_c=$(cat <<JSON
,
  "903": {"RegionID": 903, "RegionCode": "six", "RegionName": "derpkit over IPv6", "Nodes": [
    {"Name": "903a", "RegionID": 903, "HostName": "localhost", "IPv4": "none", "IPv6": "::1",
     "STUNTestIP": "::1", "DERPPort": ${derp[c]}, "STUNPort": $4, "CertName": "${pin[c]}"}]}
JSON
)
  fi
  cat >"$1" <<JSON
{"Regions": {
  "901": {"RegionID": 901, "RegionCode": "one", "RegionName": "derpkit one", "Nodes": [
    {"Name": "901a", "RegionID": 901, "HostName": "localhost", "IPv4": "127.0.0.1", "IPv6": "none",
     "DERPPort": ${derp[a]}, "STUNPort": $2, "CertName": "${pin[a]}", "CanPort80": true}]},
  "902": {"RegionID": 902, "RegionCode": "two", "RegionName": "derpkit two", "Nodes": [
    {"Name": "902a", "RegionID": 902, "HostName": "localhost", "IPv4": "127.0.0.2", "IPv6": "none",
     "STUNTestIP": "127.0.0.2", "DERPPort": ${derp[b]}, "STUNPort": $3, "CertName": "${pin[b]}"}]}$region_c},
 "omitDefaultRegions": true}
JSON
}
write_map "$work/map.json" "${stun[a]}" "${stun[b]}" "${stun[c]}"

# run NAME [flags...]: netcheck's stdout to $work/NAME.out, stderr to NAME.err, status to $rc.
run() {
  local name=$1; shift
  set +e
  timeout 30 "$netcheck" --portmap=false "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  set -e
}
jqf() { jq -c "$2" "$work/$1.out"; }
expect() {  # expect NAME JQ_EXPR WANT
  local got
  got=$(jqf "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $2 = $got, want $3 ($(cat "$work/$1.out"))"
}

# --- 1. the JSON report --------------------------------------------------------------------------
port=$(free_port udp 0.0.0.0)
run full --derp-map "$work/map.json" --format json --bind-port "$port"
[ "$rc" = 0 ] || fail "full: exit $rc"
grep -q "not yet considered a stable interface" "$work/full.err" || fail "full: no JSON warning"
grep -q "DERP map from $work/map.json: 3 regions" "$work/full.err" || fail "full: no map source line"
expect full .UDP true
expect full .IPv4 true
expect full .IPv6 true
expect full .IPv4CanSend true
expect full .GlobalV4 "\"127.0.0.1:$port\""
expect full .GlobalV6 "\"[::1]:$port\""
expect full .MappingVariesByDestIP false  # 127.0.0.1 and 127.0.0.2 saw the same endpoint
expect full .HairPinning true             # loopback "hairpins": the packet comes back
expect full '.RegionLatency | keys' '["901","902","903"]'
expect full '.RegionV4Latency | keys' '["901","902"]'
expect full '.RegionV6Latency | keys' '["903"]'
expect full '[.RegionLatency[] | . > 0] | all' true
expect full '.PreferredDERP | IN(901, 902, 903)' true
expect full '[.UPnP, .PMP, .PCP, .CaptivePortal]' '[null,null,null,null]'
expect full ".GlobalV4Counters[\"127.0.0.1:$port\"] >= 2" true
pass "JSON: UDP, IPv4 127.0.0.1:$port, IPv6 [::1]:$port, 3 regions, home $(jqf full .PreferredDERP)"

# --- 2. the text form ----------------------------------------------------------------------------
run text --derp-map "$work/map.json" --bind-port "$port"
[ "$rc" = 0 ] || fail "text: exit $rc"
out="$work/text.out"
[ "$(head -n 1 "$out")" = "" ] || fail "text: the first line is not empty"
tab=$'\t'
for line in "Report:" "${tab}* UDP: true" "${tab}* IPv4: yes, 127.0.0.1:$port" \
  "${tab}* IPv6: yes, [::1]:$port" "${tab}* MappingVariesByDestIP: false" \
  "${tab}* PortMapping: not checked" "${tab}* DERP latency:" "${tab}* HairPinning: true"; do
  grep -qxF "$line" "$out" || fail "text: no line '$line' in: $(cat "$out")"
done
grep -qE "^${tab}\* Time: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$" "$out" ||
  fail "text: Time line"
grep -qE "^${tab}\* Nearest DERP: derpkit (one|two|over IPv6)$" "$out" || fail "text: Nearest DERP"
for code in one two six; do
  grep -qE "^${tab}${tab}- ${code}: [0-9.]+(µs|ms) +\(derpkit " "$out" || fail "text: no latency line for $code"
done
# The reference's order: Time, UDP, IPv4, IPv6, MappingVariesByDestIP, PortMapping, Nearest DERP,
# DERP latency; our extras after.
order=$(grep -oE "^${tab}\* [A-Za-z0-9 ]+" "$out" | sed "s/^${tab}\* //" | tr '\n' ',')
[ "$order" = "Time,UDP,IPv4,IPv6,MappingVariesByDestIP,PortMapping,Nearest DERP,DERP latency,HairPinning," ] ||
  fail "text: line order $order"
pass "text: reads like tailscale netcheck ($(grep -c . "$out") lines)"

# --- 3. one region's STUN port closed ------------------------------------------------------------
closed=$(free_port udp 127.0.0.2)
write_map "$work/map-b-closed.json" "${stun[a]}" "$closed"
run bclosed --derp-map "$work/map-b-closed.json" --format json-line
[ "$rc" = 0 ] || fail "bclosed: exit $rc"
[ "$(wc -l <"$work/bclosed.out")" = 1 ] || fail "json-line: not one line"
expect bclosed '.RegionLatency | keys' '["901"]'
expect bclosed .PreferredDERP 901
expect bclosed .UDP true
pass "one STUN port closed: region 902 absent, PreferredDERP 901"

# --- 4. no UDP at all: HTTPS latency-check --------------------------------------------------------
closed_a=$(free_port udp 127.0.0.1)
write_map "$work/map-no-udp.json" "$closed_a" "$closed"
run noudp --derp-map "$work/map-no-udp.json" --format json --verbose
[ "$rc" = 0 ] || fail "noudp: exit $rc"
expect noudp .UDP false
expect noudp .IPv4 true
expect noudp .GlobalV4 '""'
expect noudp '.RegionLatency | keys' '["901","902"]'
expect noudp '.RegionV4Latency' '{}'
expect noudp '.PreferredDERP | IN(901, 902)' true
expect noudp .HairPinning null
grep -q "UDP is blocked, trying HTTPS" "$work/noudp.err" || fail "noudp: no HTTPS note"
pass "no UDP: UDP false, both regions measured over HTTPS, home $(jqf noudp .PreferredDERP)"

# Without a working pin there is no latency at all: exit 1, "unknown" in the text form.
sed -E 's/sha256-raw:[0-9a-f]{64}/sha256-raw:'"$(printf '0%.0s' $(seq 64))"'/g' \
  "$work/map-no-udp.json" >"$work/map-bad-pin.json"
run badpin --derp-map "$work/map-bad-pin.json" --verbose
[ "$rc" = 1 ] || fail "badpin: exit $rc, want 1"
grep -qF "${tab}* Nearest DERP: unknown (no response to latency probes)" "$work/badpin.out" ||
  fail "badpin: $(cat "$work/badpin.out")"
grep -q "measuring HTTPS latency of region 901" "$work/badpin.err" || fail "badpin: no reason logged"
pass "no UDP and a wrong pin: no latency, exit 1, 'Nearest DERP: unknown'"

# --- 5. --textfile -----------------------------------------------------------------------------
mkdir -p "$work/textfile"
run textfile --derp-map "$work/map.json" --textfile "$work/textfile/netcheck.prom"
[ "$rc" = 0 ] || fail "textfile: exit $rc"
prom="$work/textfile/netcheck.prom"
promtool check metrics <"$prom" >"$work/promtool.err" 2>&1 || fail "promtool: $(cat "$work/promtool.err")"
grep -qx "netcheck_udp 1" "$prom" || fail "textfile: netcheck_udp"
grep -qE '^netcheck_region_latency_seconds\{region_id="903",region_code="six",family="ipv6"\} [0-9.e-]+$' "$prom" ||
  fail "textfile: IPv6 latency of 903"
grep -qE '^netcheck_preferred_derp_region\{region_id="90[123]",region_code="[a-z]+"\} 1$' "$prom" ||
  fail "textfile: preferred region"
[ "$(ls "$work/textfile")" = "netcheck.prom" ] || fail "textfile: leftovers: $(ls "$work/textfile")"
pass "--textfile: accepted by promtool check metrics, no temporary left"

# --- 6. --every: a bounded loop ended by SIGINT --------------------------------------------------
set +e
timeout --preserve-status -s INT 3.5 "$netcheck" --portmap=false --derp-map "$work/map.json" \
  --every 1s --format json-line --textfile "$work/textfile/netcheck.prom" \
  >"$work/every.out" 2>"$work/every.err"
rc=$?
set -e
[ "$rc" = 0 ] || fail "--every: exit $rc after SIGINT, want 0"
reports=$(wc -l <"$work/every.out")
[ "$reports" -ge 2 ] || fail "--every: $reports reports in 3.5 s"
jq -e -s 'all(.[]; .UDP == true)' "$work/every.out" >/dev/null || fail "--every: a report without UDP"
grep -qx "netcheck_report_full 0" "$prom" || fail "--every: the last report was not incremental"
pass "--every 1s: $reports reports in 3.5 s, SIGINT ends with 0, later reports incremental"

# --- 7. --connect --------------------------------------------------------------------------------
run connect --derp-map "$work/map.json" --format json --connect
[ "$rc" = 0 ] || fail "connect: exit $rc"
expect connect '[.Connect[] | .RegionID]' '[901,902,903]'
expect connect '[.Connect[] | .OK] | all' true
expect connect '[.Connect[] | .RoundTrip > 0] | all' true
pass "--connect: a DERP round trip through each of the 3 relays"

# --- 8. captive portal: the relay's /generate_204, then a fake portal ----------------------------
run captive --derp-map "$work/map.json" --format json --verbose --captive-port "${http[a]}"
[ "$rc" = 0 ] || fail "captive: exit $rc"
expect captive .CaptivePortal false
portal_port=$(free_port tcp 127.0.0.1)
"$py" - "$portal_port" >"$work/portal.log" 2>&1 <<'PY' &
import http.server, sys
class Portal(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>Please log in</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Portal).serve_forever()
PY
pids+=($!)
for _ in $(seq 1 100); do
  "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" \
    "$portal_port" 2>/dev/null && break
  sleep 0.05
done
run portal --derp-map "$work/map.json" --format json --verbose --captive-port "$portal_port"
[ "$rc" = 0 ] || fail "portal: exit $rc"
expect portal .CaptivePortal true
run nocaptive --derp-map "$work/map.json" --format json --verbose --captive=false --captive-port "$portal_port"
expect nocaptive .CaptivePortal null
pass "captive portal: false against the relay, true against a page, null with --captive=false"

# --- 9. usage and input errors -------------------------------------------------------------------
check_usage() {  # check_usage WANT_RC PATTERN ARGS...
  local want=$1 pattern=$2; shift 2
  run usage "$@"
  [ "$rc" = "$want" ] || fail "netcheck $*: exit $rc, want $want ($(cat "$work/usage.err"))"
  grep -qE "$pattern" "$work/usage.err" || fail "netcheck $*: stderr $(cat "$work/usage.err")"
}
check_usage 2 "^netcheck: .*--no-such-flag.*\(see --help\)$" --no-such-flag
[ "$(grep -vc '^#' "$work/usage.err")" = 1 ] || fail "bad flag: not one line: $(cat "$work/usage.err")"
check_usage 2 "^netcheck: --every 10: missing unit" --derp-map "$work/map.json" --every 10
check_usage 2 "^netcheck: --format xml: want text, json or json-line$" --derp-map "$work/map.json" --format xml
check_usage 2 "^netcheck: --bind-address nope: not an IP address$" --derp-map "$work/map.json" --bind-address nope
check_usage 2 "cannot use the DERP map: $work/missing.json" --derp-map "$work/missing.json"
echo '{"Regions": {"1": {"RegionID": 2}}}' >"$work/bad-map.json"
check_usage 2 "cannot use the DERP map: .*bad-map.json" --derp-map "$work/bad-map.json"
closed_tcp=$(free_port tcp 127.0.0.1)
check_usage 2 "cannot use the DERP map: https://127.0.0.1:$closed_tcp/derpmap.json: .*" \
  --derp-map "https://127.0.0.1:$closed_tcp/derpmap.json"
check_usage 2 "cannot use the DERP map: local" --derp-map local --socket "$work/no-such.sock"
"$netcheck" --help >"$work/help.out"
grep -q "^netcheck: " "$work/help.out" && grep -q "Examples:" "$work/help.out" &&
  grep -q -- "--derp-map" "$work/help.out" || fail "--help: $(cat "$work/help.out")"
pass "bad flags, a bad map file, an unreachable map URL and a missing socket: exit 2, one clear line"

echo "netcheck integration: $passed passed, 0 failed"
