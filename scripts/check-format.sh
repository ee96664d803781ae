#!/usr/bin/env bash
# Every C++ file is formatted with the repo's .clang-format.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(find lib relay tests bench probe stunc netcheck -name '*.h' -o -name '*.cc' 2>/dev/null | sort)
if [ ${#bad[@]} -gt 0 ]; then
  echo "clang-format would change: ${bad[*]}" >&2
  echo "run: make format" >&2
  exit 1
fi
echo "clang-format: all files clean"
