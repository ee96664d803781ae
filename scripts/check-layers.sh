#!/usr/bin/env bash
# The pure layers (lib/util, lib/derp, lib/stun, lib/http) turn bytes into values and back: they
# must not touch sockets, TLS, metrics, threads or clocks. This check makes that structural.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pure=(lib/util lib/derp lib/stun lib/http)
pattern='#include <(asio|openssl|prometheus|thread)|_clock::now\(\)|getenv\('
bad=$(cd "$root" && grep -nE "$pattern" -r "${pure[@]}" --include='*.h' --include='*.cc' || true)
if [ -n "$bad" ]; then
  echo "layering: pure code reaches for I/O, clocks or the environment:" >&2
  echo "$bad" >&2
  exit 1
fi
# Binaries never depend on each other: nothing outside relay/ includes relay/ headers, except
# the relay's own tests and the shared test support.
cross=$(cd "$root" && grep -nE '#include "relay/' -r lib probe stunc netcheck bench 2>/dev/null || true)
if [ -n "$cross" ]; then
  echo "layering: a library or another program includes relay/ headers:" >&2
  echo "$cross" >&2
  exit 1
fi
echo "layering: ${#pure[@]} pure folders clean; no program includes another's headers"
