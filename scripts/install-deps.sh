#!/usr/bin/env bash
# Installs every Debian package that derpkit's build and tests need. Idempotent: when all of them
# are present it runs no package manager at all. Uses sudo when not root.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-14 libclang-rt-14-dev clang-format lld
  # libraries
  libssl-dev libgnutls28-dev liburing-dev libsodium-dev libasio-dev libcpp-httplib-dev prometheus-cpp-dev libcli11-dev
  nlohmann-json3-dev libyaml-cpp-dev libgtest-dev libgmock-dev
  # real servers and clients used by the tests, and the tools their scripts call
  coturn stun-server stun-client prometheus prometheus-node-exporter curl openssl iproute2 nftables
  procps haproxy nginx-light libnginx-mod-stream miniupnpd-nftables miniupnpd miniupnpc natpmpc
  jq python3 python3-yaml psmisc prometheus-pushgateway chromium fonts-dejavu-core prometheus-alertmanager
  # ACME test CA (pebble, pebble-challtestsrv) for derp-relay --certmode letsencrypt
  pebble
)
# Intel's ipsec-mb seals and opens the relay's AES-GCM TLS records (lib/net/record_aead.h); Debian
# builds it for amd64 only, and elsewhere GnuTLS does that work.
if [ "$(dpkg --print-architecture)" = amd64 ]; then packages+=(libipsec-mb-dev); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm packages, pinned by their package-lock.json: the Grafana dashboard schema check
# (dashboards/schema-check). `npm ci` runs only when the lock file changed since the last install,
# so a second run does nothing here either.
npm_install() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/dashboards/schema-check"
  [ -f "$dir/package-lock.json" ] || return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: npm is missing: cannot install $dir/node_modules" >&2
    return 1
  fi
  if cmp -s "$dir/package-lock.json" "$dir/node_modules/.derpkit-installed-lock.json"; then return 0; fi
  echo "install-deps: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$dir/package-lock.json" "$dir/node_modules/.derpkit-installed-lock.json"
}

if [ ${#missing[@]} -eq 0 ]; then
  npm_install
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Some packages start system services (coturn on :3478, nginx on :80, haproxy) where systemd
# runs; the tests start their own instances on free ports, so stop those.
if command -v systemctl >/dev/null 2>&1; then
  for svc in coturn nginx haproxy prometheus prometheus-node-exporter prometheus-pushgateway \
    prometheus-alertmanager miniupnpd stund; do
    if systemctl is-active --quiet "$svc" 2>/dev/null; then $SUDO systemctl stop "$svc" || true; fi
  done
fi
npm_install
