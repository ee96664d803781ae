#!/usr/bin/env bash
# deploy/ for real: a server namespace holds derp-relay, a website (nginx) and, in turn, nginx and
# HAProxy sharing :443 and :80 between them, each with its file from deploy/ used verbatim (only
# the website example's certificate paths and document root are substituted). The relay runs
# with the flags deploy/derp-relay.default gives for that proxy and a certificate of its own
# (--certmode manual). Clients in a tailnet namespace (100.64.0.2) and an outside one
# (198.51.100.2) check, through each proxy:
#   - derp-probe --once on a one-node Headscale YAML map pinning the relay's certificate: TLS,
#     STUN (direct) and DERP packets between two clients pass, and the relay logs the client's
#     real address;
#   - SNI derp.example.com gets the relay's own certificate, www.example.com and no SNI get the
#     website's (openssl s_client), and the website answers over verified TLS;
#   - /debug/varz through :443 answers the tailnet client and refuses (403) the outside one;
#   - :80 by Host: /generate_204 with the challenge, the relay's https redirect, the website, and
#     /debug/ refused from outside;
# and deploy/nftables/derp-relay-private.nft: before it, a forged PROXY header sent straight to
# :8443 from outside is believed (the danger); after it, that connection is dropped while the
# proxied path keeps working. Needs root (ip netns): exits 77 without it, except under CI.
# Usage: deploy_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
deploy=$(cd "$(dirname "$0")/../../deploy" && pwd)
relay="$build/relay/derp-relay"
prober="$build/probe/derp-probe"
if [ "$(id -u)" != 0 ]; then
  [ -z "${CI:-}" ] || { echo "FAIL: CI runs as root, but this is uid $(id -u)" >&2; exit 1; }
  echo "SKIP: needs root to create network namespaces"
  exit 77
fi
for tool in nginx haproxy nft curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$stream_module" ] || { echo "FAIL: $stream_module missing: install libnginx-mod-stream" >&2; exit 1; }
for bin in "$relay" "$prober"; do
  [ -x "$bin" ] || { echo "FAIL: $bin is not built" >&2; exit 1; }
done

P=dd$$
work=$(mktemp -d)
chmod 755 "$work"  # nginx's workers (nobody) read the website's files
cleanup() {
  exec 2>/dev/null  # bash reports each killed background job; that is not news here
  for ns in s t o; do
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
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }

# The server s: 100.64.0.1 towards the tailnet host t, 198.51.100.1 towards the outside host o.
ip netns add "${P}s"
ip -n "${P}s" link set lo up
declare -A server_ip=([t]=100.64.0.1 [o]=198.51.100.1) client_ip=([t]=100.64.0.2 [o]=198.51.100.2)
for x in t o; do
  ip netns add "$P$x"
  ip -n "$P$x" link set lo up
  ip link add "${P}${x}0" type veth peer name "${P}${x}1"
  ip link set "${P}${x}0" netns "${P}s"
  ip link set "${P}${x}1" netns "$P$x"
  ip -n "${P}s" addr add "${server_ip[$x]}/24" dev "${P}${x}0"
  ip -n "$P$x" addr add "${client_ip[$x]}/24" dev "${P}${x}1"
  ip -n "${P}s" link set "${P}${x}0" up
  ip -n "$P$x" link set "${P}${x}1" up
done
in_ns() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

# Certificates: the relay's own (the manual mode's <certdir>/<hostname>.crt/.key) and the
# website's, each self-signed so each is its own trust anchor.
state="$work/state"
mkdir -p "$state/certs" "$work/website" "$work/www" "$work/tmp"
selfsigned() {  # selfsigned NAME CERT KEY
  timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
    -subj "/CN=$1" -addext "subjectAltName=DNS:$1" -keyout "$3" -out "$2" 2>/dev/null
}
relay_crt="$state/certs/derp.example.com.crt"
site_crt="$work/website/fullchain.pem"
selfsigned derp.example.com "$relay_crt" "$state/certs/derp.example.com.key"
selfsigned www.example.com "$site_crt" "$work/website/privkey.pem"
fingerprint() { timeout 10 openssl x509 -noout -fingerprint -sha256 "$@" | cut -d= -f2; }
relay_fp=$(fingerprint -in "$relay_crt")
site_fp=$(fingerprint -in "$site_crt")
pin=$(timeout 10 openssl x509 -in "$relay_crt" -outform der | sha256sum | cut -d' ' -f1)
echo "deploy-test website" >"$work/www/index.html"
chmod -R a+rX "$work/www"

# The map derp-probe gets, in Headscale's YAML (derp.paths): the relay reached through the
# proxy's outside address on :443 (STUN goes straight to the relay on UDP 3478), its certificate
# pinned.
cat >"$work/derp.yaml" <<YAML
regions:
  900:
    regionid: 900
    regioncode: shared
    regionname: Shared 443
    nodes:
      - {name: 900a, regionid: 900, hostname: derp.example.com, ipv4: 198.51.100.1, ipv6: none,
         stunport: 3478, derpport: 443, certname: "sha256-raw:$pin"}
YAML

# The website's nginx configuration files: the deploy example for TLS, and a test-owned port-80
# server, on :80 itself (nginx in front) or on 127.0.0.1:8081 behind HAProxy's PROXY header.
sed -e "s|/etc/ssl/website/|$work/website/|" -e "s|/var/www/html|$work/www|" \
  "$deploy/nginx/website-tls.conf" >"$work/website-tls.conf"
grep -q "$work/website/fullchain.pem" "$work/website-tls.conf" || fail "website-tls.conf: paths not substituted"
nginx_conf() {  # nginx_conf FILE STREAM_INCLUDE HTTP_INCLUDE WEBSITE_80_LISTEN
  cat >"$1" <<CONF
load_module $stream_module;
pid $1.pid;
error_log stderr;
events { worker_connections 256; }
$2
http {
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  log_format who '\$server_name \$remote_addr \$request';
  access_log $work/website-access.log who;
  $3
  include $work/website-tls.conf;
  server {
    listen $4;
    server_name www.example.com;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    root $work/www;
  }
}
CONF
}

# derp-relay with the flags deploy/derp-relay.default gives for this proxy, and the paths the
# systemd unit gives.
relay_pid=""
start_relay() {  # start_relay PROXY_PROTOCOL_LISTENERS
  local line
  line=$(sed -n "s/^#DERP_RELAY_ARGS=\"\(.*--proxy-protocol $1\)\"\$/\1/p" "$deploy/derp-relay.default")
  [ -n "$line" ] || fail "derp-relay.default has no DERP_RELAY_ARGS line ending in --proxy-protocol $1"
  echo "relay flags from derp-relay.default: $line"
  # shellcheck disable=SC2086 # the line is split into words, as systemd splits $DERP_RELAY_ARGS
  ip netns exec "${P}s" "$relay" -c "$state/derper.key" --certdir "$state/certs" $line -v >"$work/relay.log" 2>&1 &
  relay_pid=$!
}
stop() {  # stop PID...: TERM, then a bounded wait for each to exit
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
wait_ready() {  # both the relay (through the proxy) and the website answer from outside
  local _
  for _ in $(seq 1 100); do
    kill -0 "$relay_pid" 2>/dev/null || fail "derp-relay exited"
    if [ "$(https_code o derp.example.com /derp/probe)" = 200 ] &&
      [ "$(https_code o www.example.com /)" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  fail "relay or website not reachable through the proxy within 10 s"
}

https_code() {  # https_code NS NAME PATH: status code through :443 with the name's own trust anchor
  local ca=$relay_crt
  [ "$2" = www.example.com ] && ca=$site_crt
  in_ns "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$ca" \
    --resolve "$2:443:${server_ip[$1]}" "https://$2$3" || true
}
http80() {  # http80 NS NAME PATH [curl args]: through :80, by Host
  local ns=$1 name=$2 path=$3
  shift 3
  in_ns "$ns" curl -s --max-time 5 --resolve "$name:80:${server_ip[$ns]}" "$@" "http://$name$path" || true
}
served_fp() {  # served_fp NS [-servername NAME | -noservername]: the leaf certificate's fingerprint
  local ns=$1
  shift
  in_ns "$ns" timeout 10 openssl s_client -connect "${server_ip[$ns]}:443" "$@" </dev/null 2>/dev/null |
    fingerprint 2>/dev/null || true
}

check_through() {  # check_through PROXY: everything a client sees through that proxy
  local via=$1 out got want
  out=$(in_ns o timeout 60 "$prober" --once --derp-map "$work/derp.yaml" 2>&1) ||
    fail "$via: derp-probe --once through the proxy failed:"$'\n'"$out"
  while IFS= read -r line; do echo "    $line"; done <<<"$out"
  for probe in tls udp mesh; do
    grep -Eq "^shared +900a.* $probe +ok " <<<"$out" || fail "$via: probe $probe did not pass"
  done
  ok "$via: derp-probe --once: TLS (pinned relay certificate), STUN and DERP through the proxy"
  grep -Eq '^.*198\.51\.100\.2:[0-9]+: client [^ ]+ connected' "$work/relay.log" ||
    fail "$via: the relay did not log the DERP clients' real address 198.51.100.2"
  ok "$via: the relay logs DERP clients from 198.51.100.2 (the PROXY header's address)"

  got=$(served_fp o -servername derp.example.com)
  [ "$got" = "$relay_fp" ] || fail "$via: SNI derp.example.com got certificate $got, want the relay's $relay_fp"
  got=$(served_fp o -servername www.example.com)
  [ "$got" = "$site_fp" ] || fail "$via: SNI www.example.com got certificate $got, want the website's $site_fp"
  got=$(served_fp o -noservername)
  [ "$got" = "$site_fp" ] || fail "$via: no SNI got certificate $got, want the website's"
  ok "$via: SNI derp.example.com -> the relay's certificate; www.example.com and no SNI -> the website's"
  got=$(in_ns o curl -s --max-time 5 --cacert "$site_crt" \
    --resolve "www.example.com:443:${server_ip[o]}" https://www.example.com/ || true)
  [ "$got" = "deploy-test website" ] || fail "$via: https://www.example.com/ gave '$got'"
  grep -q "^www.example.com 198.51.100.2 GET / " "$work/website-access.log" ||
    fail "$via: the website did not see the client's address 198.51.100.2"
  ok "$via: the website answers over verified TLS and sees the client as 198.51.100.2"

  got=$(https_code t derp.example.com /debug/varz)
  [ "$got" = 200 ] || fail "$via: /debug/varz from the tailnet (100.64.0.2) gave $got, want 200"
  got=$(https_code o derp.example.com /debug/varz)
  [ "$got" = 403 ] || fail "$via: /debug/varz from outside (198.51.100.2) gave $got, want 403"
  ok "$via: /debug/varz through :443: 200 from 100.64.0.2, 403 from 198.51.100.2"

  got=$(http80 o derp.example.com /generate_204 -D - -o /dev/null -H 'X-Tailscale-Challenge: deploytest7')
  grep -q '^HTTP/1.1 204' <<<"$got" || fail "$via: :80 /generate_204 gave: $got"
  grep -qi '^X-Tailscale-Response: response deploytest7' <<<"$got" ||
    fail "$via: :80 /generate_204 did not answer the challenge: $got"
  got=$(http80 o derp.example.com /somewhere -o /dev/null -w '%{http_code} %{redirect_url}')
  [ "$got" = "302 https://derp.example.com/somewhere" ] || fail "$via: :80 redirect gave '$got'"
  got=$(http80 o www.example.com /)
  [ "$got" = "deploy-test website" ] || fail "$via: :80 www.example.com gave '$got'"
  ok "$via: :80 by Host: /generate_204 answers the challenge, the relay redirects to https, the website answers"
  got=$(http80 o derp.example.com /debug/varz -o /dev/null -w '%{http_code}')
  [ "$got" = 403 ] || fail "$via: :80 /debug/varz from outside gave $got, want 403"
  want=$2  # what the tailnet client gets on :80: nginx adds X-Forwarded-For, HAProxy a PROXY header
  got=$(http80 t derp.example.com /debug/varz -o /dev/null -w '%{http_code}')
  [ "$got" = "$want" ] || fail "$via: :80 /debug/varz from the tailnet gave $got, want $want"
  ok "$via: :80 /debug/varz: 403 from outside, $want from the tailnet"
}

forged() {  # a PROXY v1 header claiming 100.64.0.9, sent straight to the relay's :8443 from outside
  in_ns o timeout 20 python3 - "${server_ip[o]}" <<'PY'
import socket, ssl, sys
host = sys.argv[1]
try:
    s = socket.create_connection((host, 8443), timeout=3)
except OSError as e:
    print(f"no connection ({e})")
    sys.exit(0)
s.settimeout(5)
s.sendall(f"PROXY TCP4 100.64.0.9 {host} 40000 8443\r\n".encode())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="derp.example.com")
t.sendall(b"GET /debug/varz HTTP/1.1\r\nHost: derp.example.com\r\nConnection: close\r\n\r\n")
print(t.recv(64).decode(errors="replace").split("\r\n")[0])
PY
}

# 1. nginx in front (stream + ssl_preread on :443, http on :80), relay --proxy-protocol main.
start_relay main
nginx_conf "$work/nginx-front.conf" "include $deploy/nginx/derp-relay-stream.conf;" \
  "include $deploy/nginx/derp-relay-http.conf;" "80 default_server"
ip netns exec "${P}s" nginx -e stderr -p "$work" -c "$work/nginx-front.conf" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
nginx_pid=$!
wait_ready
check_through nginx 403

got=$(forged)
[ "$got" = "HTTP/1.1 200 OK" ] || fail "without the firewall, a forged PROXY header to :8443 gave '$got' (expected the relay to believe it)"
ok "without deploy/nftables: a forged PROXY header sent to :8443 from outside reads /debug/ ($got)"
in_ns s nft -f "$deploy/nftables/derp-relay-private.nft"
in_ns s nft -f "$deploy/nftables/derp-relay-private.nft"  # loading it twice must not stack rules
[ "$(in_ns s nft list table inet derp_relay_private | grep -c drop)" = 1 ] ||
  fail "derp-relay-private.nft loaded twice holds more than one rule"
got=$(forged)
[[ $got == "no connection"* ]] || fail "with the firewall, a forged PROXY header to :8443 gave '$got'"
code=$(https_code t derp.example.com /debug/varz)
[ "$code" = 200 ] || fail "with the firewall, /debug/varz through nginx from the tailnet gave $code"
ok "with deploy/nftables: :8443 from outside: $got; through the proxy: still $code"
stop "$nginx_pid" "$relay_pid"

# 2. HAProxy in front (both ports), relay --proxy-protocol main,http; nginx serves only the website.
start_relay main,http
nginx_conf "$work/nginx-site.conf" "" "" "127.0.0.1:8081 proxy_protocol"
ip netns exec "${P}s" nginx -e stderr -p "$work" -c "$work/nginx-site.conf" -g 'daemon off;' >"$work/nginx.log" 2>&1 &
nginx_pid=$!
cat >"$work/haproxy-base.cfg" <<'CFG'
global
  maxconn 256
  log stdout format raw local0
defaults
  log global
  mode http
  timeout connect 5s
  timeout client 50s
  timeout server 50s
CFG
ip netns exec "${P}s" haproxy -db -f "$work/haproxy-base.cfg" -f "$deploy/haproxy/derp-relay.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
: >"$work/website-access.log"
wait_ready
check_through haproxy 200
stop "$haproxy_pid" "$nginx_pid" "$relay_pid"
echo "deploy through nginx and HAProxy: $passed passed, 0 failed"
