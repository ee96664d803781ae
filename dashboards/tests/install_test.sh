#!/usr/bin/env bash
# ctest dashboards_install: scripts/install-dashboards.sh into temporary roots. It installs every
# file where Prometheus and Grafana read them, byte for byte (the provisioning files with the
# dashboards folder and the Prometheus URL written in), changes nothing on a second run (same
# bytes, same modification times, "0 file(s) changed"), repairs an installed file that was
# edited, honours --dashboards-dir and --no-datasource, and answers --help and bad flags as
# derpkit's programs do (0 with an example; one line and status 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
script="$repo/scripts/install-dashboards.sh"
src="$repo/dashboards"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
run() { timeout 60 bash "$script" "$@"; }

# --- --help and bad flags --------------------------------------------------------------------
help=$(run --help) || fail "--help exited $?"
grep -q '^install-dashboards: ' <<<"$help" || fail "--help does not name the program: $(head -n 1 <<<"$help")"
grep -q '^Example:' <<<"$help" || fail "--help shows no example"
rc=0; err=$(run --no-such-flag 2>&1 >/dev/null) || rc=$?
[ "$rc" = 2 ] || fail "a bad flag exited $rc, want 2"
[ "$(wc -l <<<"$err")" = 1 ] || fail "a bad flag printed more than one line: $err"
rc=0; run --rules-dir relative/path >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a relative --rules-dir exited $rc, want 2"
ok "--help names the program and shows an example; a bad flag prints one line and exits 2"

# --- a first install -------------------------------------------------------------------------
r1="$work/root1"
out=$(run --root "$r1" --prometheus-url http://prometheus.internal:9090) || fail "install exited $?: $out"
grep -q '6 file(s) changed' <<<"$out" || fail "first install: $out"
same() { cmp -s "$1" "$2" || fail "$2 differs from $1"; }
same "$src/prometheus/derpkit-rules.yml" "$r1/etc/prometheus/rules.d/derpkit-rules.yml"
for d in derp-relay derp-probe netcheck; do
  same "$src/grafana/$d.json" "$r1/var/lib/grafana/dashboards/derpkit/$d.json"
done
prov="$r1/etc/grafana/provisioning"
grep -qx '      path: /var/lib/grafana/dashboards/derpkit' "$prov/dashboards/derpkit.yml" ||
  fail "dashboards provider path: $(grep path: "$prov/dashboards/derpkit.yml")"
grep -qx '    url: http://prometheus.internal:9090' "$prov/datasources/derpkit.yml" ||
  fail "datasource url: $(grep url: "$prov/datasources/derpkit.yml")"
# Everything else in the provisioning files is the shipped text.
diff <(grep -v '^ *path:' "$src/grafana/provisioning/dashboards.yml") <(grep -v '^ *path:' "$prov/dashboards/derpkit.yml") >/dev/null ||
  fail "the installed dashboards.yml differs beyond its path"
diff <(grep -v '^ *url:' "$src/grafana/provisioning/datasource.yml") <(grep -v '^ *url:' "$prov/datasources/derpkit.yml") >/dev/null ||
  fail "the installed datasource.yml differs beyond its url"
modes=$(find "$r1" -type f -printf '%m\n' | sort -u)
[ "$modes" = 644 ] || fail "installed files have modes $modes, want 644"
[ "$(find "$r1" -type f | wc -l)" = 6 ] || fail "want 6 files installed, found: $(find "$r1" -type f)"
if command -v promtool >/dev/null; then
  timeout 60 promtool check rules "$r1/etc/prometheus/rules.d/derpkit-rules.yml" >/dev/null ||
    fail "promtool rejects the installed rules"
fi
ok "installs the rules, 3 dashboards and 2 provisioning files (provider path and Prometheus URL written in), mode 644"

# --- idempotent ------------------------------------------------------------------------------
snapshot() { find "$1" -type f -printf '%p %T@ %s\n' | sort; find "$1" -type f -exec sha256sum {} + | sort; }
before=$(snapshot "$r1")
out=$(run --root "$r1" --prometheus-url http://prometheus.internal:9090) || fail "second install exited $?"
grep -q '0 file(s) changed' <<<"$out" || fail "second install changed something: $out"
[ "$(grep -c '^unchanged ' <<<"$out")" = 6 ] || fail "second install: $out"
[ "$before" = "$(snapshot "$r1")" ] || fail "the second install touched files"
ok "a second run changes nothing (same bytes and modification times)"

# An edited file is put back; the others are left alone.
echo '# edited' >>"$r1/var/lib/grafana/dashboards/derpkit/netcheck.json"
out=$(run --root "$r1" --prometheus-url http://prometheus.internal:9090) || fail "repair exited $?"
grep -q '1 file(s) changed' <<<"$out" || fail "repair: $out"
same "$src/grafana/netcheck.json" "$r1/var/lib/grafana/dashboards/derpkit/netcheck.json"
ok "an edited installed dashboard is restored, nothing else is rewritten"

# --- other folders, environment variables, --no-datasource ------------------------------------
r2="$work/root2"
out=$(DESTDIR="$r2" PROMETHEUS_RULES_DIR=/srv/prom/rules run --dashboards-dir /opt/grafana/derp \
  --provisioning-dir /srv/grafana/provisioning --no-datasource) || fail "install 2 exited $?: $out"
[ -f "$r2/srv/prom/rules/derpkit-rules.yml" ] || fail "PROMETHEUS_RULES_DIR ignored: $(find "$r2" -type f)"
same "$src/grafana/derp-probe.json" "$r2/opt/grafana/derp/derp-probe.json"
grep -qx '      path: /opt/grafana/derp' "$r2/srv/grafana/provisioning/dashboards/derpkit.yml" ||
  fail "provider path with --dashboards-dir: $(grep path: "$r2/srv/grafana/provisioning/dashboards/derpkit.yml")"
[ ! -e "$r2/srv/grafana/provisioning/datasources" ] || fail "--no-datasource installed a data source"
[ "$(find "$r2" -type f | wc -l)" = 5 ] || fail "want 5 files with --no-datasource, found: $(find "$r2" -type f)"
ok "DESTDIR, PROMETHEUS_RULES_DIR, --dashboards-dir, --provisioning-dir and --no-datasource are honoured"

echo "install-dashboards checks: $passed passed, 0 failed"
