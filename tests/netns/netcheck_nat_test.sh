#!/usr/bin/env bash
# netcheck behind real NATs. Three network namespaces, as in shared/docs/testing.md:
#   cli  192.0.2.2, 2001:db8:1::2   (netcheck runs here; default routes via nat)
#   nat  192.0.2.1 | 198.51.100.1, 2001:db8:1::1 | 2001:db8:2::1   (nftables NAT for IPv4,
#        plain routing for IPv6)
#   srv  198.51.100.10 and .11, 2001:db8:2::10   (two derp-relays: region 901 on .10, dual-stack,
#        CanPort80; region 902 on .11, IPv4 only)
# Each scenario reconfigures the NAT and asserts netcheck's JSON report:
#   endpoint-independent NAT (masquerade), symmetric NAT (masquerade random), UDP dropped (HTTPS
#   latency instead), a captive portal on port 80, one relay down, IPv6 present/absent, and the
#   --textfile output read by a real prometheus-node-exporter.
# Needs root (ip netns); exits 77 with the reason otherwise. Usage: netcheck_nat_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
netcheck="$build/netcheck/netcheck"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi
for tool in jq nft curl python3 prometheus-node-exporter; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done

P=nc$$
work=$(mktemp -d)
cleanup() {
  exec 2>/dev/null  # bash reports each killed background job; that is not news here
  [ -n "${exporter_pid:-}" ] && kill "$exporter_pid"
  for ns in cli nat srv; do
    for pid in $(ip netns pids "$P$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$P$ns" 2>/dev/null || true
  done
  wait || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log "$work"/*.json; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }
in_ns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

# --- topology --------------------------------------------------------------------------------
for n in cli nat srv; do ip netns add "$P$n"; ip -n "$P$n" link set lo up; done
ip link add "${P}a" type veth peer name "${P}b"  # cli <-> nat
ip link add "${P}c" type veth peer name "${P}d"  # nat <-> srv
ip link set "${P}a" netns "${P}cli"; ip link set "${P}b" netns "${P}nat"
ip link set "${P}c" netns "${P}nat"; ip link set "${P}d" netns "${P}srv"
ip -n "${P}cli" addr add 192.0.2.2/24 dev "${P}a"
ip -n "${P}cli" addr add 2001:db8:1::2/64 dev "${P}a" nodad
ip -n "${P}cli" link set "${P}a" up
ip -n "${P}cli" route add default via 192.0.2.1
ip -n "${P}cli" -6 route add default via 2001:db8:1::1
ip -n "${P}nat" addr add 192.0.2.1/24 dev "${P}b"
ip -n "${P}nat" addr add 2001:db8:1::1/64 dev "${P}b" nodad
ip -n "${P}nat" link set "${P}b" up
ip -n "${P}nat" addr add 198.51.100.1/24 dev "${P}c"
ip -n "${P}nat" addr add 2001:db8:2::1/64 dev "${P}c" nodad
ip -n "${P}nat" link set "${P}c" up
ip -n "${P}srv" addr add 198.51.100.10/24 dev "${P}d"
ip -n "${P}srv" addr add 198.51.100.11/24 dev "${P}d"
ip -n "${P}srv" addr add 2001:db8:2::10/64 dev "${P}d" nodad
ip -n "${P}srv" link set "${P}d" up
ip -n "${P}srv" route add 192.0.2.0/24 via 198.51.100.1
ip -n "${P}srv" -6 route add default via 2001:db8:2::1
in_ns nat sysctl -qw net.ipv4.ip_forward=1
in_ns nat sysctl -qw net.ipv6.conf.all.forwarding=1

# nat_rules MODE [extra nft statements]: MODE is "masquerade" or "masquerade random".
nat_rules() {
  in_ns nat nft flush ruleset
  in_ns nat nft -f - <<NFT
table ip nat {
  chain pre { type nat hook prerouting priority -100; ${2:-} }
  chain post { type nat hook postrouting priority 100; oifname "${P}c" $1; }
}
NFT
  if [ -n "${3:-}" ]; then in_ns nat nft -f - <<<"$3"; fi
}

# --- the two relays ----------------------------------------------------------------------------
start_relay() {  # start_relay NAME ADDR_FLAG HTTP_PORT STUN_PORT HOSTNAME
  ip netns exec "${P}srv" "$relay" -a "$2" --http-port "$3" --stun-port "$4" -c "$work/$1.key" \
    --certmode selfsigned --certdir "$work/$1-certs" --hostname "$5" >"$work/relay-$1.log" 2>&1 &
  echo $! >"$work/relay-$1.pid"
}
start_relay a ":443" 80 3478 198.51.100.10
start_relay b "198.51.100.11:8443" -1 3479 198.51.100.11
for _ in $(seq 1 100); do
  if in_ns srv curl -sk -o /dev/null --max-time 1 https://198.51.100.10/derp/probe &&
     in_ns srv curl -sk -o /dev/null --max-time 1 https://198.51.100.11:8443/derp/probe; then
    break
  fi
  sleep 0.1
done
in_ns srv curl -sk -o /dev/null --max-time 2 https://198.51.100.11:8443/derp/probe ||
  fail "relays did not start"
pin() { openssl x509 -in "$work/$1-certs/$2.crt" -outform der | sha256sum | cut -d' ' -f1; }
pin_a=$(pin a 198.51.100.10)
pin_b=$(pin b 198.51.100.11)
cat >"$work/map.json" <<JSON
{"Regions": {
  "901": {"RegionID": 901, "RegionCode": "one", "RegionName": "Region one", "Nodes": [
    {"Name": "901a", "RegionID": 901, "HostName": "198.51.100.10", "IPv4": "198.51.100.10",
     "IPv6": "2001:db8:2::10", "DERPPort": 443, "STUNPort": 3478, "CanPort80": true,
     "CertName": "sha256-raw:$pin_a"}]},
  "902": {"RegionID": 902, "RegionCode": "two", "RegionName": "Region two", "Nodes": [
    {"Name": "902a", "RegionID": 902, "HostName": "198.51.100.11", "IPv4": "198.51.100.11",
     "IPv6": "none", "DERPPort": 8443, "STUNPort": 3479, "CertName": "sha256-raw:$pin_b"}]}},
 "omitDefaultRegions": true}
JSON

# run_netcheck NAME [flags...]: one JSON report into $work/NAME.json. The port-mapping probe is
# off (tests/netns/portmap_test.sh covers it). Each run binds its own local port (40000, 40001,
# ...) so that the NAT's mappings from an earlier scenario cannot answer for a later one.
next_port=40000
run_netcheck() {
  local name=$1; shift
  local port=$next_port
  next_port=$((next_port + 1))
  in_ns cli timeout 30 "$netcheck" --derp-map "$work/map.json" --format json --portmap=false \
    --bind-port "$port" "$@" >"$work/$name.json" 2>"$work/$name.log" ||
    fail "$name: netcheck exited $? ($(tail -3 "$work/$name.log"))"
}
field() { jq -c "$2" "$work/$1.json"; }
expect() {  # expect NAME JQ_EXPR WANT WHAT
  local got
  got=$(field "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $4: $2 = $got, want $3"
}

# --- 1. endpoint-independent NAT ------------------------------------------------------------
nat_rules masquerade
mkdir -p "$work/textfile"
run_netcheck eim --textfile "$work/textfile/netcheck.prom"
expect eim .UDP true "UDP works through the NAT"
expect eim .IPv4 true "IPv4 STUN answered"
expect eim .GlobalV4 '"198.51.100.1:40000"' "public address is the NAT's, port kept"
expect eim .MappingVariesByDestIP false "endpoint-independent mapping"
expect eim '.RegionLatency | has("901") and has("902")' true "both regions measured"
expect eim '.PreferredDERP == 901 or .PreferredDERP == 902' true "a home region chosen"
ok "endpoint-independent NAT: GlobalV4 198.51.100.1:40000, MappingVariesByDestIP false"

# IPv6 present: routed, no NAT, so the global address is the client's own.
expect eim .IPv6 true "IPv6 STUN answered"
expect eim .GlobalV6 '"[2001:db8:1::2]:40000"' "IPv6 global address is the client's own"
expect eim '.RegionV6Latency | has("901")' true "region 901 measured over IPv6"
ok "IPv6 present: IPv6 true, GlobalV6 [2001:db8:1::2]:40000"

# The textfile, read by a real node_exporter.
[ -s "$work/textfile/netcheck.prom" ] || fail "--textfile wrote nothing"
exporter_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prometheus-node-exporter --web.listen-address="127.0.0.1:$exporter_port" --collector.disable-defaults \
  --collector.textfile --collector.textfile.directory="$work/textfile" >"$work/exporter.log" 2>&1 &
exporter_pid=$!
metrics=""
for _ in $(seq 1 100); do
  metrics=$(curl -s --max-time 1 "http://127.0.0.1:$exporter_port/metrics" || true)
  [ -n "$metrics" ] && break
  sleep 0.1
done
grep -q '^node_textfile_scrape_error 0' <<<"$metrics" || fail "node_exporter could not read the textfile: $(grep textfile <<<"$metrics")"
grep -qE '^netcheck_udp(\{[^}]*\})? 1$' <<<"$metrics" || fail "node_exporter does not show netcheck_udp 1"
grep -qE '^netcheck_region_latency_seconds\{[^}]*region_id="901"' <<<"$metrics" ||
  fail "node_exporter does not show region 901's latency"
ok "--textfile: node_exporter serves netcheck_udp 1 and region latencies"
kill "$exporter_pid"; exporter_pid=""

# --- 2. symmetric NAT -------------------------------------------------------------------------
nat_rules "masquerade random"
run_netcheck symmetric
expect symmetric .UDP true "UDP works through the NAT"
expect symmetric .MappingVariesByDestIP true "a new port per destination"
ok "symmetric NAT: MappingVariesByDestIP true"

# --- 3. UDP dropped by the NAT host: latency over HTTPS -----------------------------------------
nat_rules masquerade "" "table ip filt { chain blockudp { type filter hook forward priority 0; meta l4proto udp drop; }; }"
in_ns nat nft add table ip6 filt6
in_ns nat nft "add chain ip6 filt6 blockudp { type filter hook forward priority 0; }"
in_ns nat nft add rule ip6 filt6 blockudp meta l4proto udp drop
run_netcheck noudp
expect noudp .UDP false "no STUN answer gets through"
expect noudp '.RegionLatency | has("901") and has("902")' true "both regions measured over HTTPS"
expect noudp '.PreferredDERP == 901 or .PreferredDERP == 902' true "a home region chosen anyway"
ok "UDP dropped: UDP false, both regions measured over HTTPS, PreferredDERP $(field noudp .PreferredDERP)"

# --- 4. captive portal: the NAT host answers every port-80 request with a page ------------------
cat >"$work/portal.py" <<'PY'
import http.server, sys
class Portal(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>Welcome to Hotel WiFi. Please log in.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("192.0.2.1", int(sys.argv[1])), Portal).serve_forever()
PY
in_ns nat python3 "$work/portal.py" 8080 >"$work/portal.log" 2>&1 &
for _ in $(seq 1 50); do in_ns cli curl -s -o /dev/null --max-time 1 http://192.0.2.1:8080/ && break; sleep 0.1; done
# First without the portal (--verbose keeps the check running after STUN succeeds).
nat_rules masquerade
run_netcheck noportal --verbose
expect noportal .CaptivePortal false "region 901's /generate_204 answers the challenge"
nat_rules masquerade "iifname \"${P}b\" tcp dport 80 dnat to 192.0.2.1:8080;"
run_netcheck portal --verbose
expect portal .CaptivePortal true "a page instead of 204"
ok "captive portal: false without, true with a port-80 interceptor"

# --- 5. IPv6 absent ---------------------------------------------------------------------------
nat_rules masquerade
ip -n "${P}cli" -6 route del default via 2001:db8:1::1
run_netcheck noroute6
expect noroute6 .IPv6 false "no IPv6 route"
expect noroute6 .IPv4 true "IPv4 unaffected"
expect noroute6 .OSHasIPv6 true "the OS still has IPv6"
in_ns cli sysctl -qw net.ipv6.conf.all.disable_ipv6=1
in_ns cli sysctl -qw net.ipv6.conf.lo.disable_ipv6=1
run_netcheck noipv6
expect noipv6 .IPv6 false "IPv6 disabled"
expect noipv6 .OSHasIPv6 false "IPv6 disabled in the OS"
expect noipv6 .UDP true "IPv4 STUN still works"
ok "IPv6 absent: IPv6 false (OSHasIPv6 true without a route, false when disabled)"

# --- 6. one relay down --------------------------------------------------------------------------
kill "$(cat "$work/relay-b.pid")"
for _ in $(seq 1 50); do kill -0 "$(cat "$work/relay-b.pid")" 2>/dev/null || break; sleep 0.1; done
run_netcheck onedown
expect onedown '.RegionLatency | has("902")' false "region 902 is down"
expect onedown '.RegionLatency | has("901")' true "region 901 still measured"
expect onedown .PreferredDERP 901 "the nearest among the rest"
ok "one relay down: region 902 unmeasured, PreferredDERP 901"

echo "netcheck behind NATs: $passed passed, 0 failed"
