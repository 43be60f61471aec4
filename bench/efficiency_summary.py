#!/usr/bin/env python3
"""Turns bench/efficiency.sh's efficiency.jsonl into bench/EFFICIENCY.md:
medians of the runs, and every ratio computed here, once, from the medians
of this same run (never from figures of another run or another machine)."""
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

path = sys.argv[1]
lines = [json.loads(l) for l in open(path) if l.strip()]
meta = next((l for l in lines if l["row"] == "meta"), {})
rows = [l for l in lines if l["row"] != "meta"]
groups = defaultdict(list)
for r in rows:
    groups[(r["row"], r["tool"], r.get("connections"))].append(r)


def med(row, tool, field, conns=None):
    vals = [r[field] for r in groups.get((row, tool, conns), []) if r.get(field) is not None]
    return statistics.median(vals) if vals else None


def runs(row, tool, conns=None):
    return len(groups.get((row, tool, conns), []))


def fmt(v, digits=0, unit=""):
    return "n/a" if v is None else f"{v:,.{digits}f}{unit}"


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}×"


def per_run(row, tool, field, digits=0, conns=None):
    vals = [r.get(field) for r in sorted(groups.get((row, tool, conns), []), key=lambda r: r["run"])]
    return ", ".join(fmt(v, digits) for v in vals) or "not run"


commit_file = os.path.join(os.path.dirname(path), "commit")
commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown"
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
n_runs = meta.get("runs", "?")
server = meta.get("server", "unknown")
ulen = meta.get("upgrade_response_bytes")
did = set(meta.get("rows", []))

out = []
p = out.append
p("# barrage vs tcpkali: client efficiency (issue 18)\n")
# The run's own start (its folder's stamp), not when this table was drawn.
try:
    when = datetime.strptime(meta["stamp"], "%Y%m%dT%H%M%SZ")
except (KeyError, ValueError):
    when = datetime.now(timezone.utc)
p(f"- date: {when.strftime('%Y-%m-%d %H:%M UTC')}, barrage at commit {commit}")
p(f"- machine: {cpu}, {nproc} cores, Linux {platform.release()}; everything on 127.0.0.1")
p(f"- command: `RUNS={n_runs} bench/efficiency.sh` (rows: {', '.join(meta.get('rows', [])) or 'none'}); "
  f"raw data in bench/out/{meta.get('stamp', '?')}/")
p(f"- server: {server}, pinned to CPU 1; the load tool pinned to CPU 0")
p(f"- every figure is the median of {n_runs} run{'' if n_runs == 1 else 's'} per tool, barrage and its peer run "
  "alternately; ratios are barrage ÷ peer of those medians, computed here and nowhere else")
others = [r["other_cpu_pct"] for r in rows if r.get("other_cpu_pct") is not None]
if others:
    busy = sum(1 for o in others if o >= 10)
    p(f"- other user-space CPU on the machine during the runs: median {statistics.median(others):.0f}%, "
      f"max {max(others):.0f}% of one core; {busy} of {len(others)} runs had 10% or more"
      + (" (**contended**: treat their figures with care, see Each run)" if busy else ""))
for note in meta.get("notes", []):
    p(f"- **note:** {note}")
p("")

# Server-bound: the server's core was (nearly) never idle, so a faster
# client could not have shown more; the client's figure per CPU-second still
# holds. The core, not the server process: the loopback traffic's softirq
# work is on the core but in no process's CPU time.
def bound(row, tool):
    s = med(row, tool, "server_core_busy_pct")
    return "" if s is None or s < 95 else " (server-bound)"


T = []
t = T.append
t("| row | figure | barrage | peer | barrage ÷ peer |")
t("|---|---|---:|---:|---:|")
if "flood" in did:
    a, b = med("flood", "barrage", "msgs_per_cpu_s"), med("flood", "tcpkali", "msgs_per_cpu_s")
    t(f"| a. flood: 100 conns, 64 B, max rate, 10 s; peer tcpkali | **messages received per client CPU-second** | "
      f"**{fmt(a)}** | **{fmt(b)}** | **{ratio(a, b)}** |")
    a, b = med("flood", "barrage", "msgs_per_s"), med("flood", "tcpkali", "msgs_per_s")
    t(f"| | messages received per second | {fmt(a)}{bound('flood', 'barrage')} | {fmt(b)}{bound('flood', 'tcpkali')} | {ratio(a, b)} |")
    for field, what in [("client_cpu_pct", "client process CPU % (user + sys)"),
                        ("client_core_busy_pct", "client core (CPU 0) busy %"),
                        ("server_cpu_pct", "server process CPU %"),
                        ("server_core_busy_pct", "server core (CPU 1) busy %")]:
        t(f"| | {what} | {fmt(med('flood', 'barrage', field))} | {fmt(med('flood', 'tcpkali', field))} | |")
    t(f"| | rtt p99 | {fmt(med('flood', 'barrage', 'rtt_p99_us'), 0, ' µs')} | not measured | |")
    a, b = med("flood", "barrage", "msgs_per_cpu_s"), med("flood", "raw-tcp", "msgs_per_cpu_s")
    t(f"| | messages per client CPU-second against the ceiling of 64 in flight: raw TCP, same pipeline, no framing or timing (bench/raw_tcp.rs pipeline, its own echo server) | "
      f"{fmt(a)} | {fmt(b)} | {ratio(a, b)} |")
    c = med("flood", "tcpkali", "msgs_per_cpu_s")
    t(f"| | that ceiling ÷ tcpkali | | | {ratio(b, c)} |")
    t(f"| | connections held | 100 | {fmt(med('flood', 'tcpkali', 'held'))} | |")
if "idle" in did:
    slope = {}
    for tool in ("barrage", "tcpkali"):
        lo, hi = med("idle", tool, "rss_kb", 100), med("idle", tool, "rss_kb", 10000)
        nlo, nhi = med("idle", tool, "held", 100), med("idle", tool, "held", 10000)
        ok = None not in (lo, hi, nlo, nhi) and nhi > nlo
        slope[tool] = (hi - lo) * 1024 / (nhi - nlo) if ok else None
    a, b = slope["barrage"], slope["tcpkali"]
    t(f"| b. idle connections; peer tcpkali | **RSS per held connection, 100 → 10,000** (lower is better) | "
      f"**{fmt(a, 0, ' B')}** | **{fmt(b, 0, ' B')}** | **{ratio(a, b)}** |")
    for n in (100, 10000):
        t(f"| | RSS during the hold at {n:,} (connections held) | {fmt(med('idle', 'barrage', 'rss_kb', n), 0, ' KiB')} "
          f"({fmt(med('idle', 'barrage', 'held', n))}) | {fmt(med('idle', 'tcpkali', 'rss_kb', n), 0, ' KiB')} "
          f"({fmt(med('idle', 'tcpkali', 'held', n))}) | |")
if "open" in did:
    a, b = med("open", "barrage", "opens_per_s", 10000), med("open", "tcpkali", "opens_per_s", 10000)
    t(f"| c. opening 10,000 connections; peer tcpkali | **opens per second, exec to the 10,000th upgrade** | "
      f"**{fmt(a)}** | **{fmt(b)}** | **{ratio(a, b)}** |")
    t(f"| | connections opened in all (asked 10,000) | {fmt(med('open', 'barrage', 'opened', 10000))} | "
      f"{fmt(med('open', 'tcpkali', 'held', 10000))} | |")
    t(f"| | barrage's report (`totals.connections.open_rate`, from its own start) | "
      f"{fmt(med('open', 'barrage', 'report_open_rate', 10000))} | | |")
    t(f"| | connect p99 (barrage) | {fmt(med('open', 'barrage', 'connect_p99_us', 10000), 0, ' µs')} | | |")
    t(f"| | SYNs dropped by the server's full accept queue (`ListenOverflows`) | "
      f"{fmt(med('open', 'barrage', 'listen_overflows', 10000))} | {fmt(med('open', 'tcpkali', 'listen_overflows', 10000))} | |")
if "fixed" in did:
    for pct in ("50", "99"):
        a, b = med("fixed", "barrage", f"rtt_p{pct}_us"), med("fixed", "tcpkali", f"rtt_p{pct}_us")
        t(f"| {'d. 10,000 msg/s over 100 conns; peer tcpkali' if pct == '50' else ''} | **rtt p{pct}** (lower is better) | "
          f"**{fmt(a, 0, ' µs')}** | **{fmt(b, 0, ' µs')}** | **{ratio(a, b)}** |")
    t(f"| | barrage's service time p50 / p99 (from the actual write, as tcpkali times) | "
      f"{fmt(med('fixed', 'barrage', 'service_p50_us'), 0, ' µs')} / {fmt(med('fixed', 'barrage', 'service_p99_us'), 0, ' µs')} | | |")
    a, b = med("fixed", "barrage", "msgs_per_s"), med("fixed", "tcpkali", "msgs_per_s")
    t(f"| | achieved messages per second (connections held) | {fmt(a)} (100) | {fmt(b)} "
      f"({fmt(med('fixed', 'tcpkali', 'held'))}) | |")
    a, b = med("fixed", "barrage", "client_cpu_pct"), med("fixed", "tcpkali", "client_cpu_pct")
    t(f"| | client CPU % (of one core) | {fmt(a, 1)} | {fmt(b, 1)} | {ratio(a, b)} |")
if "closed" in did:
    a, b = med("closed", "barrage", "msgs_per_s"), med("closed", "raw-tcp", "msgs_per_s")
    t(f"| e. closed loop: 100 conns × 1 in flight, 64 B; peer raw TCP ping-pong | **round trips per second** | "
      f"**{fmt(a)}**{bound('closed', 'barrage')} | **{fmt(b)}** | **{ratio(a, b)}** |")
    a, b = med("closed", "barrage", "cpu_s_per_million"), med("closed", "raw-tcp", "cpu_s_per_million")
    t(f"| | client CPU-s per million round trips | {fmt(a, 2)} | {fmt(b, 2)} | {ratio(a, b)} |")
    t(f"| | server process CPU % / server core busy % (uWS; raw echo) | {fmt(med('closed', 'barrage', 'server_cpu_pct'))} / "
      f"{fmt(med('closed', 'barrage', 'server_core_busy_pct'))} | {fmt(med('closed', 'raw-tcp', 'server_cpu_pct'))} / "
      f"{fmt(med('closed', 'raw-tcp', 'server_core_busy_pct'))} | |")
    t(f"| | rtt p50 / p99 (barrage) | {fmt(med('closed', 'barrage', 'rtt_p50_us'), 0, ' µs')} / "
      f"{fmt(med('closed', 'barrage', 'rtt_p99_us'), 0, ' µs')} | | |")
p("## Results\n")
out.extend(T if len(T) > 2 else ["No rows were run."])
p("")

p("## Each run\n")
p("Other CPU: user-space CPU of everything but the client and the server (another compile or benchmark "
  "on this shared machine) during that run, % of one core; a run with much of it was contended.\n")
p("| row | tool | figure | runs, in order | other CPU %, per run |")
p("|---|---|---|---|---|")
for row, field, tools, conns in [
    ("flood", "msgs_per_cpu_s", ("barrage", "tcpkali", "raw-tcp"), [None]),
    ("flood", "server_core_busy_pct", ("barrage", "tcpkali"), [None]),
    ("idle", "rss_kb", ("barrage", "tcpkali"), [100, 10000]),
    ("open", "opens_per_s", ("barrage", "tcpkali"), [10000]),
    ("open", "listen_overflows", ("barrage", "tcpkali"), [10000]),
    ("fixed", "rtt_p99_us", ("barrage", "tcpkali"), [None]),
    ("closed", "msgs_per_s", ("barrage", "raw-tcp"), [None]),
]:
    if row not in did:
        continue
    for n in conns:
        for tool in tools:
            label = row if n is None else f"{row} {n:,}"
            p(f"| {label} | {tool} | {field} | {per_run(row, tool, field, 0, n)} | {per_run(row, tool, 'other_cpu_pct', 0, n)} |")
p("")

p("## Method\n")
p("Each tool runs pinned to CPU 0 (`taskset -c 0`), the server to CPU 1, a new server process on a new port "
  "for every run (no TIME_WAIT collisions). barrage runs with `--no-tui --quiet --format json`; "
  "tcpkali with `-w 1` (one worker thread, as it has one CPU), `--ws` and `--connect-timeout 10s` (barrage's "
  "timeout in these scenarios; with tcpkali's 1 s default a slow connect is abandoned and replaced while it may "
  "still complete). tcpkali can hold more connections than `-c` asks: its orchestrator tops up on counts "
  "its worker has not updated yet (seen: 130 to 256 of 100 when opening at 10,000/s into a flood, 10,060 to "
  "12,528 of 10,000 at 20,000/s). Its 100-connection runs therefore open at 1,000/s (0.1 s, before `-T` "
  "starts; 100 held every time), and the connections it held are counted mid-run from the kernel "
  "(ESTABLISHED sockets to the run's server port, `ss`) and used wherever a count enters a figure. CPU time is user + sys of the "
  "whole client process from `/usr/bin/time`; the server process's CPU % is the change of its utime + stime "
  "in `/proc/PID/stat` over the client's run. Neither includes the loopback traffic's softirq work, which "
  "the kernel books to the core, not to a process; so each core's busy % (`/proc/stat`, 100 − idle) is shown "
  "too, and a server core ≥ 95% busy marks a figure server-bound (the server, not the client, set the rate). The payload is the same 64-byte text everywhere. Each tcpkali run "
  "connects from its own loopback source address (`--source-ip 127.1.x.y`): tcpkali binds before connecting, so "
  "it cannot reuse a local port a previous run left in TIME_WAIT, and a second 10,000-connection run within a "
  "minute would crawl. Before each run the script waits (up to 300 s) until the rest of the "
  "machine has used under 10% of a core for 2 s; other CPU (in Each run) is the machine's user-space CPU over "
  "the run less the client's and the server's, from `/proc/stat`.\n")
p("- **a. flood.** barrage: `bench/scenarios/flood.yaml` (100 connections, `rate: max, inflight: 64`, "
  "2 s warm-up + 10 s); its messages are every echo it received, the sum of `phases[].messages.received` "
  "over both phases, and the CPU time covers the same whole process; its rtt p99 is the report's "
  "`metrics.rtt.p99_us` (steady phase, every message timed). tcpkali: `-c 100 "
  "--connect-rate 1k -m <64 B> -T 10s` (as fast as the socket takes); it counts the bytes read after its ramp-up, so "
  f"its messages are (bytes received − {ulen if ulen is not None else '?'} B × the connections held, for the 101 "
  "responses, whose length is measured from the server at the start of every run) ÷ 66 (2-byte frame header + "
  "64 B). Figure: messages ÷ client CPU-seconds. tcpkali times nothing per message in this mode, and "
  "never waits for a reply: its writes carry ~1,500 messages, while a tool keeping 64 in flight writes at most 64. "
  "The ceiling of that pipeline is measured too: `raw_tcp pipeline 127.0.0.1:PORT 100 10 66 64` against "
  "`raw_tcp server` (bench/raw_tcp.rs: 64 messages of 66 bytes in flight per connection, one write per batch "
  "of replies read, nothing framed, parsed or timed), messages read ÷ its client CPU-seconds.")
p("- **b. idle connections.** barrage: `bench/scenarios/hold.yaml --connections N` (opens at up to "
  "20,000/s, then holds 10 s with one message per connection every N/100 s); tcpkali: `-c N --connect-rate 10k "
  "--connect-timeout 10s -T 12s` with no message (idle; `-T` counts from its ramp-up). VmRSS of the client "
  "is read from `/proc/PID/status` every 10 ms; the figure takes the sample 6 s after every connection was "
  "open: for barrage its report's `started_at_ms + load_started_ms`, for tcpkali the moment it had read every "
  "101 response, from the bytes it passed to read() (`rchar` in `/proc/PID/io`; see c). RSS per "
  "connection = (median RSS at 10,000 − median RSS at 100) ÷ (the difference of the connections held: "
  "barrage's report's `opened`, tcpkali's counted; 9,900 when it holds what it was asked).")
cap = meta.get("open_cap_per_s")
p(f"- **c. opening 10,000 connections.** Both capped at {fmt(cap)}/s (hold.yaml's rate): barrage "
  f"`bench/scenarios/connect-10k.yaml`, tcpkali `-c 10000 --connect-rate {cap} --connect-timeout 10s -T 6s`. "
  "Figure: 10,000 ÷ the seconds from the tool's exec to its 10,000th completed upgrade. barrage: "
  "`started_at_ms + load_started_ms` of its report (its own `open_rate` counts from its start after set-up "
  "and is shown beside it). tcpkali: the first 10 ms sample where its `rchar` covers its start-up reads "
  "(measured by a one-connection run at the start of every invocation), 1 byte from its orchestrator's pipe "
  "per connection it opened, and 10,000 101 responses; the connections it opens beyond 10,000 (shown) "
  "come later and do not count. The server accepts with uSockets' listen backlog of 512: "
  "when a tool connects faster than uWS accepts, SYNs are dropped (the kernel's `TcpExt ListenOverflows`, "
  "shown) and wait 1 s for their retransmit, which dominates that run's figure. Asked for much more than "
  "20,000/s, tcpkali overruns it for seconds, while barrage opens no faster at 100,000/s than at 20,000/s.")
p("- **d. fixed rate.** barrage: `bench/scenarios/fixed-10k.yaml` (10,000/s over 100 connections, 2 s "
  "warm-up + 10 s), rtt from the scheduled send to the echo (`metrics.rtt`; `metrics.service`, from the actual write, beside it). tcpkali: `-c 100 --connect-rate 1k -m <64 B> "
  "--message-rate 100` (per connection) `--latency-marker <the same 64 B> --latency-percentiles 50,99 -T 10s`, "
  "from the write of a message to the marker in the bytes read; tcpkali reports in 0.1 ms steps, so its "
  "figures are multiples of 100 µs.")
p("- **e. closed loop.** barrage: `bench/scenarios/throughput.yaml` (100 connections, one in flight, 2 s "
  "warm-up + 10 s) against the server; figure the steady phase's `achieved_rate`. Peer: "
  "`raw_tcp client 127.0.0.1:PORT 100 10 64` against `raw_tcp server` (bench/raw_tcp.rs: the same ping-pong "
  "over plain TCP, no WebSocket framing, the machine's ceiling); figure round_trips ÷ 10 s. tcpkali has no "
  "closed loop.")
print("\n".join(out))
