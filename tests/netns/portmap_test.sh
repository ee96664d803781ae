#!/usr/bin/env bash
# netcheck's port-mapping probe against a real gateway: Debian's miniupnpd (UPnP IGD, NAT-PMP and
# PCP) on a NAT host in its own network namespace, asked from a client namespace whose default
# route points at it. The probe runs through tests/unit/netcheck_side/portmap_probe (JSON with
# the report's UPnP/PMP/PCP keys); upnpc and natpmpc cross-check every answer.
#
#   cli 192.0.2.2 --veth-- 192.0.2.1 nat [miniupnpd] 198.51.100.1 --veth-- (nothing: the other
#                                                   end stays unaddressed in the NAT namespace)
#
# Scenarios: no miniupnpd (all false); miniupnpd behind a documentation-range outside address
# (UPnP and PCP true, NAT-PMP false: miniupnpd refuses NETWORK_FAILURE for any reserved outside
# address); miniupnpd behind an address it accepts as public (all three true); no default route
# (not checked: null). Needs root (ip netns); exits 77 with the reason otherwise.
# Usage: portmap_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
probe="$build/tests/unit/netcheck_side/portmap_probe"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi
for tool in miniupnpd upnpc natpmpc jq ip; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin:/sbin"
  command -v "$tool" >/dev/null ||
    { echo "FAIL: $tool is not installed: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$probe" ] || { echo "FAIL: $probe is not built" >&2; exit 1; }

P=pm$$
work=$(mktemp -d)
mini_pid=
cleanup() {
  exec 2>/dev/null
  [ -n "$mini_pid" ] && kill "$mini_pid" && wait "$mini_pid"
  for ns in cli nat; do
    for pid in $(ip netns pids "$P$ns"); do kill -9 "$pid"; done
    ip netns del "$P$ns"
  done
  rm -rf "$work"
  true
}
trap cleanup EXIT

passed=0
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.json "$work"/*.log "$work"/*.txt; do
    [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
  done
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }

# Network: the client's only route out is the NAT host; the NAT host's outside is one end of a
# veth pair whose other end stays in the NAT namespace with no address (the kernel here may lack
# the dummy module), so nothing sent in these namespaces can reach any real network.
ip netns add "${P}cli"
ip netns add "${P}nat"
ip -n "${P}cli" link set lo up
ip -n "${P}nat" link set lo up
ip link add "${P}a" type veth peer name "${P}b"
ip link set "${P}a" netns "${P}cli"
ip link set "${P}b" netns "${P}nat"
ip -n "${P}cli" addr add 192.0.2.2/24 dev "${P}a"
ip -n "${P}cli" link set "${P}a" up
ip -n "${P}cli" route add default via 192.0.2.1
ip -n "${P}nat" addr add 192.0.2.1/24 dev "${P}b"
ip -n "${P}nat" link set "${P}b" up
ip -n "${P}nat" link add "${P}x" type veth peer name "${P}y"
ip -n "${P}nat" addr add 198.51.100.1/24 dev "${P}x"
ip -n "${P}nat" link set "${P}x" up
ip -n "${P}nat" link set "${P}y" up
ip netns exec "${P}nat" sysctl -qw net.ipv4.ip_forward=1

# Runs the probe in the client namespace; $1 names the output file.
run_probe() {
  ip netns exec "${P}cli" timeout 20 "$probe" --timeout 2s >"$work/$1.json" 2>"$work/$1.log" ||
    fail "portmap_probe exited $? ($1)"
}
# Asserts a jq expression on a probe's output.
expect() {
  jq -e "$2" "$work/$1.json" >/dev/null || fail "$1: expected $2"
}

start_miniupnpd() {
  cat >"$work/miniupnpd.conf" <<CONF
ext_ifname=${P}x
listening_ip=${P}b
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
lease_file=$work/upnp.leases
uuid=3f1c3c3e-5a4b-4c1d-9e2f-00000000$(printf '%04x' $((passed % 65536)))
allow 1024-65535 192.0.2.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
  ip netns exec "${P}nat" miniupnpd -d -f "$work/miniupnpd.conf" -P "$work/miniupnpd.pid" \
    >"$work/miniupnpd.log" 2>&1 &
  mini_pid=$!
  # Bounded readiness: NAT-PMP/PCP on 5351 and SSDP on 1900 are open in the NAT namespace.
  for _ in $(seq 1 100); do
    if ! kill -0 "$mini_pid" 2>/dev/null; then
      echo "SKIP: miniupnpd cannot run in a network namespace here; it exited with:" >&2
      cat "$work/miniupnpd.log" >&2
      exit 77
    fi
    sockets=$(ip netns exec "${P}nat" ss -Hlun)
    if grep -q ':5351 ' <<<"$sockets" && grep -q ':1900 ' <<<"$sockets"; then return 0; fi
    sleep 0.1
  done
  echo "SKIP: miniupnpd did not open its NAT-PMP and SSDP ports within 10 s:" >&2
  cat "$work/miniupnpd.log" >&2
  exit 77
}
stop_miniupnpd() {
  kill "$mini_pid"
  wait "$mini_pid" || true
  mini_pid=
}

# 1. Nobody on the gateway speaks any of the three: checked, and false.
run_probe none
expect none '.Gateway == "192.0.2.1" and .UPnP == false and .PMP == false and .PCP == false'
expect none '.Notes | index("gateway 192.0.2.1 (IPv4 default route)") != null'
ok "no port-mapping service: UPnP, PMP and PCP false (gateway found in /proc/net/route)"
if ip netns exec "${P}cli" timeout 3 natpmpc -g 192.0.2.1 >"$work/natpmpc-none.txt" 2>&1; then
  fail "natpmpc found NAT-PMP where nothing runs"
fi
ip netns exec "${P}cli" timeout 10 upnpc -s >"$work/upnpc-none.txt" 2>&1 || true
grep -q 'No IGD UPnP Device found' "$work/upnpc-none.txt" || fail "upnpc found an IGD where nothing runs"
ok "natpmpc and upnpc agree: nothing answers"

# 2. miniupnpd behind a documentation-range outside address. miniupnpd treats it as reserved:
# it answers SSDP and PCP ANNOUNCE, but refuses NAT-PMP's external address (NETWORK_FAILURE).
start_miniupnpd
run_probe reserved
expect reserved '.Gateway == "192.0.2.1" and .UPnP == true and .PCP == true and .PMP == false'
expect reserved '.Notes | map(select(contains("NAT-PMP: the gateway answered NETWORK_FAILURE (3)"))) | length == 1'
expect reserved '.Notes | map(select(startswith("UPnP: 192.0.2.1:1900 answered as urn:schemas-upnp-org:device:InternetGatewayDevice:") and contains("MiniUPnPd/"))) | length == 1'
expect reserved '.Notes | map(select(startswith("PCP: ANNOUNCE answered SUCCESS (0"))) | length == 1'
ok "miniupnpd, reserved outside address: UPnP true, PCP true, NAT-PMP false (NETWORK_FAILURE)"
ip netns exec "${P}cli" timeout 5 natpmpc -g 192.0.2.1 >"$work/natpmpc-reserved.txt" 2>&1 || true
grep -q 'network failure' "$work/natpmpc-reserved.txt" ||
  fail "natpmpc did not report NAT-PMP's network failure"
ip netns exec "${P}cli" timeout 10 upnpc -s >"$work/upnpc-reserved.txt" 2>&1 || true
grep -q 'desc: http://192.0.2.1:' "$work/upnpc-reserved.txt" || fail "upnpc found no IGD"
ok "natpmpc reports the same network failure; upnpc finds the same IGD"
stop_miniupnpd

# 3. miniupnpd behind an outside address it accepts as public. Every special-purpose range
# (documentation, CGNAT, benchmarking, private) is on miniupnpd's reserved list, so this one is
# an ordinary unicast address: 192.0.3.1, just past TEST-NET-1. It sits on the unconnected veth
# in a namespace with no link anywhere, so no packet can ever reach whoever holds it.
public=192.0.3.1
ip -n "${P}nat" addr flush dev "${P}x"
ip -n "${P}nat" addr add "$public/24" dev "${P}x"
start_miniupnpd
run_probe public
expect public '.UPnP == true and .PMP == true and .PCP == true'
expect public ".Notes | map(select(startswith(\"NAT-PMP: public address $public \"))) | length == 1"
ok "miniupnpd, public outside address: UPnP, NAT-PMP and PCP true (public address $public)"
ip netns exec "${P}cli" timeout 5 natpmpc -g 192.0.2.1 >"$work/natpmpc-public.txt" 2>&1 ||
  fail "natpmpc failed against miniupnpd"
grep -q "Public IP address : $public" "$work/natpmpc-public.txt" ||
  fail "natpmpc did not see public address $public"
ip netns exec "${P}cli" timeout 10 upnpc -s >"$work/upnpc-public.txt" 2>&1 || true
grep -q "ExternalIPAddress = $public" "$work/upnpc-public.txt" ||
  fail "upnpc did not see external address $public"
ok "natpmpc and upnpc see the same public address"
stop_miniupnpd

# 4. No default route: nothing is sent and nothing is claimed.
ip -n "${P}cli" route del default
run_probe noroute
expect noroute '.Gateway == "" and .UPnP == null and .PMP == null and .PCP == null'
expect noroute '.Notes | index("no IPv4 default route in /proc/net/route: port mapping not checked") != null'
ok "no default route: not checked (null)"

echo "PASS: $passed checks"
