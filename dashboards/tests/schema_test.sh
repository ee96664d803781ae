#!/usr/bin/env bash
# ctest dashboards_schema / dashboards_schema_self_test: every dashboard in dashboards/grafana/
# validates against Grafana's published schema (@grafana/schema, pinned in
# dashboards/schema-check/package-lock.json) with tsc --strict, plus derpkit's own dashboard
# rules (dashboards/schema-check/check.mjs says how). The self-test feeds check.mjs deliberately
# broken copies of a dashboard and requires each to be rejected, so the check is known to fail.
# node_modules comes from `npm ci` in scripts/install-deps.sh, never from here: when node or the
# installed package is missing the test is skipped (77), or fails under CI.
# Usage: schema_test.sh check|self-test OUT_DIR
set -euo pipefail
mode=${1:?check or self-test}
out=${2:?output dir for the generated .ts files}
here=$(cd "$(dirname "$0")" && pwd)
check_dir="$here/../schema-check"
dashboards=("$here"/../grafana/*.json)

missing() {
  if [ -z "${CI:-}" ]; then
    echo "SKIP: $1"
    exit 77
  fi
  echo "FAIL: $1 (under CI every tool must be there)" >&2
  exit 1
}
command -v node >/dev/null || missing "node is missing (Debian package nodejs; scripts/install-deps.sh)"
[ -f "$check_dir/node_modules/@grafana/schema/package.json" ] &&
  [ -f "$check_dir/node_modules/typescript/bin/tsc" ] ||
  missing "$check_dir/node_modules is not installed: run scripts/install-deps.sh (it runs npm ci there)"

# The installed package must be the pinned one (an old node_modules would check against an old
# schema without saying so).
want=$(node -e 'const l = require(process.argv[1]); console.log(l.packages["node_modules/@grafana/schema"].version)' \
  "$check_dir/package-lock.json")
have=$(node -e 'console.log(require(process.argv[1]).version)' "$check_dir/node_modules/@grafana/schema/package.json")
if [ "$want" != "$have" ]; then
  echo "FAIL: node_modules has @grafana/schema $have, package-lock.json pins $want: run scripts/install-deps.sh" >&2
  exit 1
fi

case $mode in
  check) exec timeout 300 node "$check_dir/check.mjs" --out "$out" "${dashboards[@]}" ;;
  self-test)
    # The relay dashboard has every panel kind the faults need (timeseries with options, stat).
    exec timeout 300 node "$check_dir/check.mjs" --out "$out" --self-test "$here/../grafana/derp-relay.json" ;;
  *) echo "usage: schema_test.sh check|self-test OUT_DIR" >&2; exit 2 ;;
esac
