#!/usr/bin/env bash
# /debug/ access from real hosts: network namespaces with a tailnet address (100.64.0.0/10), an
# outside one (198.51.100.0/24), one in the excluded ChromeOS range (100.115.92.0/23) and a
# tailnet IPv6 ULA (fd7a:115c:a1e0::/48) reach a relay in its own namespace, directly and
# through HAProxy sending PROXY protocol v2. Needs root (ip netns); skips with a message
# otherwise. Usage: debug_access_test.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
relay="$build/relay/derp-relay"
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi
command -v haproxy >/dev/null || { echo "FAIL: haproxy is not installed: run scripts/install-deps.sh" >&2; exit 1; }

P=dk$$
work=$(mktemp -d)
clients=(t o c u)
cleanup() {
  exec 2>/dev/null  # bash reports each killed background job; that is not news here
  for ns in r "${clients[@]}"; do
    for pid in $(ip netns pids "$P$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$P$ns" 2>/dev/null || true
  done
  wait || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
fail() { echo "FAIL: $*" >&2; cat "$work"/*.log >&2 2>/dev/null || true; exit 1; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }

ip netns add "${P}r"
ip -n "${P}r" link set lo up
declare -A relay_ip client_ip plen
relay_ip=([t]=100.64.0.1 [o]=198.51.100.1 [c]=100.115.92.1 [u]=fd7a:115c:a1e0::1)
client_ip=([t]=100.64.0.2 [o]=198.51.100.2 [c]=100.115.92.2 [u]=fd7a:115c:a1e0::2)
plen=([t]=24 [o]=24 [c]=24 [u]=64)
for x in "${clients[@]}"; do
  ip netns add "$P$x"
  ip -n "$P$x" link set lo up
  ip link add "${P}${x}0" type veth peer name "${P}${x}1"
  ip link set "${P}${x}0" netns "${P}r"
  ip link set "${P}${x}1" netns "$P$x"
  ip -n "${P}r" addr add "${relay_ip[$x]}/${plen[$x]}" dev "${P}${x}0" nodad 2>/dev/null ||
    ip -n "${P}r" addr add "${relay_ip[$x]}/${plen[$x]}" dev "${P}${x}0"
  ip -n "$P$x" addr add "${client_ip[$x]}/${plen[$x]}" dev "${P}${x}1" nodad 2>/dev/null ||
    ip -n "$P$x" addr add "${client_ip[$x]}/${plen[$x]}" dev "${P}${x}1"
  ip -n "${P}r" link set "${P}${x}0" up
  ip -n "$P$x" link set "${P}${x}1" up
done

# The relay: DERP and /debug/ on :18080 (all addresses), and a /debug/-only listener on
# 127.0.0.1:19090 that expects PROXY headers, fed by HAProxy on :19191.
ip netns exec "${P}r" "$relay" -a :18080 --http-port -1 --stun=false -c "$work/derper.key" \
  --debug-addr 127.0.0.1:19090 --proxy-protocol debug >"$work/relay.log" 2>&1 &
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 100
defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend debug_in
  bind :::19191 v4v6
  default_backend relay_debug
backend relay_debug
  server relay 127.0.0.1:19090 send-proxy-v2
CFG
ip netns exec "${P}r" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &

# Bounded readiness: both ports answer from the tailnet host.
for _ in $(seq 1 100); do
  if ip netns exec "${P}t" curl -s -o /dev/null --max-time 1 "http://100.64.0.1:18080/generate_204" &&
     ip netns exec "${P}t" curl -s -o /dev/null --max-time 1 "http://100.64.0.1:19191/debug/"; then
    break
  fi
  sleep 0.1
done

code() {  # code NS URL
  ip netns exec "$P$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$2" || true
}
url_for() {  # url_for X PORT PATH
  local host=${relay_ip[$1]}
  [[ $host == *:* ]] && host="[$host]"
  echo "http://$host:$2$3"
}
declare -A want=([t]=200 [o]=403 [c]=403 [u]=200)
declare -A name=([t]="tailnet 100.64.0.2" [o]="outside 198.51.100.2" [c]="ChromeOS 100.115.92.2" [u]="tailnet fd7a:115c:a1e0::2")
for x in "${clients[@]}"; do
  got=$(code "$x" "$(url_for "$x" 18080 /debug/)")
  [ "$got" = "${want[$x]}" ] || fail "direct from ${name[$x]}: /debug/ gave $got, want ${want[$x]}"
  ok "direct from ${name[$x]}: /debug/ -> $got"
  got=$(code "$x" "$(url_for "$x" 18080 /generate_204)")
  [ "$got" = 204 ] || fail "direct from ${name[$x]}: /generate_204 gave $got"
  got=$(code "$x" "$(url_for "$x" 19191 /debug/varz)")
  [ "$got" = "${want[$x]}" ] || fail "via HAProxy from ${name[$x]}: /debug/varz gave $got, want ${want[$x]}"
  ok "via HAProxy (PROXY v2) from ${name[$x]}: /debug/varz -> $got"
done
# The PROXY-expecting listener refuses a request without the header.
got=$(ip netns exec "${P}r" curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:19090/debug/ || true)
[ "$got" = 000 ] || fail "no PROXY header: got HTTP $got, want the connection closed"
ok "no PROXY header where one is expected: connection closed"
echo "debug access from namespaces: $passed passed, 0 failed"
