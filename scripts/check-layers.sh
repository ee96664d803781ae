#!/usr/bin/env bash
# Layering check, run by ctest (`layering`, and `layering_self_test` for --self-test).
#
# The pure layers turn bytes into values and back. README.md and style.md §8 promise that they
# never see a socket, a thread or lock, a clock, logging, metrics or the environment, and that
# layers only look down. This script makes that structural.
#
# Pure files: everything under lib/util, lib/derp, lib/stun, lib/http and lib/portmap, and lib/derpmap's
# parser files, i.e. every lib/derpmap file EXCEPT those whose name starts with `source`, `fetch`,
# `localapi` or `load` (the loaders, which do I/O: source.cc, load_url.cc, loaders.h ...). A pure
# file may include only pure headers, and lib/util only lib/util.
# Comments and string literals are blanked before matching, so prose such as "no sockets here" or
# an error message naming time() is not a violation; `#include` lines are kept as written.
#
# Programs (relay, stunc, netcheck, probe) never include each other's headers, and lib/ and
# bench/ include none of them.
#
# Usage: check-layers.sh [--root DIR]   check DIR (default: this repository)
#        check-layers.sh --self-test    run the check against temp trees with known-bad files
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# The checker, in Python 3: `check ROOT` prints every violation under ROOT and exits 1 if there
# is one; `self-test` runs the same check in-process on temp trees, one per rule.
IFS= read -r -d '' checker <<'PY' || true
import os, re, sys, tempfile

PURE_DIRS = ["lib/util", "lib/derp", "lib/stun", "lib/http", "lib/portmap", "lib/derpmap"]
IMPURE_DERPMAP = re.compile(r"^(source|fetch|localapi|load)")
PROGRAMS = ["relay", "stunc", "netcheck", "probe"]

def is_pure(rel):
    if not rel.endswith((".h", ".cc")):
        return False
    folder, name = os.path.split(rel)
    if folder not in PURE_DIRS:
        return False
    return not (folder == "lib/derpmap" and IMPURE_DERPMAP.match(name))

# One token at a time, left to right: an #include's header name (kept), a comment (blanked but
# for its newlines, so line numbers stay), a raw or ordinary string or a character literal
# (emptied). Whatever comes first wins, so "//" inside a string is not a comment.
TOKEN = re.compile(
    r'(?P<include>^[ \t]*#[ \t]*include[ \t]*(?:<[^>\n]*>|"[^"\n]*"))'
    r'|(?P<line>//[^\n]*)'
    r'|(?P<block>/\*.*?\*/)'
    r'|(?P<raw>R"(?P<delim>[^()\s\\"]{0,16})\(.*?\)(?P=delim)")'
    r'|(?P<string>"(?:\\.|[^"\\\n])*")'
    r"|(?P<char>'(?:\\.|[^'\\\n])*')",
    re.M | re.S)

def strip(text):
    def repl(m):
        if m.group("include"):
            return m.group(0)
        if m.group("line"):
            return ""
        newlines = "\n" * m.group(0).count("\n")
        if m.group("block"):
            return newlines
        return '""' + newlines if m.group("raw") or m.group("string") else "' '"
    return TOKEN.sub(repl, text)

INC = r"#\s*include\s*"
RULES = [
    ("sockets", INC + r"<(sys/socket\.h|sys/un\.h|netdb\.h|sys/epoll\.h|poll\.h|sys/select\.h)>"),
    ("sockets", r"\b(socket|socketpair|getaddrinfo|gethostbyname|setsockopt|getsockopt|recvfrom"
                r"|sendto|recvmsg|sendmsg|recvmmsg|sendmmsg)\s*\("),
    ("network or TLS library", INC + r"<(asio|openssl|curl|httplib)"),
    ("threads and locks", INC + r"<(thread|mutex|shared_mutex|atomic|condition_variable|future"
                          r"|semaphore|latch|barrier|stop_token|pthread\.h|stdatomic\.h)>"),
    ("threads and locks", r"\bstd::(j?thread|(recursive_|timed_|shared_)*mutex|lock_guard"
                          r"|unique_lock|shared_lock|scoped_lock|condition_variable|atomic\w*"
                          r"|async|call_once)\b|\bpthread_\w+\s*\(|\bthread_local\b"),
    ("clocks", r"::\s*now\s*\("),
    ("clocks", r"\b(time|clock|clock_gettime|gettimeofday|timespec_get)\s*\("),
    ("logging", INC + r'(<(iostream|syslog\.h)>|"lib/net/log\.h")'),
    ("logging", r"\bstd::(cout|cerr|clog)\b|\b(syslog|perror)\s*\(|\bfprintf\s*\(\s*std(err|out)"
                r"|\bLOG_[A-Z]+\s*\("),
    ("metrics", INC + r"<prometheus/"),
    ("the environment", r"\b(getenv|secure_getenv|setenv|unsetenv|putenv)\s*\(|\benviron\b"),
]
RULES = [(what, re.compile(p)) for what, p in RULES]
QUOTED_INCLUDE = re.compile(INC + r'"([^"]+)"')

def check(root):
    """Returns (violations as 'path:line: what: code', the pure files checked)."""
    def lines_of(rel):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            return strip(f.read()).split("\n")

    def source_files(folders):
        for folder in folders:
            for dirpath, _, names in os.walk(os.path.join(root, folder)):
                for name in sorted(names):
                    if name.endswith((".h", ".cc")):
                        yield os.path.relpath(os.path.join(dirpath, name), root)

    problems = []
    pure_files = sorted(f for f in source_files(PURE_DIRS) if is_pure(f))
    for rel in pure_files:
        for number, code in enumerate(lines_of(rel), 1):
            for what, rule in RULES:
                if rule.search(code):
                    problems.append(f"{rel}:{number}: {what}: {code.strip()}")
            m = QUOTED_INCLUDE.search(code)
            if m and not is_pure(m.group(1)):
                problems.append(f"{rel}:{number}: includes a header outside the pure layers: "
                                f"{code.strip()}")
            elif m and rel.startswith("lib/util/") and not m.group(1).startswith("lib/util/"):
                problems.append(f"{rel}:{number}: lib/util is the bottom layer: {code.strip()}")
    # Programs share code only through lib/.
    for program in PROGRAMS:
        others = ["lib", "bench"] + [p for p in PROGRAMS if p != program]
        for rel in source_files(others):
            for number, code in enumerate(lines_of(rel), 1):
                m = QUOTED_INCLUDE.search(code)
                if m and m.group(1).startswith(program + "/"):
                    problems.append(f"{rel}:{number}: includes another program's header: "
                                    f"{code.strip()}")
    return problems, pure_files

# A tree that must pass: words in comments and strings, clock *types* (callers pass `now`), the
# derpmap loaders' sockets and clocks, lib/net's sockets, a program including lib/ and itself.
CLEAN_TREE = {
    "lib/util/bytes.h": r'''// Pure: no sockets, no threads, no std::mutex, no getenv(), no clock_gettime().
/* A socket( in a block comment,
   std::thread too. */
#pragma once
#include <chrono>
#include <cstdint>
inline const char* kWhy = "socket() failed; time(nullptr) is not ours; std::cerr";
inline const char* kRaw = R"x(getenv("HOME") std::atomic<int>)x";
inline char Quote() { return '"'; }
std::chrono::system_clock::time_point Later(std::chrono::system_clock::time_point now);
''',
    "lib/http/head.cc": r'''#include "lib/http/head.h"  // time(): callers pass now; see socket notes
#include "lib/util/bytes.h"
int ParseTime(const char* s);  // a name ending in "time(" is not time(
int Runtime() { return ParseTime("x") + 1'000'000; }
''',
    "lib/derpmap/derpmap.cc": '#include "lib/derpmap/derpmap.h"\n#include "lib/util/expected.h"\n',
    "lib/derpmap/source.cc": '''#include <sys/socket.h>
#include <chrono>
#include "lib/derpmap/source.h"
int Dial() { auto t = std::chrono::steady_clock::now(); (void)t; return socket(0, 0, 0); }
''',
    "lib/derpmap/fetch_http.cc": '#include <thread>\n#include "lib/net/log.h"\n',
    "lib/derpmap/localapi.cc": "#include <sys/un.h>\n",
    "lib/derpmap/load_url.cc": '#include <httplib.h>\n#include "lib/derpmap/loaders.h"\n',
    "lib/net/stream.cc": "#include <sys/socket.h>\n#include <mutex>\n",
    "relay/main.cc": '#include "relay/server.h"\n#include "lib/net/stream.h"\n',
}

# One bad file per case, added to the clean tree: (path, the offending line).
BAD_LINES = [
    ("lib/util/a.h", "#include <sys/socket.h>"),
    ("lib/util/a.cc", "int f() { return socket(2, 1, 0); }"),
    ("lib/stun/a.cc", "#include <asio.hpp>"),
    ("lib/derp/a.h", "#include <thread>"),
    ("lib/derp/a.h", "#include <mutex>"),
    ("lib/derp/a.h", "#include <atomic>"),
    ("lib/http/a.cc", "std::atomic<int> hits;"),
    ("lib/http/a.cc", "static thread_local int x;"),
    ("lib/http/a.cc", "auto t = std::chrono::steady_clock::now();"),
    ("lib/http/a.cc", "using C = std::chrono::system_clock; auto t = C::now();"),
    ("lib/stun/a.cc", "long t = time(nullptr);"),
    ("lib/stun/a.cc", "timespec ts; int r = clock_gettime(CLOCK_MONOTONIC, &ts);"),
    ("lib/util/a.cc", 'const char* h = getenv("HOME");'),
    ("lib/util/a.cc", 'void f() { std::cerr << "x"; }'),
    ("lib/derp/a.cc", '#include "lib/net/log.h"'),
    ("lib/derp/a.cc", '#include "relay/server.h"'),
    ("lib/util/a.cc", '#include "lib/derp/keys.h"'),
    ("lib/derpmap/derpmap_parse.cc", "#include <sys/socket.h>"),
    ("lib/derpmap/derpmap_parse.cc", '#include "lib/derpmap/source.h"'),
    ("lib/derpmap/json.cc", "auto t = std::chrono::system_clock::now();"),
    ("lib/http/a.cc", "#include <prometheus/counter.h>"),
    ("stunc/main.cc", '#include "netcheck/report.h"'),
    ("lib/net/a.cc", '#include "relay/server.h"'),
]

def write_tree(root, files):
    for rel, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)

def self_test():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean")
        write_tree(clean, CLEAN_TREE)
        problems, _ = check(clean)
        if problems:
            failures.append("the clean tree was rejected:\n  " + "\n  ".join(problems))
        for n, (rel, line) in enumerate(BAD_LINES):
            bad = os.path.join(tmp, f"bad{n}")
            write_tree(bad, {**CLEAN_TREE, rel: "// a file with one violation\n" + line + "\n"})
            problems, _ = check(bad)
            if not problems:
                failures.append(f"not caught in {rel}: {line}")
            elif not all(p.startswith(f"{rel}:2: ") for p in problems):
                failures.append(f"{rel}: {line}: reported as\n  " + "\n  ".join(problems))
    if failures:
        print("layering self-test FAILED:\n" + "\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print(f"layering self-test: the clean tree passes and all {len(BAD_LINES)} bad files are "
          "caught, each at its own line")

if sys.argv[1] == "self-test":
    self_test()
    sys.exit(0)
problems, pure_files = check(sys.argv[2])
if problems:
    print("layering: pure code reaches for I/O, threads, clocks, logging or the environment, "
          "or a layer looks sideways:", file=sys.stderr)
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
folders = sorted({os.path.dirname(f) for f in pure_files})
print(f"layering: {len(pure_files)} pure files in {', '.join(folders)} clean; "
      "no program includes another's headers")
PY

# The script end to end: exit 0 on a clean tree, 1 naming the file on a bad one.
end_to_end() {
  tmp=$(mktemp -d)  # global: the EXIT trap runs after this function has returned
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/clean/lib/util" "$tmp/bad/lib/util"
  echo '// no sockets here' >"$tmp/clean/lib/util/a.h"
  echo '#include <thread>' >"$tmp/bad/lib/util/a.h"
  bash "$0" --root "$tmp/clean" >/dev/null || { echo "self-test FAIL: clean tree: exit $?" >&2; exit 1; }
  local rc=0 out
  out=$(bash "$0" --root "$tmp/bad" 2>&1) || rc=$?
  [ "$rc" = 1 ] || { echo "self-test FAIL: bad tree: exit $rc, want 1" >&2; exit 1; }
  grep -q '^lib/util/a.h:1: threads and locks' <<<"$out" ||
    { echo "self-test FAIL: bad tree reported as: $out" >&2; exit 1; }
  echo "layering self-test: the script exits 0 on a clean tree and 1 naming the file on a bad one"
}

case "${1:-}" in
  --self-test)
    python3 -c "$checker" self-test
    end_to_end
    ;;
  --root) python3 -c "$checker" check "${2:?--root needs a directory}" ;;
  "") python3 -c "$checker" check "$(cd "$here/.." && pwd)" ;;
  *)
    echo "usage: check-layers.sh [--root DIR | --self-test]" >&2
    exit 2
    ;;
esac
