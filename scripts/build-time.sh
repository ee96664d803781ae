#!/usr/bin/env bash
# Measures what CI pays to build: a clean configure + build of each preset (release, asan) into
# a throwaway build folder, printing wall, user and system seconds per preset. The figures in
# README ("The two commands") come from this script; run it on an idle machine.
# Usage: scripts/build-time.sh [JOBS]   (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-$(nproc)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "build-time: $(nproc) cores, -j$jobs, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for preset in release asan; do
  dir="$out/$preset"
  # The preset's settings, in a build folder of our own so that build/ is left alone.
  cmake --preset "$preset" -B "$dir" >/dev/null
  /usr/bin/time -f "$preset: %e s wall, %U s user, %S s sys" \
    cmake --build "$dir" -j "$jobs" >"$out/$preset.log" 2>&1 ||
    { tail -n 20 "$out/$preset.log" >&2; exit 1; }
  tail -n 1 "$out/$preset.log"
done
