#!/usr/bin/env bash
# Compares two derp-relay binaries on the same rows of the benchmark matrix, run alternately
# (old, new, old, new, ...) so that both see the same machine, and prints each row's median of
# relayed work per relay CPU-second (STUN: answers per CPU-second; latency rows: p99). Backs the
# before/after figures in the README.
#
# Usage: bench/ab-relays.sh BUILD_DIR OLD ROUNDS 'ID-GLOB ...'
#   BUILD_DIR  a Release build (its derp-relay is "new"; its load tools drive both)
#   OLD        the derp-relay binary to compare against (e.g. an older commit's build), or an
#              older build directory: then BUILD_DIR's relay serves both sides and the old
#              side's load tools come from OLD (compares load generators, not relays)
#   ROUNDS     runs of each binary (5 is a fair start; each row moves ±10–20% on 2 cores)
#   ID-GLOB    rows of bench/targets.json, as for run-benchmarks.sh --only
# Prints: one line per row: the old and new medians, their ratio, and every run's figure.
set -euo pipefail
[[ $# -eq 4 ]] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
if [[ -d $2 ]]; then
  OLD_BUILD=$(cd "$2" && pwd)
  OLD_RELAY=$BUILD_DIR/relay/derp-relay
else
  OLD_BUILD=$BUILD_DIR
  OLD_RELAY=$(realpath "$2")
fi
ROUNDS=$3
ROWS=$4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 50 ]] ||
  { echo "ab-relays.sh: ROUNDS wants 1 to 50" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-ab.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for round in $(seq "$ROUNDS"); do
  for side in old new; do
    build=$BUILD_DIR
    relay=$BUILD_DIR/relay/derp-relay
    if [[ $side == old ]]; then
      build=$OLD_BUILD
      relay=$OLD_RELAY
    fi
    bash "$HERE/run-benchmarks.sh" "$build" --relay "$relay" --only "$ROWS" \
      --out "$WORK/$side-$round.md" --results "$WORK/$side-$round" >/dev/null \
      2>"$WORK/$side-$round.log" ||
      { tail -5 "$WORK/$side-$round.log" >&2; echo "ab-relays.sh: $side round $round failed" >&2; exit 1; }
  done
done

python3 - "$WORK" "$ROUNDS" <<'PY'
import glob, json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def figure(d):
    if d.get("mbit_per_relay_cpu_second") is not None:
        return d["mbit_per_relay_cpu_second"], "Mbit per relay CPU-s"
    if d.get("answers_per_relay_cpu_second") is not None:
        return d["answers_per_relay_cpu_second"], "answers per CPU-s"
    if (d.get("latency") or {}).get("p99_us") is not None:
        return d["latency"]["p99_us"], "us p99 latency (lower is better)"
    return None, ""
runs = {}
for side in ("old", "new"):
    for r in range(1, rounds + 1):
        for path in glob.glob(f"{work}/{side}-{r}/*.json"):
            row = os.path.basename(path)[:-5]
            value, unit = figure(json.load(open(path)))
            if value is not None:
                runs.setdefault(row, {"old": [], "new": [], "unit": unit})[side].append(value)
if not runs:
    sys.exit("ab-relays.sh: no row measured (check the globs against bench/targets.json)")
for row, r in sorted(runs.items()):
    old, new = statistics.median(r["old"]), statistics.median(r["new"])
    print(f"{row}: old {old:,.0f}, new {new:,.0f} {r['unit']} (medians; new/old {new / old:.1%})")
    print(f"  old runs: {', '.join(f'{v:,.0f}' for v in r['old'])}")
    print(f"  new runs: {', '.join(f'{v:,.0f}' for v in r['new'])}")
PY
