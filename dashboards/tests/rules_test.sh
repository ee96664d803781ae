#!/usr/bin/env bash
# ctest dashboards_rules: derpkit's Prometheus rules pass `promtool check rules`, their unit tests
# pass `promtool test rules` (at the real `for:` durations), and every alert
#   - carries a severity label (critical, warning or info) and summary, description and runbook
#     annotations, and
#   - is unit-tested both firing (an alert_rule_test whose exp_alerts is a list) and not firing
#     (one whose exp_alerts is []).
# The unit tests write each alert_rule_test as either `alertname: X` followed by `exp_alerts: []`
# or `exp_alerts:` and a list, or as one flow-style line; the coverage check reads that layout.
# Missing promtool: skipped (77) on a developer's machine, a failure under CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rules="$here/../prometheus/derpkit-rules.yml"
tests_dir="$here/../prometheus/tests"

if ! command -v promtool >/dev/null; then
  if [ -z "${CI:-}" ]; then
    echo "SKIP: promtool is missing (Debian package prometheus; scripts/install-deps.sh installs it)"
    exit 77
  fi
  echo "FAIL: promtool is missing under CI: run scripts/install-deps.sh" >&2
  exit 1
fi

failed=0
passed=0
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
ok() { echo "ok: $*"; passed=$((passed + 1)); }

if out=$(timeout 60 promtool check rules "$rules" 2>&1); then
  ok "promtool check rules: $(grep -o '[0-9]* rules found' <<<"$out")"
else
  fail "promtool check rules: $out"
fi

test_files=("$tests_dir"/*.yml)
if out=$(cd "$tests_dir" && timeout 120 promtool test rules "${test_files[@]##*/}" 2>&1); then
  ok "promtool test rules: ${#test_files[@]} files pass"
else
  fail "promtool test rules: $out"
fi

# Per alert: its block of the rules file (from "- alert:" to the next "- alert:" or "- record:"
# or group) must have severity, summary, description and runbook.
mapfile -t alerts < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules")
[ "${#alerts[@]}" -gt 0 ] || fail "no alert found in $rules"
block_of() {
  awk -v name="$1" '
    /^ *- (alert|record):/ { inside = ($0 ~ ("- alert: *" name "$")) ; if (inside) { print; next } }
    /^  - name:/ { inside = 0 }
    inside { print }' "$rules"
}
for a in "${alerts[@]}"; do
  block=$(block_of "$a")
  grep -Eq '^ +severity: (critical|warning|info)$' <<<"$block" ||
    fail "$a: no severity label critical, warning or info"
  for key in summary description runbook; do
    grep -Eq "^ +$key:" <<<"$block" || fail "$a: no $key annotation"
  done
done

# Per alert: both a firing and a not-firing unit test.
coverage=$(awk '
  function record(name, firing) { if (firing) fire[name] = 1; else quiet[name] = 1 }
  /alertname:/ {
    line = $0
    sub(/.*alertname: */, "", line); sub(/[ ,}].*/, "", line)
    current = line
    if ($0 ~ /exp_alerts: *\[\]/) { record(current, 0); current = "" }
    else if ($0 ~ /exp_alerts:/) { record(current, 1); current = "" }
    next
  }
  /exp_alerts:/ && current != "" {
    record(current, $0 !~ /exp_alerts: *\[\]/)
    current = ""
  }
  END {
    for (n in fire) print n, "firing"
    for (n in quiet) print n, "quiet"
  }' "${test_files[@]}")
for a in "${alerts[@]}"; do
  grep -qx "$a firing" <<<"$coverage" || fail "$a: no unit test expects it firing"
  grep -qx "$a quiet" <<<"$coverage" || fail "$a: no unit test expects it not firing"
done
# And no test names an alert that does not exist (a renamed alert's tests would pass vacuously).
while read -r name _; do
  # grep reads all its input (no -q): with pipefail, a grep that quits at its first match can
  # leave printf writing into a closed pipe, and its SIGPIPE would fail the check at random.
  printf '%s\n' "${alerts[@]}" | grep -x "$name" >/dev/null || fail "unit tests name unknown alert $name"
done <<<"$coverage"
[ "$failed" -gt 0 ] || ok "${#alerts[@]} alerts: each has severity, summary, description, runbook and is tested firing and not firing"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
