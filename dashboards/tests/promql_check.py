#!/usr/bin/env python3
"""Evaluates every PromQL expression of derpkit's dashboards and rules against a running
Prometheus, and fails unless each returns data. Used by tests/integration/dashboards_test.sh.

What it queries, through /api/v1/query:
  - every target `expr` of every dashboard panel, with Grafana's variables substituted
    ($__rate_interval and $__interval -> 15s, $__range -> 5m, every dashboard variable -> .*);
  - every query variable's `label_values(selector, label)`, as `selector`;
  - every rule Prometheus loaded (GET /api/v1/rules, so these are the rules Prometheus really
    runs): each must be healthy (health "ok", no lastError); a recording rule's expr as it is; an
    alert's expr with `bool` after each comparison, because an alert expression exists to return
    nothing while all is well, and the question here is whether its series and joins exist;
  - every metric name any of those expressions mentions, alone (`count(name)`), so that a name
    hidden behind `or`, `unless` or a fallback cannot dangle either.
Each must answer status "success" with at least one series (a NaN sample counts: a histogram
with no observations in the window is still a series that exists).

Usage: promql_check.py PROMETHEUS_URL DASHBOARD.json...   Exit status 0 when all returned data.
Single-threaded; run once per test.
"""
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

GRAFANA_BUILTINS = {"__rate_interval": "15s", "__interval": "15s", "__range": "5m"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset", "inf", "nan"}


def substitute(expr, variables):
    """Replaces $name and ${name} with Grafana's built-ins or `.*` for dashboard variables."""
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in variables:
            return ".*"
        return m.group(0)  # $1 in label_replace and the like
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers outside strings, label matchers, range
    selectors and grouping clauses that are not functions or keywords."""
    s = strip_strings(expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = []
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        tok = m.group(0)
        before = s[m.start() - 1] if m.start() > 0 else " "
        if before.isdigit() or before == ".":
            continue  # the exponent of a number like 1e3
        if s[m.end():].lstrip().startswith("("):
            continue  # a function
        if tok.lower() in KEYWORDS:
            continue
        names.append(tok)
    return names


def with_bool(expr):
    """Adds `bool` after every comparison operator outside label matchers and strings."""
    out = []
    i = 0
    depth = 0
    quote = None
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\" and i + 1 < len(expr):
                out.append(expr[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in "\"'`":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0:
            for op in ("==", "!=", ">=", "<=", ">", "<"):
                if expr.startswith(op, i):
                    out.append(op)
                    i += len(op)
                    if not re.match(r"\s*bool\b", expr[i:]):
                        out.append(" bool")
                    break
            else:
                out.append(c)
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def dashboard_queries(path):
    """(where, expr) for every panel target and query variable of one dashboard."""
    with open(path) as f:
        d = json.load(f)
    variables = {v["name"] for v in d.get("templating", {}).get("list", [])}
    title = d.get("title", path)
    out = []
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"] if isinstance(v["query"], str) else v["query"].get("query", "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
        if not m:
            raise SystemExit(f"{title}: variable {v['name']}: cannot read query {q!r}")
        out.append((f"{title} / variable {v['name']}", substitute(m.group(1), variables)))
    panels = []
    for p in d.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []) if p.get("type") == "row" else [])
    for p in panels:
        for t in p.get("targets", []):
            out.append((f"{title} / {p.get('title')} / {t.get('refId')}",
                        substitute(t["expr"], variables)))
    return out


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            return json.load(r)

    def query(self, expr):
        """Number of series `expr` returns, or an error string."""
        try:
            body = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e).get("error", str(e))
            except ValueError:
                return str(e)
        except OSError as e:
            return str(e)
        if body.get("status") != "success":
            return body.get("error", "status " + str(body.get("status")))
        result = body["data"]["result"]
        return len(result) if isinstance(result, list) else 1


def main():
    if len(sys.argv) < 3:
        print("usage: promql_check.py PROMETHEUS_URL DASHBOARD.json...", file=sys.stderr)
        return 2
    prom = Prometheus(sys.argv[1])
    checks = []  # (kind, where, expr)
    for path in sys.argv[2:]:
        checks += [("panel", w, e) for w, e in dashboard_queries(path)]
    failures = []
    rules = 0
    for group in prom.get("/api/v1/rules")["data"]["groups"]:
        for r in group["rules"]:
            rules += 1
            where = f"rule {group['name']} / {r['name']}"
            if r.get("health") != "ok" or r.get("lastError"):
                failures.append(f"{where}: health {r.get('health')}: {r.get('lastError', '')}")
            if r["type"] == "alerting":
                checks.append(("alert", where, with_bool(r["query"])))
            else:
                checks.append(("record", where, r["query"]))
    if rules == 0:
        failures.append("Prometheus loaded no rules")
    names = sorted({n for _, _, e in checks for n in metric_names(e)})
    checks += [("metric", f"metric {n}", f"count({n})") for n in names]

    counts = {}
    for kind, where, expr in checks:
        n = prom.query(expr)
        if isinstance(n, int) and n > 0:
            counts[kind] = counts.get(kind, 0) + 1
        else:
            failures.append(f"{where}: {expr}\n    -> {n if isinstance(n, str) else 'no data'}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    total = {k: sum(1 for c in checks if c[0] == k) for k in ("panel", "record", "alert", "metric")}
    print(f"queries with data: {counts.get('panel', 0)}/{total['panel']} dashboard queries, "
          f"{counts.get('record', 0)}/{total['record']} recording rules, "
          f"{counts.get('alert', 0)}/{total['alert']} alert expressions (with bool), "
          f"{counts.get('metric', 0)}/{total['metric']} metric names")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
