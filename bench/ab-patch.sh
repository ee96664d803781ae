#!/usr/bin/env bash
# Measures an experiment kept as a patch (bench/experiments/*.patch): builds this checkout's
# HEAD with the patch applied in a scratch git worktree, then runs bench/ab-relays.sh with the
# patched build as "new" (its load tools drive both sides) and BUILD_DIR's derp-relay as "old".
# Backs the README's figures for experiments that were measured and not kept.
#
# Usage: bench/ab-patch.sh BUILD_DIR PATCH ROUNDS 'ID-GLOB ...'
#   BUILD_DIR  a Release build of HEAD without the patch ("old")
#   PATCH      a patch against HEAD (git apply)
#   ROUNDS, ID-GLOB  as for bench/ab-relays.sh
# Prints what bench/ab-relays.sh prints: per row, old and new medians and new/old.
set -euo pipefail
[[ $# -eq 4 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
PATCH=$(realpath "$2")
ROUNDS=$3
ROWS=$4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$HERE" rev-parse --show-toplevel)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/derpkit-ab-patch.XXXXXX")
TREE=$WORK/tree
cleanup() {
  git -C "$REPO" worktree remove --force "$TREE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

git -C "$REPO" worktree add --detach --quiet "$TREE" HEAD
git -C "$TREE" apply "$PATCH"
echo "ab-patch.sh: building HEAD + $(basename "$PATCH") in $TREE" >&2
cmake -S "$TREE" -B "$TREE/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DDERPKIT_SHARED_DIR="$(realpath "$REPO/../shared" 2>/dev/null || echo "$REPO/../shared")" \
  >"$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log" >&2; exit 1; }
cmake --build "$TREE/build/release" --target derp-relay derp-load derp-conns stun-load \
  >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }
bash "$HERE/ab-relays.sh" "$TREE/build/release" "$BUILD_DIR/relay/derp-relay" "$ROUNDS" "$ROWS"
