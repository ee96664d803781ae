#!/usr/bin/env bash
# Runs every libFuzzer target of a FUZZ build for a fixed time each, growing a scratch copy of the
# checked-in corpus. Usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?build dir}
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$build"/tests/fuzz/*_fuzz; do
  [ -x "$bin" ] || continue
  found=1
  name=$(basename "$bin" _fuzz)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -r "$root/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  # Crashing inputs land in BUILD/fuzz-artifacts/<name>-crash-<sha1>: add them to the corpus
  # once fixed, so every later test run replays them.
  mkdir -p "$build/fuzz-artifacts"
  "$bin" -max_total_time="$seconds" -max_len=70000 -artifact_prefix="$build/fuzz-artifacts/$name-" \
    "$work" "$root/tests/fuzz/corpus/$name" 2>&1 | tail -n 3
  rm -rf "$work"
done
[ "$found" = 1 ] || { echo "fuzz: no targets in $build" >&2; exit 1; }
