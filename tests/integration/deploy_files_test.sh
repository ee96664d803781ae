#!/usr/bin/env bash
# The files in deploy/ as their own tools read them, without root: the systemd unit through
# `systemd-analyze verify` (no warning allowed) and `systemd-analyze security --offline` (exposure
# at most 2.5 of 10), the nginx and HAProxy examples through `nginx -t` and `haproxy -c` (as
# the README tells to install them: nginx.conf including them, HAProxy's file after a global and
# defaults section), the nftables table through `nft -c`, and the Traefik YAML
# through a shape check (Traefik is not packaged in Debian), which must also reject three
# mistakes. A check whose tool is missing is skipped with a message; the rest still run.
# tests/netns/deploy_test.sh runs the nginx and HAProxy files for real. Usage: BUILD_DIR
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
deploy=$(cd "$here/../../deploy" && pwd)
relay="$build/relay/derp-relay"
[ -x "$relay" ] || { echo "FAIL: $relay is not built" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
skipped=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }

# systemd unit, with only the binary's path changed (verify insists that it exists).
if command -v systemd-analyze >/dev/null; then
  sed "s|/usr/local/bin/derp-relay|$relay|" "$deploy/derp-relay.service" >"$work/derp-relay.service"
  grep -q "^ExecStart=$relay " "$work/derp-relay.service" || fail "ExecStart path not substituted"
  out=$(timeout 60 systemd-analyze verify "$work/derp-relay.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  ok "systemd-analyze verify derp-relay.service: no warnings"
  out=$(timeout 60 systemd-analyze security --offline=yes --threshold=25 \
    "$work/derp-relay.service" 2>&1) || fail "systemd-analyze security: $(tail -3 <<<"$out")"
  ok "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$out")"
else
  skip "systemd-analyze is not installed: the unit file was not verified"
fi

# nginx -t and nft -c run in a network namespace of their own (as a user namespace's root when
# not root), so they neither need this host's privileges nor touch its ports and rules.
isolate=(unshare -n)
[ "$(id -u)" = 0 ] || isolate=(unshare -rn)

# Certificates for the configurations that name them (nginx -t loads them).
timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=www.example.com -addext subjectAltName=DNS:www.example.com \
  -keyout "$work/privkey.pem" -out "$work/fullchain.pem" 2>/dev/null

# nginx: the two relay files and the website example, included as the comments say; only the
# website's certificate paths and document root change.
if command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  sed -e "s|/etc/ssl/website/|$work/|" -e "s|/var/www/html|$work|" \
    "$deploy/nginx/website-tls.conf" >"$work/website-tls.conf"
  mkdir -p "$work/tmp"
  cat >"$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
# -t starts no workers; root (the namespace's own, without real root) can chown the temp paths.
user root root;
pid $work/nginx.pid;
error_log stderr;
events { worker_connections 64; }
include $deploy/nginx/derp-relay-stream.conf;
http {
  access_log off;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  include $deploy/nginx/derp-relay-http.conf;
  include $work/website-tls.conf;
}
CONF
  # nginx -t binds the stream listeners (:443): in a namespace of its own, never on this host.
  if "${isolate[@]}" true 2>/dev/null; then
    out=$(timeout 30 "${isolate[@]}" nginx -t -q -e stderr -p "$work" -c "$work/nginx.conf" 2>&1) ||
      fail "nginx -t: $out"
    ok "nginx -t: derp-relay-stream.conf, derp-relay-http.conf, website-tls.conf"
  else
    skip "nginx -t needs a network namespace of its own (${isolate[*]} is not allowed here)"
  fi
else
  skip "nginx with the stream module (libnginx-mod-stream) is not installed"
fi

# HAProxy: Debian's global and defaults sections (logging to stdout, no chroot), then ours.
if command -v haproxy >/dev/null; then
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
  out=$(timeout 30 haproxy -c -f "$work/haproxy-base.cfg" -f "$deploy/haproxy/derp-relay.cfg" 2>&1) ||
    fail "haproxy -c: $out"
  ! grep -qi warning <<<"$out" || fail "haproxy -c warns: $out"
  ok "haproxy -c: derp-relay.cfg after a defaults section"
else
  skip "haproxy is not installed"
fi

# nftables: `nft -c` needs CAP_NET_ADMIN even to check: in a namespace of its own, as for nginx.
if command -v nft >/dev/null && "${isolate[@]}" true 2>/dev/null; then
  out=$(timeout 30 "${isolate[@]}" nft -c -f "$deploy/nftables/derp-relay-private.nft" 2>&1) ||
    fail "nft -c: $out"
  ok "nft -c derp-relay-private.nft"
else
  skip "nft -c needs nftables and a network namespace of its own"
fi

# Traefik: shape only. The checker must pass the real file and catch each of three mistakes.
if python3 -c 'import yaml' 2>/dev/null; then
  check="$here/deploy_traefik_check.py"
  out=$(timeout 30 python3 "$check" "$deploy/traefik/derp-relay.yml" 2>&1) || fail "$out"
  ok "traefik shape: ${out#*: ok: }"
  declare -A mistakes=(
    ["passthrough off"]='s/passthrough: true/passthrough: false/'
    ["PROXY v1"]='s/version: 2/version: 1/'
    ["misspelt key"]='0,/entryPoints:/s//entrypoints:/'
  )
  for m in "${!mistakes[@]}"; do
    sed "${mistakes[$m]}" "$deploy/traefik/derp-relay.yml" >"$work/bad.yml"
    ! cmp -s "$work/bad.yml" "$deploy/traefik/derp-relay.yml" || fail "mistake '$m' changed nothing"
    if timeout 30 python3 "$check" "$work/bad.yml" >/dev/null 2>&1; then
      fail "the Traefik check accepted a file with a mistake: $m"
    fi
  done
  ok "traefik shape check rejects: ${!mistakes[*]}"
else
  skip "python3-yaml is not installed: the Traefik file was not checked"
fi
echo "deploy files: $passed passed, 0 failed, $skipped skipped"
