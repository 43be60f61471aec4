#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into bench/RESULTS.md: medians of the
runs, and ratios between medians measured in the same run."""
import json
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

path, runs = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip()]
groups = defaultdict(list)
for r in rows:
    key = (r["bench"], r["tool"], r.get("connections"))
    groups[key].append(r)


def med(key, field):
    vals = [r[field] for r in groups.get(key, []) if r.get(field) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}×"


cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
out = []
p = out.append
p("# barrage benchmark results\n")
import os
commit_file = os.path.join(os.path.dirname(path), "commit")
commit = open(commit_file).read().strip() if os.path.exists(commit_file) else ""
p(f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, barrage at commit {commit or 'unknown'}")
p(f"- machine: {cpu}, {nproc} cores, {mem} memory, Linux {platform.release()}")
p(f"- command: `bench/run.sh` (RUNS={runs}); every figure is the median of {runs} runs; ratios compare medians from this same run")
p("- setup: server (`barrage serve --workers 1`, or the raw TCP echo) pinned to CPU 0, load tool pinned to CPU 1, all on 127.0.0.1\n")

b = ("throughput", "barrage", None)
p("## 1. Closed-model echo throughput (100 connections, 64-byte text, one in flight, 10 s)\n")
p("| tool | runs | messages/s | client CPU-s per million messages | client peak RSS MB | barrage ÷ tool (messages/s) |")
p("|---|---:|---:|---:|---:|---:|")
for tool in ["barrage", "raw-tcp", "artillery", "tsung"]:
    k = ("throughput", tool, None)
    if k not in groups:
        p(f"| {tool} | 0 | not run | | | |")
        continue
    p(f"| {tool} | {len(groups[k])} | {fmt(med(k, 'msgs_per_s'))} | {fmt(med(k, 'cpu_s_per_million'), 2)} | "
      f"{fmt(med(k, 'peak_rss_mb'), 1)} | {ratio(med(b, 'msgs_per_s'), med(k, 'msgs_per_s'))} |")
p("")
p(f"barrage rtt in this benchmark: p50 {fmt(med(b, 'rtt_p50_us'))} µs, p99 {fmt(med(b, 'rtt_p99_us'))} µs (every message timed). "
  "`raw-tcp` is the same ping-pong over plain TCP without WebSocket framing (bench/raw_tcp.rs): the ceiling of this machine. "
  "The issue's reference for a raw ping-pong written in C on this machine is 190,000/s, which puts barrage at "
  f"{ratio(med(b, 'msgs_per_s'), 190000)} of it.\n")

f = ("flood", "barrage", None)
p("## 2. Pipelined flood (100 connections × 64 in flight, 64-byte text, 10 s)\n")
p("| tool | messages/s | messages per client CPU-second | rtt p50 µs | rtt p99 µs | peak RSS MB |")
p("|---|---:|---:|---:|---:|---:|")
p(f"| barrage (every message timed) | {fmt(med(f, 'msgs_per_s'))} | {fmt(med(f, 'msgs_per_cpu_s'))} | "
  f"{fmt(med(f, 'rtt_p50_us'))} | {fmt(med(f, 'rtt_p99_us'))} | {fmt(med(f, 'peak_rss_mb'), 1)} |")
p("| tcpkali 1.2 (reference from the issue, not in any registry here; no per-message timing) | 7,400,000 received | ≈22,400,000 (7.4M at 33% of a core) | | | 4.6 |")
p(f"\nbarrage ÷ tcpkali, messages per client CPU-second: {ratio(med(f, 'msgs_per_cpu_s'), 7_400_000 / 0.33)}\n")

o = ("open", "barrage", None)
p("## 3. Open-model precision (20,000 messages/s over 1,000 connections, 10 s)\n")
p("| achieved messages/s | error vs target | send_lag p99 µs | rtt p50 µs | rtt p99 µs | client CPU % | saturated (runs) |")
p("|---:|---:|---:|---:|---:|---:|---|")
sat = [r["saturated"] for r in groups.get(o, [])]
p(f"| {fmt(med(o, 'msgs_per_s'))} | {fmt(med(o, 'rate_error_pct'), 2)}% | {fmt(med(o, 'send_lag_p99_us'))} | "
  f"{fmt(med(o, 'rtt_p50_us'))} | {fmt(med(o, 'rtt_p99_us'))} | {fmt(med(o, 'cpu_pct'))} | {sum(sat)} of {len(sat)} |\n")

p("## 4. Connection scale (idle connections held by one process)\n")
p("| connections | opened | opening rate /s | client peak RSS MB | connect p99 µs |")
p("|---:|---:|---:|---:|---:|")
for n in [1, 1000, 10000, 19000]:
    k = ("hold", "barrage", n)
    if k in groups:
        p(f"| {n:,} | {fmt(med(k, 'opened'))} | {fmt(med(k, 'open_rate'))} | {fmt(med(k, 'peak_rss_mb'), 1)} | {fmt(med(k, 'connect_p99_us'))} |")
r1, r19 = med(("hold", "barrage", 1000), "peak_rss_mb"), med(("hold", "barrage", 19000), "peak_rss_mb")
if r1 is not None and r19 is not None:
    slope = (r19 - r1) * 1024 / 18000
    p(f"\nRSS per connection (slope between 1,000 and 19,000): **{slope:.2f} KiB**. "
      "References from the issue: tcpkali 1.4 KiB, Artillery and Tsung about 18 KiB.")
# The dashboard's cost: runs alternate on/off, so each pair ran back to back
# under the same machine load; the median of the pairs' costs is robust to
# the load drifting between pairs.
on_runs = [r["msgs_per_s"] for r in groups.get(("tui", "tui", None), [])]
off_runs = [r["msgs_per_s"] for r in groups.get(("tui", "no-tui", None), [])]
pair_costs = [(1 - a / b) * 100 for a, b in zip(on_runs, off_runs) if b]
t_on, t_off = med(("tui", "tui", None), "msgs_per_s"), med(("tui", "no-tui", None), "msgs_per_s")
tui_cost = statistics.median(pair_costs) if pair_costs else None
if tui_cost is not None:
    p("\n## 5. Dashboard cost (section 1's workload in a 160×48 tmux terminal, dashboard on vs `--no-tui`)\n")
    p("| run | dashboard on, messages/s | off (`--no-tui`), messages/s | cost |")
    p("|---:|---:|---:|---:|")
    for i, (run_on, run_off, cost) in enumerate(zip(on_runs, off_runs, pair_costs), 1):
        p(f"| {i} | {fmt(run_on)} | {fmt(run_off)} | {cost:+.1f}% |")
    p(f"\nCost of the dashboard, median of the back-to-back pairs: **{tui_cost:+.1f}%** of throughput "
      f"(medians of all runs: {fmt(t_on)} on, {fmt(t_off)} off).")
def check(ok):
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def ge(a, b):
    return None if a is None or b is None else a >= b


bm = med(b, "msgs_per_s")
art, tsu, raw = (med(("throughput", t, None), "msgs_per_s") for t in ("artillery", "tsung", "raw-tcp"))
slope = None
if r1 is not None and r19 is not None:
    slope = (r19 - r1) * 1024 / 18000
best_open = max((med(("hold", "barrage", n), "open_rate") or 0 for n in [1000, 10000, 19000]), default=None)
p("\n## Targets (from the issue), checked against the medians above\n")
p("| target | measured | |")
p("|---|---|---|")
p(f"| closed model ≥ 5× Artillery | {ratio(bm, art)} | {check(ge(bm, 5 * art) if art else None)} |")
p(f"| closed model ≥ 5× Tsung | {ratio(bm, tsu)} | {check(ge(bm, 5 * tsu) if tsu else None)} |")
p(f"| closed model ≥ 70% of raw TCP ping-pong | {ratio(bm, raw)} of raw-tcp here, {ratio(bm, 190000)} of the C reference | {check(ge(bm, 0.7 * raw) if raw else None)} |")
fm = med(f, "msgs_per_cpu_s")
p(f"| flood ≥ ½ tcpkali's messages per client CPU-second | {ratio(fm, 7_400_000 / 0.33)} | {check(ge(fm, 0.5 * 7_400_000 / 0.33) if fm else None)} |")
p(f"| idle memory ≤ 4 KiB per connection | {fmt(slope, 2)} KiB | {check(None if slope is None else slope <= 4)} |")
p(f"| connection rate ≥ 15,000/s | best {fmt(best_open)}/s | {check(ge(best_open, 15000))} |")
err, lag = med(o, "rate_error_pct"), med(o, "send_lag_p99_us")
p(f"| open model within 1% of 20,000/s | {fmt(err, 2)}% | {check(None if err is None else abs(err) <= 1)} |")
p(f"| send_lag p99 < 1 ms when not saturated | {fmt(lag)} µs | {check(None if lag is None else lag < 1000)} |")
if tui_cost is not None:
    p(f"| dashboard costs < 3% of throughput | {tui_cost:+.1f}% (median of paired runs) | {check(tui_cost < 3)} |")
p("\nWhat limits the targets that are not met, with profiles: bench/ANALYSIS.md.")
print("\n".join(out))
