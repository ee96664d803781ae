#!/usr/bin/env bash
# derp-probe end to end, in one network namespace the test creates (loopback only inside it):
#   - a test CA and three derp-relays on :443 of their own loopback addresses, as production
#     meshes look: derp-1a.test 127.0.1.1 and derp-1b.test 127.0.1.2 (region 901 "test-a",
#     meshed with each other), derp-2a.test 127.0.2.1 (region 902 "test-b"); STUN on each :3478;
#   - the DERP map (tests/netns/probe/derpmap.json) served over HTTP by python3's http.server;
#   - derp-probe as a daemon with 1 s intervals, checked through /debug/probe-all, `/`, /metrics
#     (promtool) and its --textfile (read by a real prometheus-node-exporter), and derp-probe
#     --once (table and JSON, and a push into a real prometheus-pushgateway);
#   - six faults, one at a time, each polled until exactly the expected probes fail and then
#     undone and polled until all pass again: a relay stopped, its STUN port silent (nft), a relay
#     with another mesh key, a certificate expiring in 3 days, a wrong sha256-raw pin, the map URL
#     failing;
#   - the status page during the first fault in a real headless Chromium: DOM and a screenshot,
#     kept in BUILD_DIR/test-artifacts/probe-status.png.
# Needs root (ip netns); exits 77 with the reason otherwise. Usage: probe_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
here=$(cd "$(dirname "$0")" && pwd)
relay="$build/relay/derp-relay"
prober="$build/probe/derp-probe"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: 'ip netns' is not available here"
  exit 77
fi
for tool in jq nft curl openssl python3 promtool chromium prometheus-node-exporter \
  prometheus-pushgateway; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
for bin in "$relay" "$prober"; do
  [ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }
done

NS=dp$$
work=$(mktemp -d)
logs="$work/logs"
pki="$work/pki"
mkdir -p "$logs" "$pki" "$work/map" "$work/textfile" "$work/chrome"
artifacts="$build/test-artifacts"
rm -f "$artifacts/probe-all-last.json"  # a stale one from an earlier failed run
last_json="$work/probe-all.json"
cleanup() {
  exec 2>/dev/null  # bash reports each killed background job; that is not news here
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  wait || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
fail() {
  echo "FAIL: $*" >&2
  local f lines
  for f in "$logs"/*.log; do
    case $(basename "$f") in probe.log) lines=150 ;; relay-*) lines=30 ;; *) lines=10 ;; esac
    [ -s "$f" ] && { echo "--- $(basename "$f") (last $lines lines)" >&2; tail -n "$lines" "$f" >&2; }
  done
  if [ -s "$last_json" ]; then
    mkdir -p "$artifacts"
    cp "$last_json" "$artifacts/probe-all-last.json"
    echo "--- last /debug/probe-all JSON, one probe a line (whole: $artifacts/probe-all-last.json)" >&2
    jq -c '.Results[].ProbeInfo | {Name, Status, Latency, Error}' "$last_json" >&2 2>/dev/null ||
      cat "$last_json" >&2
  fi
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }
# in_ns for foreground commands; background ones call `ip netns exec` directly so that $! is the
# server's own pid (ip execs it), not a subshell's: killing it must stop the server.
in_ns() { ip netns exec "$NS" "$@"; }
free_port() {  # a free TCP port on 127.0.0.1 inside the namespace
  in_ns python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ! ip netns add "$NS" 2>"$work/netns.err"; then
  echo "SKIP: cannot create a network namespace: $(cat "$work/netns.err")"
  exit 77
fi
ip -n "$NS" link set lo up

# --- certificates: a test CA, one leaf per relay, and one for 2a that expires in 3 days -------------
ec_key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec_key[@]}" -keyout "$pki/ca.key" -out "$pki/ca.pem" -days 30 \
  -subj "/CN=derpkit probe test CA" >"$logs/openssl.log" 2>&1 || fail "openssl: test CA"
leaf() {  # leaf HOST DAYS OUT_DIR: OUT_DIR/HOST.crt and .key, signed by the test CA
  local host=$1 days=$2 dir=$3
  mkdir -p "$dir"
  [ -f "$pki/$host.key" ] ||
    openssl req -new "${ec_key[@]}" -keyout "$pki/$host.key" -out "$pki/$host.csr" \
      -subj "/CN=$host" >>"$logs/openssl.log" 2>&1 || fail "openssl: key for $host"
  openssl x509 -req -in "$pki/$host.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
    -CAcreateserial -CAserial "$pki/ca.srl" -days "$days" -out "$dir/$host.crt" \
    -extfile <(printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$host") \
    >>"$logs/openssl.log" 2>&1 || fail "openssl: certificate for $host"
  cp "$pki/$host.key" "$dir/$host.key"
}
for n in 1a 1b 2a; do leaf "derp-$n.test" 90 "$work/certs-$n"; done
leaf derp-2a.test 3 "$work/certs-2a-expiring"
# Mesh keys: the region's, and another one for the "wrong mesh key" fault.
openssl rand -hex 32 >"$work/mesh.key"
openssl rand -hex 32 >"$work/mesh-other.key"

# --- relays ------------------------------------------------------------------------------------
declare -A addr=([1a]=127.0.1.1 [1b]=127.0.1.2 [2a]=127.0.2.1)
declare -A relay_pid=()
start_relay() {  # start_relay NODE [CERT_DIR [MESH_KEY_FILE]]
  local n=$1 certs=${2:-$work/certs-$1} mesh_key=${3:-$work/mesh.key}
  local args=(-a "${addr[$n]}:443" --http-port -1 --stun-port 3478 -c "$work/relay-$n.key"
    --certmode manual --certdir "$certs" --hostname "derp-$n.test")
  if [ "$n" != 2a ]; then
    args+=(--mesh-with "derp-1a.test/127.0.1.1,derp-1b.test/127.0.1.2"
      --mesh-psk-file "$mesh_key" --mesh-ca-file "$pki/ca.pem")
  fi
  echo "=== start: ${args[*]}" >>"$logs/relay-$n.log"
  ip netns exec "$NS" "$relay" "${args[@]}" >>"$logs/relay-$n.log" 2>&1 &
  relay_pid[$n]=$!
  # Ready when /derp/probe answers over TLS, verified against the test CA under the test name,
  # and the answer came from this process (not from one that failed to stop).
  for _ in $(seq 1 100); do
    kill -0 "${relay_pid[$n]}" 2>/dev/null || fail "relay $n exited at start"
    if in_ns curl -s -o /dev/null --max-time 1 --cacert "$pki/ca.pem" \
      --resolve "derp-$n.test:443:${addr[$n]}" "https://derp-$n.test/derp/probe"; then
      kill -0 "${relay_pid[$n]}" 2>/dev/null || fail "relay $n exited at start"
      return 0
    fi
    sleep 0.1
  done
  fail "relay $n did not answer https://derp-$n.test/derp/probe"
}
stop_relay() {  # stop_relay NODE: SIGTERM, and wait (bounded) until it is gone
  local n=$1 pid=${relay_pid[$1]}
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "=== stopped" >>"$logs/relay-$n.log"
}
for n in 1a 1b 2a; do start_relay "$n"; done
ok "three relays answer over TLS on :443 of 127.0.1.1, 127.0.1.2, 127.0.2.1 (test CA)"

# --- the DERP map over HTTP ----------------------------------------------------------------------
map_port=$(free_port)
map_url="http://127.0.0.1:$map_port/map.json"
install_map() {  # install_map FILE: atomically, so the prober never reads half a map
  cp "$1" "$work/map/.map.json.tmp"
  mv -f "$work/map/.map.json.tmp" "$work/map/map.json"
}
start_map_server() {
  ip netns exec "$NS" python3 -m http.server "$map_port" --bind 127.0.0.1 --directory "$work/map" \
    >>"$logs/map-server.log" 2>&1 &
  map_pid=$!
  for _ in $(seq 1 100); do
    in_ns curl -sf -o /dev/null --max-time 1 "$map_url" && return 0
    sleep 0.1
  done
  fail "the map server did not answer $map_url"
}
install_map "$here/probe/derpmap.json"
start_map_server

# --- the prober ----------------------------------------------------------------------------------
ui=http://127.0.0.1:8030
short_intervals=(--tls-interval 1s --stun-interval 1s --mesh-interval 1s)
ip netns exec "$NS" "$prober" --derp-map "$map_url" --ca-file "$pki/ca.pem" --listen 127.0.0.1:8030 \
  --interval 1s "${short_intervals[@]}" --mesh-psk-file "$work/mesh.key" \
  --key-file "$work/probe.key" --textfile "$work/textfile/probe.prom" >"$logs/probe.log" 2>&1 &
prober_pid=$!
for _ in $(seq 1 100); do
  [ "$(in_ns curl -s --max-time 1 "$ui/healthz" || true)" = ok ] && break
  kill -0 "$prober_pid" 2>/dev/null || fail "derp-probe exited at start"
  sleep 0.1
done
[ "$(in_ns curl -s --max-time 1 "$ui/healthz" || true)" = ok ] || fail "derp-probe: /healthz never said ok"
[ "$(stat -c %a "$work/probe.key" 2>/dev/null)" = 600 ] || fail "--key-file was not created with mode 0600"
ok "derp-probe serves /healthz; --key-file created with mode 0600"

all_probes=(derpmap-probe
  derp/test-a/1a/1a/mesh derp/test-a/1a/1b/mesh derp/test-a/1a/tls derp/test-a/1a/udp
  derp/test-a/1b/1a/mesh derp/test-a/1b/1b/mesh derp/test-a/1b/tls derp/test-a/1b/udp
  derp/test-b/2a/2a/mesh derp/test-b/2a/tls derp/test-b/2a/udp)
all_sorted=$(printf '%s\n' "${all_probes[@]}" | sort | paste -sd' ')

# probe_all: one /debug/probe-all into $last_json; prints the HTTP status.
probe_all() {
  in_ns curl -s --max-time 20 -o "$last_json" -w '%{http_code}' "$ui/debug/probe-all" || true
}
# wait_failing WHAT [NAME...]: polls /debug/probe-all (bounded: 20 s, 40 tries) until every probe
# of the map is present and exactly NAMEs fail (status 424), or none (status 200).
wait_failing() {
  local what=$1; shift
  local want names failing code deadline=$((SECONDS + 20))
  want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | paste -sd' ')
  for _ in $(seq 1 40); do
    code=$(probe_all)
    names=$(jq -r '.Results | keys[]' "$last_json" 2>/dev/null | sort | paste -sd' ' || true)
    failing=$(jq -r '.Results | to_entries[] | select(.value.ProbeInfo.Status != "succeeded") | .key' \
      "$last_json" 2>/dev/null | sort | paste -sd' ' || true)
    if [ "$names" = "$all_sorted" ] && [ "$failing" = "$want" ] &&
      { { [ -z "$want" ] && [ "$code" = 200 ]; } || { [ -n "$want" ] && [ "$code" = 424 ]; }; }; then
      return 0
    fi
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.5
  done
  if [ "$names" != "$all_sorted" ]; then
    fail "$what: /debug/probe-all (status $code) lists [$names], want [$all_sorted]"
  fi
  fail "$what: /debug/probe-all (status $code) has [$failing] failing, want [$want] (status $([ -z "$want" ] && echo 200 || echo 424))"
}
error_of() { jq -r --arg n "$1" '.Results[$n].ProbeInfo.Error' "$last_json"; }

# --- green ---------------------------------------------------------------------------------------
wait_failing "all healthy"
ok "all 12 probes pass in /debug/probe-all (3 tls, 3 udp, 5 mesh, derpmap-probe), status 200"

page=""
for _ in $(seq 1 40); do
  page=$(in_ns curl -s --max-time 5 "$ui/" || true)
  grep -q 'All 12 probes are healthy' <<<"$page" && break
  sleep 0.5
done
grep -q 'All 12 probes are healthy' <<<"$page" || fail "status page never said 'All 12 probes are healthy'"
for n in "${all_probes[@]}"; do grep -qF "$n" <<<"$page" || fail "status page does not list $n"; done
ok "status page: 'All 12 probes are healthy', every probe listed"

in_ns curl -s --max-time 5 -o "$work/metrics.txt" "$ui/metrics" || fail "GET /metrics"
timeout 30 promtool check metrics <"$work/metrics.txt" >"$logs/promtool.log" 2>&1 ||
  fail "promtool check metrics: $(cat "$logs/promtool.log")"
region_of() { case $1 in derp/test-a/*) echo 'region="test-a",region_id="901"' ;; derp/test-b/*) echo 'region="test-b",region_id="902"' ;; esac; }
for n in "${all_probes[@]}"; do
  line=$(grep -E '^derpprobe_result\{' "$work/metrics.txt" | grep -F "name=\"$n\"" || true)
  if [ -z "$line" ] || [ "$(wc -l <<<"$line")" != 1 ]; then
    fail "/metrics: want one derpprobe_result for $n, got [$line]"
  fi
  grep -q 'class="' <<<"$line" || fail "/metrics: no class label on $line"
  if [ "$n" != derpmap-probe ]; then
    node=${n#derp/test-?/}; node=${node%%/*}
    for want in $(region_of "$n" | tr , ' ') "hostname=\"derp-$node.test\""; do
      grep -qF "$want" <<<"$line" || fail "/metrics: $want missing from $line"
    done
  fi
done
ok "/metrics passes promtool; derpprobe_result for all 12 probes with name, class, region, region_id, hostname"

# node_exporter reads the daemon's --textfile.
exporter_port=$(free_port)
ip netns exec "$NS" prometheus-node-exporter --web.listen-address="127.0.0.1:$exporter_port" \
  --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$work/textfile" >"$logs/node-exporter.log" 2>&1 &
# The textfile is rewritten after every map probe (each second here): one written before a probe's
# first result lacks that probe, so wait (at most 10 s) for a file that has them all.
exporter=""
# Prints the first probe the exporter's last answer has no derpprobe_result for.
exporter_missing() {
  local n
  for n in "${all_probes[@]}"; do
    # The last grep reads all (no -q), so the first never writes into a closed pipe (pipefail).
    grep -E '^derpprobe_result\{' <<<"$exporter" | grep -F "name=\"$n\"" >/dev/null || { echo "$n"; return; }
  done
}
for _ in $(seq 1 100); do
  exporter=$(in_ns curl -s --max-time 1 "http://127.0.0.1:$exporter_port/metrics" || true)
  [ -z "$(exporter_missing)" ] && break
  sleep 0.1
done
grep -q '^node_textfile_scrape_error 0' <<<"$exporter" ||
  fail "node_exporter could not read the textfile: $(grep textfile <<<"$exporter")"
missing=$(exporter_missing)
[ -z "$missing" ] || fail "node_exporter does not show derpprobe_result for $missing"
ok "--textfile: node_exporter serves derpprobe_result for all 12 probes"

# --once, table and JSON, against the same map.
# Default intervals: each run's timeout is 80% of its interval, and a cron run has no hurry. No
# --key-file: the daemon's keys are connected to the same relays at the same time, and a relay
# delivers to one connection per key, so sharing them would let one prober take the other's
# mesh packets.
once=(--once --derp-map "$map_url" --ca-file "$pki/ca.pem" --mesh-psk-file "$work/mesh.key")
rc=0
in_ns timeout 60 "$prober" "${once[@]}" >"$work/once.txt" 2>"$logs/once.log" || rc=$?
cp "$work/once.txt" "$logs/once-table.log"
[ "$rc" = 0 ] || fail "--once exited $rc, want 0"
head -1 "$work/once.txt" | grep -qE '^REGION +NODE +PROBE +STATUS +LATENCY +ERROR' ||
  fail "--once: no REGION NODE PROBE STATUS LATENCY ERROR header"
rows=$(sed '1d;$d' "$work/once.txt")
[ "$(wc -l <<<"$rows")" = 12 ] || fail "--once: want 12 rows, got $(wc -l <<<"$rows")"
awk '$4 != "ok" { bad = 1 } END { exit bad }' <<<"$rows" || fail "--once: a row is not ok"
tail -1 "$work/once.txt" | grep -q '^12 of 12 probes passed' || fail "--once: summary is '$(tail -1 "$work/once.txt")'"
ok "--once: 12 rows, all ok, '12 of 12 probes passed', exit 0"

rc=0
in_ns timeout 60 "$prober" "${once[@]}" --json >"$work/once.json" 2>"$logs/once-json.log" || rc=$?
cp "$work/once.json" "$logs/once-json-output.log"
[ "$rc" = 0 ] || fail "--once --json exited $rc, want 0"
[ "$(jq -r .ok "$work/once.json")" = true ] || fail "--once --json: ok is not true"
[ "$(jq -r '[.probes[].name] | sort | join(" ")' "$work/once.json")" = "$all_sorted" ] ||
  fail "--once --json: probe names differ from the map's"
[ "$(jq -r '[.probes[] | select(.ok != true)] | length' "$work/once.json")" = 0 ] ||
  fail "--once --json: some probe is not ok"
ok "--once --json: parses, ok=true, the 12 probes all ok"

# --once --push-url into a real Pushgateway.
push_port=$(free_port)
# --persistence.file= : Debian's default would load and save /var/lib/prometheus/pushgateway.data.
ip netns exec "$NS" prometheus-pushgateway --web.listen-address="127.0.0.1:$push_port" \
  --persistence.file= >"$logs/pushgateway.log" 2>&1 &
for _ in $(seq 1 100); do
  in_ns curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$push_port/-/ready" && break
  sleep 0.1
done
rc=0
in_ns timeout 60 "$prober" "${once[@]}" --push-url "http://127.0.0.1:$push_port" \
  >"$work/once-push.txt" 2>"$logs/once-push.log" || rc=$?
[ "$rc" = 0 ] || fail "--once --push-url exited $rc, want 0"
pushed=$(in_ns curl -s --max-time 5 "http://127.0.0.1:$push_port/metrics" || true)
for n in "${all_probes[@]}"; do
  grep -E '^derpprobe_result\{' <<<"$pushed" | grep -F "name=\"$n\"" | grep -F 'job="derp-probe"' >/dev/null ||
    fail "Pushgateway has no derpprobe_result{name=\"$n\",job=\"derp-probe\"}"
done
ok "--once --push-url: the Pushgateway serves derpprobe_result{...,job=\"derp-probe\"} for all 12 probes"

# --- fault 1: relay 2a stopped ------------------------------------------------------------------
stop_relay 2a
wait_failing "relay 2a stopped" derp/test-b/2a/tls derp/test-b/2a/udp derp/test-b/2a/2a/mesh
ok "fault 1, relay 2a stopped: exactly 2a tls, udp, 2a→2a mesh fail"

# While it is down: the status page in a real headless Chromium.
mkdir -p "$artifacts"
shot="$artifacts/probe-status.png"
rm -f "$shot"
# The daemon's own runs must have caught up with the fault before the page is looked at.
for _ in $(seq 1 40); do
  page=$(in_ns curl -s --max-time 5 "$ui/" || true)
  grep -q '3 of 12 probes are failing' <<<"$page" && break
  sleep 0.5
done
grep -q '3 of 12 probes are failing' <<<"$page" || fail "status page never said '3 of 12 probes are failing'"
chrome=(chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/chrome"
  --no-first-run --disable-extensions "--window-size=420,900")
in_ns timeout 60 "${chrome[@]}" --screenshot="$shot" "$ui/" >"$logs/chromium.log" 2>&1 ||
  fail "chromium --screenshot failed"
[ "$(head -c 8 "$shot" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "chromium wrote no PNG at $shot"
in_ns timeout 60 "${chrome[@]}" --dump-dom "$ui/" >"$work/dom.html" 2>>"$logs/chromium.log" ||
  fail "chromium --dump-dom failed"
cp "$work/dom.html" "$artifacts/probe-status.html"
grep -q '3 of 12 probes are failing' "$work/dom.html" ||
  fail "the rendered page does not say '3 of 12 probes are failing'"
grep -q 'derp/test-b/2a/tls' "$work/dom.html" || fail "the rendered page does not name derp/test-b/2a/tls"
# Every probe is listed, so naming it is not enough: the failing ones come first.
first=$(grep -oE 'derp/test-[ab]/[0-9a-z/]+/(tls|udp|mesh)' "$work/dom.html" | head -1)
case $first in
  derp/test-b/2a/tls | derp/test-b/2a/udp | derp/test-b/2a/2a/mesh) ;;
  *) fail "the rendered page names $first before the failing probes" ;;
esac
ok "headless Chromium renders the page naming derp/test-b/2a/tls; screenshot: $shot"

# --once during the fault: exit 1, and the summary names the failures.
rc=0
in_ns timeout 60 "$prober" "${once[@]}" >"$work/once-fault.txt" 2>"$logs/once-fault.log" || rc=$?
cp "$work/once-fault.txt" "$logs/once-fault-table.log"
[ "$rc" = 1 ] || fail "--once with relay 2a down exited $rc, want 1"
tail -1 "$work/once-fault.txt" | grep -q '^9 of 12 probes passed; 3 failed: ' ||
  fail "--once with relay 2a down: summary is '$(tail -1 "$work/once-fault.txt")'"
ok "--once with relay 2a down: exit 1, '$(tail -1 "$work/once-fault.txt")'"

start_relay 2a
wait_failing "relay 2a restarted"
ok "fault 1 undone: all pass"

# --- fault 2: 2a's STUN port silent ---------------------------------------------------------------
in_ns nft -f - <<'NFT' || fail "nft: could not add the drop rule"
table inet probetest {
  chain in { type filter hook input priority 0; ip daddr 127.0.2.1 udp dport 3478 drop; }
}
NFT
wait_failing "2a's STUN dropped" derp/test-b/2a/udp
ok "fault 2, udp to 127.0.2.1:3478 dropped: exactly derp/test-b/2a/udp fails ($(error_of derp/test-b/2a/udp))"
in_ns nft delete table inet probetest
wait_failing "STUN drop removed"
ok "fault 2 undone: all pass"

# --- fault 3: relay 1b with another mesh key ----------------------------------------------------------
stop_relay 1b
start_relay 1b "$work/certs-1b" "$work/mesh-other.key"
wait_failing "relay 1b with another mesh key" derp/test-a/1a/1b/mesh derp/test-a/1b/1a/mesh
ok "fault 3, 1b with another mesh key: exactly 1a→1b and 1b→1a mesh fail"
stop_relay 1b
start_relay 1b
wait_failing "relay 1b with the region's mesh key again"
ok "fault 3 undone: all pass"

# --- fault 4: 2a's certificate expires in 3 days -------------------------------------------------------
stop_relay 2a
start_relay 2a "$work/certs-2a-expiring"
wait_failing "2a's certificate expiring in 3 days" derp/test-b/2a/tls
err=$(error_of derp/test-b/2a/tls)
grep -qiE 'expires in|7-day warning' <<<"$err" || fail "fault 4: tls error does not speak of the expiry: $err"
ok "fault 4, certificate expiring in 3 days: exactly 2a tls fails ($err)"
stop_relay 2a
start_relay 2a
wait_failing "2a's 90-day certificate back"
ok "fault 4 undone: all pass"

# --- fault 5: a wrong sha256-raw pin for 2a --------------------------------------------------------------
jq --arg pin "sha256-raw:$(printf '0%.0s' $(seq 1 64))" '.Regions["902"].Nodes[0].CertName = $pin' \
  "$here/probe/derpmap.json" >"$work/map-wrong-pin.json"
install_map "$work/map-wrong-pin.json"
wait_failing "a wrong pin for 2a" derp/test-b/2a/tls derp/test-b/2a/2a/mesh
for n in derp/test-b/2a/tls derp/test-b/2a/2a/mesh; do
  grep -qi 'pin' <<<"$(error_of "$n")" || fail "fault 5: $n error does not mention the pin: $(error_of "$n")"
done
ok "fault 5, wrong sha256-raw pin: exactly 2a tls and 2a→2a mesh fail ($(error_of derp/test-b/2a/tls))"
install_map "$here/probe/derpmap.json"
wait_failing "the right map back"
ok "fault 5 undone: all pass"

# --- fault 6: the map URL fails ------------------------------------------------------------------------
kill "$map_pid"
wait "$map_pid" 2>/dev/null || true
wait_failing "map server stopped" derpmap-probe
ok "fault 6, map server stopped: only derpmap-probe fails, the node probes keep passing ($(error_of derpmap-probe))"
start_map_server
wait_failing "map server back"
ok "fault 6 undone: all pass"

# A clean stop: SIGTERM ends the daemon with status 0 (and, in the ASan build, no report).
kill -0 "$prober_pid" 2>/dev/null || fail "derp-probe exited during the test"
kill -TERM "$prober_pid"
for _ in $(seq 1 100); do kill -0 "$prober_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$prober_pid" 2>/dev/null; then
  kill -9 "$prober_pid"
  fail "derp-probe did not stop within 10 s of SIGTERM"
fi
rc=0
wait "$prober_pid" || rc=$?
[ "$rc" = 0 ] || fail "derp-probe exited $rc after SIGTERM, want 0"
if grep -q 'Sanitizer' "$logs/probe.log"; then fail "derp-probe's log has a sanitizer report"; fi
ok "derp-probe stops cleanly on SIGTERM (status 0)"
echo "derp-probe end to end: $passed passed, 0 failed; screenshot $shot"
