#!/usr/bin/env bash
# install-dashboards: copies derpkit's Prometheus rules and Grafana dashboards (dashboards/) to
# where Prometheus and Grafana read them. Idempotent: a file whose installed copy is already
# identical is left alone, and a second run changes nothing. `make install-dashboards` runs it.
set -euo pipefail

prog=install-dashboards
src=$(cd "$(dirname "$0")/../dashboards" && pwd)

usage() {
  cat <<EOF
$prog: installs derpkit's Prometheus rules and Grafana dashboards.

Usage: scripts/install-dashboards.sh [--root DIR] [--rules-dir DIR] [--provisioning-dir DIR]
                                     [--dashboards-dir DIR] [--prometheus-url URL]
                                     [--no-datasource]

Installs (default paths, Debian's packages of Prometheus and Grafana):
  /etc/prometheus/rules.d/derpkit-rules.yml            recording rules and alerts
  /var/lib/grafana/dashboards/derpkit/*.json           derp-relay, derp-probe, netcheck dashboards
  /etc/grafana/provisioning/dashboards/derpkit.yml     Grafana's file provider for that folder
  /etc/grafana/provisioning/datasources/derpkit.yml    a Prometheus data source (--prometheus-url)

Options (each also read from the environment variable in brackets):
  --root DIR              install below DIR, as a package build does [DESTDIR]; the paths written
                          into the provisioning files stay the real ones
  --rules-dir DIR         Prometheus rules folder [PROMETHEUS_RULES_DIR] (/etc/prometheus/rules.d)
  --provisioning-dir DIR  Grafana provisioning folder [GRAFANA_PROVISIONING_DIR] (/etc/grafana/provisioning)
  --dashboards-dir DIR    folder for the dashboard JSON [GRAFANA_DASHBOARDS_DIR] (/var/lib/grafana/dashboards/derpkit)
  --prometheus-url URL    the data source's URL [PROMETHEUS_URL] (http://localhost:9090)
  --no-datasource         do not install the data source (the dashboards ask for one anyway)
  -h, --help              this text

Prometheus loads the rules only if its prometheus.yml lists the folder:
  rule_files:
    - /etc/prometheus/rules.d/*.yml
then: systemctl reload prometheus; systemctl restart grafana-server.

Example:
  sudo scripts/install-dashboards.sh --prometheus-url http://prometheus.example.com:9090
  scripts/install-dashboards.sh --root /tmp/stage        # look before installing for real
EOF
}

bad_usage() {
  echo "$prog: $1 (see --help)" >&2
  exit 2
}

root=${DESTDIR:-}
rules_dir=${PROMETHEUS_RULES_DIR:-/etc/prometheus/rules.d}
provisioning_dir=${GRAFANA_PROVISIONING_DIR:-/etc/grafana/provisioning}
dashboards_dir=${GRAFANA_DASHBOARDS_DIR:-/var/lib/grafana/dashboards/derpkit}
prometheus_url=${PROMETHEUS_URL:-http://localhost:9090}
datasource=yes

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --no-datasource) datasource=no; shift ;;
    --root | --rules-dir | --provisioning-dir | --dashboards-dir | --prometheus-url)
      [ $# -ge 2 ] && [ -n "$2" ] || bad_usage "$1 needs a value"
      case $1 in
        --root) root=$2 ;;
        --rules-dir) rules_dir=$2 ;;
        --provisioning-dir) provisioning_dir=$2 ;;
        --dashboards-dir) dashboards_dir=$2 ;;
        --prometheus-url) prometheus_url=$2 ;;
      esac
      shift 2 ;;
    --root=* | --rules-dir=* | --provisioning-dir=* | --dashboards-dir=* | --prometheus-url=*)
      flag=${1%%=*}; value=${1#*=}
      set -- "$flag" "$value" "${@:2}" ;;
    *) bad_usage "unknown argument '$1'" ;;
  esac
done
for d in "$rules_dir" "$provisioning_dir" "$dashboards_dir"; do
  case $d in /*) ;; *) bad_usage "folders must be absolute paths: '$d'" ;; esac
done
case $prometheus_url in http://* | https://*) ;; *) bad_usage "--prometheus-url must be http(s)://...: '$prometheus_url'" ;; esac
case $prometheus_url in *[[:space:]\|\&\\]*) bad_usage "--prometheus-url has a character it cannot have: '$prometheus_url'" ;; esac
case $dashboards_dir in *[[:space:]\|\&\\]*) bad_usage "--dashboards-dir has a character it cannot have: '$dashboards_dir'" ;; esac
root=${root%/}

# The rules must be valid before they replace a working set: Prometheus refuses to reload with a
# broken rules file.
if command -v promtool >/dev/null; then
  promtool check rules "$src/prometheus/derpkit-rules.yml" >/dev/null ||
    { echo "$prog: promtool rejects $src/prometheus/derpkit-rules.yml; nothing installed" >&2; exit 1; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
changed=0
# put SOURCE DEST: installs SOURCE as $root/DEST (mode 0644) unless an identical copy is there.
put() {
  local from=$1 to=$root$2
  if [ -f "$to" ] && cmp -s "$from" "$to"; then
    echo "unchanged  $to"
    return
  fi
  install -D -m 0644 "$from" "$to"
  echo "installed  $to"
  changed=$((changed + 1))
}

put "$src/prometheus/derpkit-rules.yml" "$rules_dir/derpkit-rules.yml"
for d in "$src"/grafana/*.json; do
  put "$d" "$dashboards_dir/$(basename "$d")"
done
sed -E "s|^([[:space:]]+path:).*|\1 $dashboards_dir|" "$src/grafana/provisioning/dashboards.yml" \
  >"$tmp/dashboards.yml"
put "$tmp/dashboards.yml" "$provisioning_dir/dashboards/derpkit.yml"
if [ "$datasource" = yes ]; then
  sed -E "s|^([[:space:]]+url:).*|\1 $prometheus_url|" "$src/grafana/provisioning/datasource.yml" \
    >"$tmp/datasource.yml"
  put "$tmp/datasource.yml" "$provisioning_dir/datasources/derpkit.yml"
fi

echo "$prog: $changed file(s) changed"
# A hint, not a change: Prometheus reads no rules folder unless its configuration says so.
config=$root/etc/prometheus/prometheus.yml
if [ -z "$root" ] && [ -f "$config" ] && ! grep -qF "$rules_dir" "$config"; then
  echo "$prog: $config does not list $rules_dir: add it under rule_files (see --help)" >&2
fi
if [ "$changed" -gt 0 ] && [ -z "$root" ]; then
  echo "$prog: now reload Prometheus (systemctl reload prometheus) and restart Grafana (systemctl restart grafana-server)"
fi
