#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the results directory of bench/run-benchmarks.sh.

Input (environment): RESULTS (a directory of <id>.json/.rc/.cmd/.err/.relay files and
relays.tsv), OUT, TARGETS (bench/targets.json), WORK (the temporary directory, made symbolic in
commands), and the machine facts the script collected (CPU_MODEL, NPROC, KERNEL, MEM, NOFILE,
DATE, COMMIT, BUILD_TYPE, SANITIZE, SECONDS_PER_POINT).
"""
import fnmatch
import json
import os
import sys

RESULTS = os.environ["RESULTS"]
ENV = os.environ


def load_targets():
    try:
        with open(ENV["TARGETS"]) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(f"report.py: cannot read targets: {e}", file=sys.stderr)
        return {}
    return {k: v for k, v in data.items() if not k.startswith("_")}


TARGETS = load_targets()


def target_for(row_id):
    if row_id in TARGETS:
        return TARGETS[row_id]
    for pattern, t in TARGETS.items():
        if fnmatch.fnmatchcase(row_id, pattern):
            return t
    return None


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

    @property
    def ran(self):
        return self.rc is not None

    def get(self, *path):
        d = self.data
        for p in path:
            if not isinstance(d, dict) or d.get(p) is None:
                return None
            d = d[p]
        return d

    def failure(self):
        """A short reason when the row has no usable figures, else None."""
        if self.data is None:
            last = self.err.splitlines()[-1] if self.err else "no output"
            return f"failed (exit {self.rc}): {last}"
        return None

    def notes(self):
        """stderr lines worth showing beside figures (limits hit, connection errors)."""
        lines = [l for l in self.err.splitlines() if l.strip()]
        return "; ".join(l.split(": ", 1)[-1] for l in lines)


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


def judge(row, value_of):
    """Returns (target text, met) for the row from targets.json."""
    t = target_for(row.id)
    if not t:
        return "—", "—"
    text = t.get("text") or ""
    lo, hi = t.get("min"), t.get("max")
    if lo is None and hi is None:
        return (text or "not set") + " ¹", "—"
    value = value_of(t.get("metric"))
    if value is None:
        return text, "n/a"
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    return text, "yes" if ok else "**no**"


def metric_getter(row):
    def value_of(metric):
        if metric is None:
            return None
        if "." in metric:
            return row.get(*metric.split("."))
        return row.get(metric)

    return value_of


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def relay_desc(row):
    return ("TLS" if row.get("tls") else "plain") if row.data else "?"


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
        target, met = judge(row, metric_getter(row))
        rows.append([f"`{row.id}`"] + make_cells(row) + [target, met])
    return rows


def main():
    out = []
    seconds = ENV.get("SECONDS_PER_POINT", "5")
    build = ENV.get("BUILD_TYPE") or "unknown"
    if ENV.get("SANITIZE") not in (None, "", "off"):
        build += f", SANITIZE={ENV['SANITIZE']} (figures are not representative)"
    out.append("# Benchmarks\n")
    out.append(
        "Written by `make bench` (`bench/run-benchmarks.sh`): the load generators in `bench/` "
        "against a local `derp-relay` on 127.0.0.1. Do not edit by hand; rerun it.\n")
    out.append("## Machine\n")
    out.append(table(["", ""], [
        ["Date", ENV.get("DATE", "")],
        ["CPU", f"{ENV.get('CPU_MODEL', '?')} ({ENV.get('NPROC', '?')} CPUs)"],
        ["Memory", ENV.get("MEM", "?")],
        ["Kernel", ENV.get("KERNEL", "?")],
        ["Open files (this shell)", ENV.get("NOFILE", "?")],
        ["Commit", ENV.get("COMMIT", "?")],
        ["Build", build],
        ["Window per point", f"{seconds} s after 1 s warm-up, 500 ms drain"],
    ]))
    out.append("")
    out.append(
        "How to read this. The relay and the load generator share the machine's cores, so Mbit/s "
        "is capped by whichever needs the CPU more; **Mbit relayed per relay CPU-second** "
        "(delivered payload bits / relay CPU time over the window) is the figure that stays fair. "
        "Rates count DERP packet payload bits. *Delivered* is payload read by receivers during the "
        "window; *loss* is packets stamped inside the window that had not arrived 500 ms after it. "
        "*Gen. busy* is the load generator's CPU time over its threads' time: near 100% it may be "
        "the bottleneck itself.\n")

    modes = ["plain", "tls"]
    rates = ["1000", "2000", "3000", "unpaced"]

    def tput_cells(row):
        offered = row.get("offered_mbps")
        return [relay_desc(row), str(row.id.split("-w")[1].split("-")[0]),
                fmt(offered) if offered else "unpaced", fmt(row.get("sent_mbps")),
                fmt(row.get("delivered_mbps")), fmt(row.get("loss_percent"), 3),
                fmt(cpu_percent(row), 0, "%"), fmt(row.get("mbit_per_relay_cpu_second")),
                fmt((row.get("loadgen_busy_fraction") or 0) * 100, 0, "%")]

    out.append("## Throughput: 10 pairs × 1400 B\n")
    ids = [f"tput-{m}-w{w}-{r}" for m in modes for w in ("1", "2") for r in rates]
    header = ["Row", "Relay", "Workers", "Offered Mbit/s", "Sent Mbit/s", "Delivered Mbit/s",
              "Loss %", "Relay CPU (of one core)", "Mbit per relay CPU-s", "Gen. busy", "Target",
              "Met"]
    out.append(table(header, section_rows(ids, tput_cells, header)))
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
    ids = [f"latency-{m}-{l}" for m in modes for l in ("idle", "1000")]
    header = ["Row", "Relay", "Load", "Answered", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs",
              "Target", "Met"]
    out.append(table(header, section_rows(ids, latency_cells, header)))
    out.append("")

    def conns_cells(row):
        per = row.get("relay_rss_per_connection_bytes")
        after = row.get("relay_rss_after_bytes")
        files, limit = row.get("relay_open_files_after"), row.get("relay_open_file_limit")
        note = "; ".join(row.get("notes") or [])
        if row.get("stopped_because"):
            note = (note + "; " if note else "") + "stopped: " + row.get("stopped_because")
        return [fmt(row.get("requested")), fmt(row.get("established")),
                fmt(per, 0, " B"), fmt(after / 2**20 if after else None, 1, " MiB"),
                f"{fmt(files)} / {fmt(limit)}", note or "—"]

    out.append("## Idle connections (`--workers 2`, a fresh relay per row)\n")
    ids = ["conns-plain-1000", "conns-tls-1000", "conns-tls-10000", "conns-tls-max"]
    header = ["Row", "Requested", "Established", "Relay RSS per connection", "Relay RSS after",
              "Relay open files / limit", "Notes", "Target", "Met"]
    out.append(table(header, section_rows(ids, conns_cells, header)))
    out.append("")

    def stun_cells(row):
        return [fmt(row.get("answers_per_second")), fmt(cpu_percent(row), 0, "%"),
                fmt(row.get("answers_per_relay_cpu_second")), fmt(row.get("lost"))]

    out.append("## STUN: Tailscale-form binding requests, 4 sockets × 32 outstanding\n")
    header = ["Row", "Answers/s", "Responder CPU (of one core)", "Answers per CPU-s", "Lost",
              "Target", "Met"]
    out.append(table(header, section_rows(["stun"], stun_cells, header)))
    out.append("")

    if any(not (t.get("min") is not None or t.get("max") is not None) for t in TARGETS.values()):
        out.append("¹ No threshold is set for this row in `bench/targets.json` yet.\n")

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
    for row_id in (read(f"{RESULTS}/order") or "").split():
        row = Row(row_id)
        out.append(f"# {row.id} ({row.relay}), exit {row.rc}")
        out.append(row.cmd or "")
    out.append("```")

    with open(ENV["OUT"], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
