#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the results directory of bench/run-benchmarks.sh, and prints the
summary (every row of issue #11's table, its target and whether it is met) to stdout.

Input (environment): RESULTS (a directory of <id>.json/.rc/.cmd/.err/.relay files and
relays.tsv), OUT, TARGETS (bench/targets.json), WORK (the temporary directory, made symbolic in
commands), and the machine facts the script collected (CPU_MODEL, NPROC, KERNEL, MEM, NOFILE,
LOADAVG, DATE, COMMIT, BUILD_TYPE, SANITIZE, SECONDS_PER_POINT, ELAPSED_SECONDS).
"""
import fnmatch
import json
import os
import sys

RESULTS = os.environ["RESULTS"]
ENV = os.environ

# --workers 2 against --workers 1 on the same row: the loss may be at most this many percentage
# points higher, and the relayed work per relay CPU-second at least this fraction of w1's (the
# 10% is run-to-run noise on a quiet machine; see the section's text for a loaded one).
W2_LOSS_ALLOWANCE_POINTS = 0.1
W2_EFFICIENCY_FLOOR = 0.9


def load_targets():
    try:
        with open(ENV["TARGETS"]) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f"report.py: cannot read targets: {e}", file=sys.stderr)
        return {}, {}
    named = data.get("_checks", {})
    return {k: v for k, v in data.items() if not k.startswith("_")}, named


TARGETS, NAMED_CHECKS = load_targets()
# Set when a row without a threshold was shown, so that its footnote is printed.
SHOWN_UNSET = []


def target_for(row_id):
    if row_id in TARGETS:
        return TARGETS[row_id]
    for pattern, t in TARGETS.items():
        if fnmatch.fnmatchcase(row_id, pattern):
            return t
    return None


def checks_of(target):
    """The target's checks as dicts. The old one-metric form ({metric, min, max, text}) is one
    check."""
    if "checks" not in target:
        if target.get("min") is None and target.get("max") is None:
            return []
        return [{k: target.get(k) for k in ("metric", "min", "max", "text")}]
    out = []
    for c in target["checks"]:
        if isinstance(c, str):
            if c not in NAMED_CHECKS:
                print(f"report.py: targets.json names an unknown check {c!r}", file=sys.stderr)
                continue
            c = dict(NAMED_CHECKS[c], name=NAMED_CHECKS[c].get("name", c))
        out.append(c)
    return out


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


class Row:
    def __init__(self, row_id):
        self.id = row_id
        self.rc = read(f"{RESULTS}/{row_id}.rc")
        self.cmd = read(f"{RESULTS}/{row_id}.cmd")
        self.err = read(f"{RESULTS}/{row_id}.err") or ""
        self.relay = read(f"{RESULTS}/{row_id}.relay")
        self.data = None
        text = read(f"{RESULTS}/{row_id}.json")
        if text:
            try:
                self.data = json.loads(text)
            except ValueError:
                self.data = None
        self.derived = {}
        if self.data and self.data.get("tool") == "derp-conns":
            self.derived["file_limit_allows"] = file_limit_allows(self.data)

    @property
    def ran(self):
        return self.rc is not None

    def get(self, *path):
        if len(path) == 1 and path[0] in self.derived:
            return self.derived[path[0]]
        d = self.data
        for p in path:
            if not isinstance(d, dict) or d.get(p) is None:
                return None
            d = d[p]
        return d

    def metric(self, name):
        if name is None:
            return None
        return self.get(*name.split("."))

    def failure(self):
        """A short reason when the row has no usable figures, else None."""
        if self.data is None:
            last = self.err.splitlines()[-1] if self.err else "no output"
            return f"failed (exit {self.rc}): {last}"
        return None


def file_limit_allows(d):
    """How many idle connections the open-file limits let derp-conns hold: the tighter of its
    own (its limit less the 50 descriptors it keeps for itself; what it attempted) and the
    relay's (its limit less the descriptors it had open besides the connections)."""
    own = d.get("attempted_target")
    limit, files, est = (d.get("relay_open_file_limit"), d.get("relay_open_files_after"),
                         d.get("established"))
    relay = None
    if None not in (limit, files, est):
        relay = limit - (files - est)
    candidates = [v for v in (own, relay) if v is not None]
    return min(candidates) if candidates else None


def check_holds(row, c):
    """True or False, or None when the row lacks the metric."""
    value = row.metric(c.get("metric"))
    if value is None:
        return None
    if c.get("of"):
        base = row.metric(c["of"])
        if not base:
            return None
        value = value / base
    ok = True
    if c.get("min") is not None:
        ok = ok and value >= c["min"]
    if c.get("max") is not None:
        ok = ok and value <= c["max"]
    if c.get("lt") is not None:
        ok = ok and value < c["lt"]
    if c.get("gt") is not None:
        ok = ok and value > c["gt"]
    return ok


def judge(row):
    """Returns (target text, met) for the row from targets.json."""
    t = target_for(row.id)
    if not t:
        return "—", "—"
    checks = checks_of(t)
    note = t.get("note")
    if not checks:
        SHOWN_UNSET.append(row.id)
        return (t.get("text") or "not set") + " ¹", "—"
    text = "; ".join(c.get("text") or c.get("metric") for c in checks)
    if note:
        text += f" ({note})"
    failed, unknown = [], []
    for c in checks:
        name = c.get("name") or c.get("text") or c.get("metric")
        ok = check_holds(row, c)
        if ok is None:
            unknown.append(name)
        elif not ok:
            failed.append(name)
    if failed:
        return text, "**no**: " + ", ".join(failed)
    if unknown:
        return text, "n/a: no " + ", ".join(unknown)
    return text, "yes"


def fmt(v, digits=0, suffix=""):
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}{suffix}"
    return str(v)


def cpu_percent(row):
    cpu, window = row.get("relay_cpu_seconds"), row.get("window_seconds")
    if cpu is None or not window:
        return None
    return cpu / window * 100


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def relay_desc(row):
    if row.data and row.get("tool") == "forward-floor":
        return "none (forward-floor)"
    return ("TLS" if row.get("tls") else "plain") if row.data else "?"


def relay_workers():
    """Relay id -> its --workers, from relays.tsv."""
    out = {}
    for line in (read(f"{RESULTS}/relays.tsv") or "").splitlines():
        fields = line.split("\t")
        if len(fields) >= 3:
            out[fields[0]] = fields[2]
    return out


def workers_of(row):
    return relay_workers().get(row.relay, "?")


def section_rows(ids, make_cells, header):
    rows = []
    for row_id in ids:
        row = Row(row_id)
        if not row.ran:
            continue
        reason = row.failure()
        if reason:
            rows.append([f"`{row.id}`", reason] + [""] * (len(header) - 2))
            continue
        target, met = judge(row)
        rows.append([f"`{row.id}`"] + make_cells(row) + [target, met])
    return rows


def ran_ids():
    return (read(f"{RESULTS}/order") or "").split()


# Issue #11's table, row by row: the bench rows that measure each.
ISSUE_ROWS = [
    ("bursty senders, 10 pairs at 1 / 2 / 3 Gbit/s, plain", ["bursty-*"]),
    ("1 pair at 1 Gbit/s, plain and TLS", ["pairs-1-*"]),
    ("a burst of 200 × 600 B each way between two WebSocket clients, ws and wss", ["wsburst-*"]),
    ("100 pairs at 1 Gbit/s, plain and TLS", ["pairs-100-*"]),
    ("plain at 3 Gbit/s", ["tput-plain-*-3000"]),
    ("TLS at 2 Gbit/s", ["tput-tls-*-2000"]),
    ("TLS, one TLS record per frame, 10 pairs at 0.5 / 1 / 2 Gbit/s", ["tlsrec-*"]),
    ("latency p99, TLS, idle / beside 1 Gbit/s", ["latency-tls-*"]),
    ("RSS per idle connection, plain / TLS", ["conns-plain-*", "conns-tls-1000", "conns-tls-10000"]),
    ("idle TLS connections held", ["conns-tls-max"]),
    ("STUN answers per responder CPU-second", ["stun*"]),
]


def summary_rows(w2_verdicts):
    ids = ran_ids()
    out = []
    for title, globs in ISSUE_ROWS:
        cells = []
        for row_id in ids:
            if not any(fnmatch.fnmatchcase(row_id, g) for g in globs):
                continue
            row = Row(row_id)
            met = "failed" if row.failure() else judge(row)[1]
            cells.append(f"`{row_id}` {met}")
        if cells:
            out.append([title, "<br>".join(cells)])
    if w2_verdicts:
        out.append(["`--workers 2` never worse than `--workers 1`",
                    "<br>".join(f"`{a}` → `{b}` {met}" for a, b, met in w2_verdicts)])
    return out


def efficiency(row):
    """(label, value): the row's relayed work per relay CPU-second."""
    for key, label in (("mbit_per_relay_cpu_second", "Mbit"),
                       ("answers_per_relay_cpu_second", "answers")):
        if row.get(key) is not None:
            return label, row.get(key)
    return None, None


def w2_pairs():
    """(w1 id, w2 id) for every row that ran with both --workers 1 and --workers 2."""
    ids = ran_ids()
    out = []
    for w2 in ids:
        if "-w2" in w2:
            w1 = w2.replace("-w2", "-w1")
            candidates = [w1]
        elif w2 == "stun-w2":
            candidates = ["stun-w1", "stun"]
        else:
            continue
        for w1 in candidates:
            # The relays' --workers decide, not the ids alone (`stun` ran with --workers 2).
            if w1 in ids and workers_of(Row(w1)) == "1" and workers_of(Row(w2)) == "2":
                out.append((w1, w2))
                break
    return out


def w2_section():
    rows, verdicts = [], []
    for a_id, b_id in w2_pairs():
        a, b = Row(a_id), Row(b_id)
        if a.failure() or b.failure():
            rows.append([f"`{a_id}` → `{b_id}`", "failed", "", "", "", "", "", "n/a"])
            verdicts.append((a_id, b_id, "n/a"))
            continue
        la, lb = a.get("loss_percent"), b.get("loss_percent")
        unit, ea = efficiency(a)
        _, eb = efficiency(b)
        problems = []
        if la is not None and lb is not None and lb > la + W2_LOSS_ALLOWANCE_POINTS:
            problems.append("loss")
        ratio = eb / ea if ea and eb is not None else None
        if ratio is not None and ratio < W2_EFFICIENCY_FLOOR:
            problems.append(f"{unit}/CPU-s")
        if ratio is None and (la is None or lb is None):
            met = "n/a"
        else:
            met = "**no**: " + ", ".join(problems) if problems else "yes"
        verdicts.append((a_id, b_id, met))
        rows.append([f"`{a_id}` → `{b_id}`", fmt(la, 3), fmt(lb, 3),
                     f"{fmt(ea)} {unit or ''}".strip(), f"{fmt(eb)} {unit or ''}".strip(),
                     fmt(ratio * 100 if ratio is not None else None, 0, "%"), met])
    return rows, verdicts


def million_line():
    """The README's line: relay memory for 1,000,000 idle TLS connections, extrapolated."""
    for row_id in ("conns-tls-max", "conns-tls-10000"):
        row = Row(row_id)
        if not row.ran or row.failure():
            continue
        per = row.get("relay_rss_per_connection_bytes")
        est = row.get("established")
        if per is None or not est:
            continue
        total = per * 1_000_000
        return (f"**1,000,000 idle TLS connections ≈ {total / 2**30:,.1f} GiB of relay memory** "
                f"(extrapolated: {per:,.0f} B of relay RSS per connection, measured over "
                f"{est:,} idle TLS connections in `{row_id}`, × 1,000,000; RSS only: the "
                f"kernel's socket memory is not in it, and the relay needs `ulimit -n` above "
                f"1,000,000).")
    return None


def compress_list(values):
    """[0, 0, 0, 3, 0] -> '0 ×3, 3, 0'."""
    out, i = [], 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        out.append(f"{values[i]} ×{j - i}" if j - i > 1 else str(values[i]))
        i = j
    return ", ".join(out)


def main():
    out = []
    seconds = ENV.get("SECONDS_PER_POINT", "5")
    build = ENV.get("BUILD_TYPE") or "unknown"
    if ENV.get("SANITIZE") not in (None, "", "off"):
        build += f", SANITIZE={ENV['SANITIZE']} (figures are not representative)"
    elapsed = ENV.get("ELAPSED_SECONDS")
    out.append("# Benchmarks\n")
    out.append(
        "Written by `make bench` (`bench/run-benchmarks.sh`): the load generators in `bench/` "
        "against a local `derp-relay` on 127.0.0.1. Do not edit by hand; rerun it.\n")
    out.append("## Machine\n")
    machine = [
        ["Date", ENV.get("DATE", "")],
        ["CPU", f"{ENV.get('CPU_MODEL', '?')} ({ENV.get('NPROC', '?')} CPUs)"],
        ["Memory", ENV.get("MEM", "?")],
        ["Kernel", ENV.get("KERNEL", "?")],
        ["Open files (this shell)", ENV.get("NOFILE", "?")],
        ["Load average before the run", ENV.get("LOADAVG", "?")],
        ["Commit", ENV.get("COMMIT", "?")],
        ["Build", build],
        ["Window per point", f"{seconds} s after 1 s warm-up, 500 ms drain"],
    ]
    if elapsed:
        machine.append(["Time for the whole run", f"{int(elapsed) // 60} min {int(elapsed) % 60} s"])
    out.append(table(["", ""], machine))
    out.append("")
    out.append(
        "How to read this. The relay and the load generator share the machine's cores, so Mbit/s "
        "is capped by whichever needs the CPU more; **Mbit relayed per relay CPU-second** "
        "(delivered payload bits / relay CPU time over the window) is the figure that stays fair. "
        "Rates count DERP packet payload bits. *Delivered* is payload read by receivers during the "
        "window; *loss* is packets stamped inside the window that had not arrived 500 ms after it. "
        "*Gen. busy* is the load generator's CPU time over the CPU time its threads could have had "
        "(one CPU per thread, at most all CPUs): near 100% it may be the bottleneck itself. A row "
        "meets its target only when every check in the Target column holds; *Met* names the "
        "checks that fail.\n")

    w2_rows, w2_verdicts = w2_section()
    out.append("## Summary: issue #11's rows\n")
    summary = summary_rows(w2_verdicts)
    out.append(table(["Issue #11 row", "Bench rows: met?"], summary))
    out.append("")

    modes = ["plain", "tls"]
    rates = ["1000", "2000", "3000", "unpaced"]

    def tput_cells(row):
        offered = row.get("offered_mbps")
        return [relay_desc(row), workers_of(row),
                fmt(offered) if offered else "unpaced", fmt(row.get("sent_mbps")),
                fmt(row.get("delivered_mbps")), fmt(row.get("loss_percent"), 3),
                fmt(cpu_percent(row), 0, "%"), fmt(row.get("mbit_per_relay_cpu_second")),
                fmt((row.get("loadgen_busy_fraction") or 0) * 100, 0, "%")]

    out.append("## Throughput: 10 pairs × 1400 B, paced senders\n")
    ids = [f"tput-{m}-w{w}-{r}" for m in modes for w in ("1", "2") for r in rates]
    header = ["Row", "Relay", "Workers", "Offered Mbit/s", "Sent Mbit/s", "Delivered Mbit/s",
              "Loss %", "Relay CPU (of one core)", "Mbit per relay CPU-s", "Gen. busy", "Target",
              "Met"]
    out.append(table(header, section_rows(ids, tput_cells, header)))
    out.append("")

    def bursty_cells(row):
        return [relay_desc(row), workers_of(row), fmt(row.get("offered_mbps")),
                fmt(row.get("sent_mbps")), fmt(row.get("delivered_mbps")),
                fmt(row.get("loss_percent"), 3), fmt(cpu_percent(row), 0, "%"),
                fmt(row.get("mbit_per_relay_cpu_second")),
                fmt(row.get("write_calls_per_frame"), 2),
                fmt((row.get("loadgen_busy_fraction") or 0) * 100, 0, "%")]

    out.append("## Bursty senders: 10 pairs × 1400 B, one blocking write per frame\n")
    out.append(
        "`derp-load --sender bursty`: each sender is a thread on a blocking socket that sleeps "
        "~1 ms (nanosleep), wakes, writes every frame due since with one `write()` each, and "
        "sleeps again, as a simple C load generator does; receivers read as fast as they can.\n")
    ids = [f"bursty-plain-w{w}-{r}" for w in ("1", "2") for r in ("1000", "2000", "3000")]
    header = ["Row", "Relay", "Workers", "Offered Mbit/s", "Sent Mbit/s", "Delivered Mbit/s",
              "Loss %", "Relay CPU (of one core)", "Mbit per relay CPU-s", "Writes per frame",
              "Gen. busy", "Target", "Met"]
    out.append(table(header, section_rows(ids, bursty_cells, header)))
    out.append("")

    def tlsrec_cells(row):
        per = row.get("mbit_per_relay_cpu_second")
        return [workers_of(row), fmt(row.get("offered_mbps")), fmt(row.get("sent_mbps")),
                fmt(row.get("delivered_mbps")), fmt(row.get("loss_percent"), 3),
                fmt(cpu_percent(row), 0, "%"), fmt(per / 1000 if per is not None else None, 2),
                fmt((row.get("loadgen_busy_fraction") or 0) * 100, 0, "%")]

    out.append("## TLS, one TLS record per frame: 10 pairs × 1400 B\n")
    out.append(
        "`derp-load --tls-record-per-frame`: every DERP frame is its own `SSL_write`, so its own "
        "TLS record and its own socket write, as Tailscale's Go client writes (a `bufio.Writer` "
        "flushed after every packet). derper's reading from issue #11: ~0.6 / 0.9 / 1.2 Gbit per "
        "relay CPU-second at 0.5 / 1 / 2 Gbit/s; the targets are 3× that.\n")
    ids = [f"tlsrec-w{w}-{r}" for w in ("1", "2") for r in ("500", "1000", "2000")]
    header = ["Row", "Workers", "Offered Mbit/s", "Sent Mbit/s", "Delivered Mbit/s", "Loss %",
              "Relay CPU (of one core)", "Gbit per relay CPU-s", "Gen. busy", "Target", "Met"]
    out.append(table(header, section_rows(ids, tlsrec_cells, header)))
    out.append("")

    def tlsrec_target_gbit(rate):
        t = target_for(f"tlsrec-w1-{rate}")
        mins = [c.get("min") for c in (checks_of(t) if t else [])
                if c.get("metric") == "mbit_per_relay_cpu_second"]
        return mins[0] / 1000 if mins else None

    def floor_cells(row):
        rate = row.id.rsplit("-", 1)[1]
        per = row.get("mbit_per_forwarder_cpu_second")
        cpu, window = row.get("forwarder_cpu_seconds"), row.get("window_seconds")
        relay = Row(f"tlsrec-w1-{rate}")
        relay_per = relay.get("mbit_per_relay_cpu_second") if relay.ran else None
        share = relay_per / per * 100 if relay_per and per else None
        return [row.get("loop"), fmt(row.get("offered_mbps")), fmt(row.get("delivered_mbps")),
                fmt(cpu / window * 100 if cpu is not None and window else None, 0, "%"),
                fmt(per / 1000 if per is not None else None, 2),
                fmt(relay_per / 1000 if relay_per is not None else None, 2),
                fmt(share, 0, "%"), fmt(tlsrec_target_gbit(rate), 1)]

    out.append("### The kernel's floor for this shape: `forward-floor`\n")
    out.append(
        "`forward-floor` (bench/forward_floor.cc) sends the same shape over loopback TCP (10 "
        "pairs, each message its own `write()` of a TLS row's wire size, 1,459 B for 1,400 B of "
        "payload, paced every 1 ms) through a forwarder thread that reads each inbound socket "
        "and writes what it read to the pair's outbound socket: no DERP, no TLS, no routing. Its "
        "Gbit per forwarder CPU-second is what the kernel alone charges for this traffic, so no "
        "relay row of the shape can beat it; `epoll` forwards as the relay does, `io_uring` with "
        "multishot receives into a provided-buffer ring. *tlsrec-w1* is the relay's row above at "
        "the same rate.\n")
    ids = [f"floor-{l}-{r}" for l in ("epoll", "io_uring") for r in ("500", "1000", "2000")]
    header = ["Row", "Forwarder", "Offered Mbit/s", "Delivered Mbit/s",
              "Forwarder CPU (of one core)", "Gbit per forwarder CPU-s", "tlsrec-w1 Gbit/CPU-s",
              "tlsrec-w1 / floor", "tlsrec target Gbit/CPU-s", "Target", "Met"]
    out.append(table(header, section_rows(ids, floor_cells, header)))
    out.append("")

    def pairs_cells(row):
        return [relay_desc(row), fmt(row.get("pairs")), fmt(row.get("offered_mbps")),
                fmt(row.get("delivered_mbps")), fmt(row.get("loss_percent"), 3),
                fmt(cpu_percent(row), 0, "%"), fmt(row.get("mbit_per_relay_cpu_second"))]

    out.append("## Pair count: 1 and 100 pairs × 1400 B at 1 Gbit/s (`--workers 1`)\n")
    ids = [f"pairs-{p}-{m}-w1" for m in modes for p in ("1", "100")]
    header = ["Row", "Relay", "Pairs", "Offered Mbit/s", "Delivered Mbit/s", "Loss %",
              "Relay CPU (of one core)", "Mbit per relay CPU-s", "Target", "Met"]
    out.append(table(header, section_rows(ids, pairs_cells, header)))
    out.append("")

    def small_cells(row):
        return [relay_desc(row), fmt(row.get("delivered_packets_per_second")),
                fmt(row.get("delivered_mbps"), 1), fmt(row.get("loss_percent"), 3),
                fmt(cpu_percent(row), 0, "%"), fmt(row.get("packets_per_relay_cpu_second"))]

    out.append("## Small packets: 10 pairs × 64 B, unpaced (`--workers 1`)\n")
    ids = [f"small64-{m}-w1" for m in modes]
    header = ["Row", "Relay", "Delivered packets/s", "Delivered Mbit/s", "Loss %",
              "Relay CPU (of one core)", "Packets per relay CPU-s", "Target", "Met"]
    out.append(table(header, section_rows(ids, small_cells, header)))
    out.append("")

    def latency_cells(row):
        bg = row.get("background", "delivered_mbps")
        load = "idle" if row.get("background") is None else f"{fmt(bg)} Mbit/s delivered beside"
        answered = row.get("latency", "answered")
        sent = row.get("latency", "sent")
        return [relay_desc(row), load, f"{fmt(answered)} of {fmt(sent)}",
                fmt(row.get("latency", "p50_us")), fmt(row.get("latency", "p90_us")),
                fmt(row.get("latency", "p99_us")), fmt(row.get("latency", "p999_us"))]

    out.append("## Latency: round trips of 64-byte packets, one every 1 ms (`--workers 1`)\n")
    out.append(
        "`floor-latency-idle` runs no relay: `forward-floor --mode latency` sends the same pings "
        "(64 B of payload in a TLS row's 123 B) through a bare epoll forwarder and back, with both "
        "ends on one thread as in derp-load, so a round trip is the same four wake-ups. Its "
        "percentiles are this machine's floor for the latency rows.\n")
    ids = [f"latency-{m}-{l}" for m in modes for l in ("idle", "1000")] + ["floor-latency-idle"]
    header = ["Row", "Relay", "Load", "Answered", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs",
              "Target", "Met"]
    out.append(table(header, section_rows(ids, latency_cells, header)))
    out.append("")

    def ws_cells(row):
        per_try = row.get("sent_per_try")
        lost = row.get("lost_per_try") or []
        complete = row.get("burst_complete_ms") or {}
        return ["wss (TLS)" if row.get("tls") else "ws (plain)",
                f"{fmt(row.get('tries'))} of {fmt(row.get('tries_requested'))}",
                compress_list(lost) if lost else "—",
                f"{fmt(row.get('worst_try_lost'))} of {fmt(per_try)}",
                f"{fmt(row.get('total_lost'))} of {fmt(row.get('total_sent'))}",
                fmt(row.get("late_packets")),
                f"{fmt(complete.get('p50'), 1)} / {fmt(complete.get('max'), 1)}"]

    out.append("## WebSocket bursts: 2 clients, 200 × 600 B each way at once (`--workers 1`)\n")
    out.append(
        "`derp-load --mode ws-burst`: two DERP clients over WebSocket (one WebSocket message per "
        "DERP frame, as Tailscale's browser client writes) each send 200 packets of 600 B to the "
        "other as fast as they can, at the same moment, as a browser tab does when it wakes. A "
        "packet not read within 2 s of the burst's start is lost (*late* ones arrived after "
        "that); 20 tries on the same two connections.\n")
    header = ["Row", "Transport", "Tries", "Lost per try", "Worst try", "Total lost", "Late",
              "All in, p50 / max ms", "Target", "Met"]
    out.append(table(header, section_rows(["wsburst-ws", "wsburst-wss"], ws_cells, header)))
    out.append("")

    def conns_cells(row):
        per = row.get("relay_rss_per_connection_bytes")
        after = row.get("relay_rss_after_bytes")
        files, limit = row.get("relay_open_files_after"), row.get("relay_open_file_limit")
        note = "; ".join(row.get("notes") or [])
        if row.get("stopped_because"):
            note = (note + "; " if note else "") + "stopped: " + row.get("stopped_because")
        return [fmt(row.get("requested")), fmt(row.get("established")),
                fmt(row.get("file_limit_allows")),
                fmt(per, 0, " B"), fmt(after / 2**20 if after else None, 1, " MiB"),
                f"{fmt(files)} / {fmt(limit)}", note or "—"]

    out.append("## Idle connections (`--workers 2`, a fresh relay per row)\n")
    out.append(
        "*File limits allow*: the count asked for, trimmed to the tighter of two limits: "
        "derp-conns' open-file limit less the 50 descriptors it keeps for itself, and the "
        "relay's limit less the descriptors it holds besides the connections (relay open files "
        "after − established). `conns-tls-max` asks for 1,000,000, so there it is the limit.\n")
    ids = ["conns-plain-1000", "conns-plain-10000", "conns-tls-1000", "conns-tls-10000",
           "conns-tls-max"]
    header = ["Row", "Requested", "Established", "File limits allow", "Relay RSS per connection",
              "Relay RSS after", "Relay open files / limit", "Notes", "Target", "Met"]
    out.append(table(header, section_rows(ids, conns_cells, header)))
    out.append("")
    million = million_line()
    if million:
        out.append(million + "\n")

    def stun_cells(row):
        return [workers_of(row),
                fmt(row.get("answers_per_second")), fmt(cpu_percent(row), 0, "%"),
                fmt(row.get("answers_per_relay_cpu_second")), fmt(row.get("lost"))]

    out.append("## STUN: Tailscale-form binding requests, 4 sockets × 32 outstanding\n")
    header = ["Row", "Workers", "Answers/s", "Responder CPU (of one core)", "Answers per CPU-s",
              "Lost", "Target", "Met"]
    stun_ids = [i for i in ran_ids() if i == "stun" or i.startswith("stun-")]
    out.append(table(header, section_rows(stun_ids, stun_cells, header)))
    out.append("")

    out.append("## `--workers 2` never worse than `--workers 1`\n")
    out.append(
        f"Every row measured with both. Met when the w2 loss is at most the w1 loss + "
        f"{W2_LOSS_ALLOWANCE_POINTS} percentage points and the w2 relayed work per relay "
        f"CPU-second is at least {W2_EFFICIENCY_FLOOR:.0%} of w1's. The 10% is an allowance for "
        f"run-to-run noise on a quiet machine; three repeats of the same rows while other builds "
        f"shared the 2 cores (load average ~4.5) spread by 10% (plain), 13% (TLS) and 20% (one "
        f"TLS record per frame) in Mbit per relay CPU-second, so judge this section from a run "
        f"with a low load average in the Machine table.\n")
    header = ["Rows (w1 → w2)", "Loss % w1", "Loss % w2", "Per relay CPU-s w1",
              "Per relay CPU-s w2", "w2 / w1", "Met"]
    out.append(table(header, w2_rows))
    out.append("")

    if SHOWN_UNSET:
        out.append("¹ No threshold is set for this row in `bench/targets.json`.\n")

    out.append("## Commands\n")
    out.append("Relays (`$TMP` is a temporary directory; ports are chosen by the kernel):\n")
    relays = read(f"{RESULTS}/relays.tsv") or ""
    work = ENV.get("WORK", "\0")
    out.append("```")
    for line in relays.splitlines():
        rid, mode, workers, cmd = line.split("\t")
        out.append(f"# {rid}: {mode}, --workers {workers}")
        out.append(cmd.replace(work, "$TMP"))
    out.append("```\n")
    out.append("Rows (`$RELAY_PID` is the pid of the relay named before each command):\n")
    out.append("```")
    for row_id in ran_ids():
        row = Row(row_id)
        out.append(f"# {row.id} ({row.relay}), exit {row.rc}")
        out.append(row.cmd or "")
    out.append("```")

    with open(ENV["OUT"], "w") as f:
        f.write("\n".join(out) + "\n")

    # The terminal gets the summary: issue #11's rows, met or not.
    print("Issue #11 rows (details in the report):")
    for title, cells in summary:
        print(f"  {title}")
        for c in cells.split("<br>"):
            print("      " + c.replace("`", "").replace("**", ""))
    if million:
        print("  " + million.replace("**", "").replace("`", ""))


if __name__ == "__main__":
    main()
