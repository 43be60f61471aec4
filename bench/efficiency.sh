#!/usr/bin/env bash
# Issue 18's efficiency table: barrage side by side with tcpkali, both loading
# the uWebSockets echo server, on this machine, in one run. uWS is the server
# because it is fast enough that in most rows the client is what is measured;
# `barrage serve` would put barrage on both sides of the comparison.
#
#   bench/efficiency.sh                       # RUNS=3; writes bench/EFFICIENCY.md
#   RUNS=1 ONLY=flood,fixed bench/efficiency.sh
#
# Rows (ONLY= picks some, comma-separated):
#   flood   100 connections, 64-byte text, as fast as possible, 10 s:
#           messages received per client CPU-second, barrage's rtt p99
#   idle    RSS per held idle connection: slope between 100 and 10,000
#   open    opening 10,000 connections: opens per second
#   fixed   10,000 msg/s over 100 connections: rtt p50/p99
#   closed  100 connections x 1 in flight: barrage against uWS vs a raw TCP
#           ping-pong (bench/raw_tcp.rs) as the ceiling of the machine
#
# The load tool is pinned to CPU 0 and the server to CPU 1; each row runs
# barrage and its peer alternately (barrage run i, peer run i, barrage run
# i+1, ...) so a drift in the machine's load hits both; the table shows
# medians of RUNS runs and ratios of those medians. Every load goes to
# 127.0.0.1. Raw data: bench/out/<stamp>/efficiency.jsonl and one folder per
# run. Benchmarks are not tests: CI runs none of this.
#
# CARGO_TARGET_DIR is honoured (cargo builds there, and the binaries are taken
# from there). Peers come from bench/build-peers.sh (bench/.tools/bin/).
# QUIET_WAIT (default 300 s, 0: off) bounds the wait for a quiet machine
# before each run (wait_quiet). About 3 minutes per RUNS on a quiet machine.
# $(time_args) and $(cpu_args) are split on purpose: key=value words, none
# with a space, handed to row().
# shellcheck disable=SC2046
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
ALL_ROWS=flood,idle,open,fixed,closed
ONLY=${ONLY:-$ALL_ROWS}
for r in ${ONLY//,/ }; do
  [[ ",$ALL_ROWS," == *",$r,"* ]] || { echo "efficiency: unknown row '$r' in ONLY (rows: $ALL_ROWS)" >&2; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/out/$STAMP
mkdir -p "$OUT"
ROWS="$OUT/efficiency.jsonl"
: > "$ROWS"
# The commit barrage is built from; the build takes the work tree as it is,
# so say when its source differs from that commit.
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- src Cargo.toml Cargo.lock || commit="$commit (with uncommitted changes to src)"
else
  commit=unknown
fi
echo "$commit" > "$OUT/commit"
T_START=$(date +%s)

cargo build --release --bin barrage --example raw_tcp >&2
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release/barrage
RAW=$TARGET_DIR/release/examples/raw_tcp

TK=bench/.tools/bin/tcpkali
UWS=bench/.tools/bin/uws-echo
if [ ! -x "$TK" ] || [ ! -x "$UWS" ]; then
  bench/build-peers.sh || echo "efficiency: bench/build-peers.sh failed; going on with the peers that exist" >&2
fi
NOTES=()
if [ -x "$TK" ]; then HAVE_TK=1; else
  HAVE_TK=0
  NOTES+=("tcpkali is missing (bench/build-peers.sh could not build it): every tcpkali comparison (flood, idle, open, fixed) was skipped; barrage's figures are alone")
fi
if [ -x "$UWS" ]; then SERVER_NAME="uWebSockets EchoServer (bench/.tools/bin/uws-echo)"; else
  SERVER_NAME="barrage serve --workers 1 (uws-echo missing)"
  NOTES+=("uws-echo is missing (bench/build-peers.sh could not build it): the server is \`barrage serve --workers 1\` instead of uWebSockets, so every figure also measures barrage's own server")
fi
for n in "${NOTES[@]}"; do echo "efficiency: $n" >&2; done
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

# 10,000 connections are 10,000 descriptors in the client and as many in the
# server (separate processes, so separate limits); the default soft limit
# here is 20,000, which fits, but a lower one would fail the idle and open
# rows midway, so raise it where root may and refuse those rows otherwise.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10500 ]; then
  echo "efficiency: ulimit -n is $(ulimit -n), under the 10,500 the 10,000-connection rows need; skipping idle and open" >&2
  NOTES+=("the idle and open rows were skipped: ulimit -n was $(ulimit -n)")
  ONLY=$(echo ",$ONLY," | sed 's/,idle,/,/; s/,open,/,/; s/^,//; s/,$//')
fi

TICK=$(getconf CLK_TCK)
# The same 64-byte text as the scenarios' (quotes included): a fixed payload.
MSG='"123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"'
# A text frame of 64 bytes from the server has a 2-byte header (unmasked).
FRAME=66

wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# Every run gets a server on a port not used before: new connections to a
# port the previous run used would collide with its TIME_WAIT sockets and
# wait for SYN retransmits. The base moves with the clock so that a second
# invocation within TIME_WAIT's minute does not start on the first one's
# ports; it stays under the ephemeral range (32768+), so no client socket
# holds a server port.
NEXT_PORT=$((10000 + ($(date +%s) / 60 % 100) * 200))

# The machine may be shared (a compile, another benchmark). Before each run,
# wait until the rest of it has used under 10% of a core for 2 s in a row,
# for at most QUIET_WAIT seconds (default 300; 0: no wait). What other work
# remains during a run is measured anyway (OTHER_PCT) and shown per run.
QUIET_WAIT=${QUIET_WAIT:-300}
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local start=$SECONDS calm=0 said=0 a b
  a=$(awk '/^cpu /{print $2 + $3 + $4}' /proc/stat)
  while [ $((SECONDS - start)) -lt "$QUIET_WAIT" ]; do
    sleep 1
    b=$(awk '/^cpu /{print $2 + $3 + $4}' /proc/stat)
    if [ $((b - a)) -lt $((TICK / 10)) ]; then
      calm=$((calm + 1)); [ $calm -ge 2 ] && return 0
    else
      calm=0
      [ $said = 1 ] || { echo "efficiency: waiting for the machine to be quiet (other work is running)" >&2; said=1; }
    fi
    a=$b
  done
  echo "efficiency: the machine stayed busy for ${QUIET_WAIT} s; running anyway (its share shows as other CPU)" >&2
}

start_server() {
  wait_quiet
  PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
  if [ -x "$UWS" ]; then
    taskset -c 1 "$UWS" "$PORT" > /dev/null 2>&1 & SERVER=$!
  else
    taskset -c 1 "$BIN" serve --listen "127.0.0.1:$PORT" --workers 1 > /dev/null 2>&1 & SERVER=$!
  fi
  wait_port || { echo "efficiency: the server did not listen on $PORT" >&2; exit 1; }
}
stop_server() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
# A snapshot for accounting around a run: time (ns); the whole machine's
# user + nice ticks; the server's utime and stime ticks; the busy and total
# ticks of CPU 0 and CPU 1; and the kernel's count of connections dropped
# because a listen queue was full (TcpExt ListenOverflows: uWS listens with
# a backlog of 512, and a client that opens faster than the server accepts
# pays 1 s SYN retransmits).
snap() {
  echo "$(date +%s%N) $(awk '/^cpu /{print $2 + $3}' /proc/stat)" \
    "$(awk '{print $14, $15}' "/proc/$SERVER/stat" 2>/dev/null || echo 0 0)" \
    "$(awk '/^cpu[01] / { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", t - $5 - $6, t }' /proc/stat)" \
    "$(awk '/^TcpExt:/ && !h { for (i = 1; i <= NF; i++) n[i] = $i; h = 1; next }
            /^TcpExt:/ { for (i = 1; i <= NF; i++) if (n[i] == "ListenOverflows") print $i }' /proc/net/netstat)"
}
# From two snaps and the client's user seconds, sets:
#  SERVER_PCT  the server process's CPU over the run, % of a core;
#  CORE0_PCT, CORE1_PCT  how busy CPU 0 (the client's) and CPU 1 (the
#    server's) were: a process's own CPU time leaves out the loopback
#    traffic's softirq work, so a server core at 100% is server-bound even
#    when the server process shows 60%;
#  OTHER_PCT  user-space CPU of everything else on the machine (a compile,
#    another benchmark: this box may be shared; a run with much of it was
#    contended, and the table says so rather than hiding it in a median);
#  OVERFLOWS  listen queue drops.
account() {
  read -r SERVER_PCT CORE0_PCT CORE1_PCT OTHER_PCT OVERFLOWS < <(python3 - "$1" "$2" "$3" "$TICK" <<'PY'
import sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
client_user, tick = float(sys.argv[3]), float(sys.argv[4])
wall = (b[0] - a[0]) / 1e9
server = (b[2] - a[2] + b[3] - a[3]) / tick / wall * 100
core0 = (b[4] - a[4]) / max(b[5] - a[5], 1) * 100
core1 = (b[6] - a[6]) / max(b[7] - a[7], 1) * 100
other = ((b[1] - a[1]) / tick - client_user - (b[2] - a[2]) / tick) / wall * 100
print(round(server, 1), round(core0, 1), round(core1, 1), round(max(other, 0), 1), int(b[8] - a[8]))
PY
)
}

# The length of the server's 101 response to tcpkali's exact upgrade request.
# tcpkali counts the bytes it reads, the 101 included, and only the bytes
# read after its ramp-up; measured once here rather than assumed.
start_server
UPGRADE_LEN=$(python3 - "$PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
# tcpkali's request (src/tcpkali_transport.c), byte for byte, with its Host.
s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
buf, deadline = b"", time.time() + 5
while b"\r\n\r\n" not in buf and time.time() < deadline:
    buf += s.recv(4096)
print(buf.index(b"\r\n\r\n") + 4)
PY
)
stop_server
echo "efficiency: the server's 101 response to tcpkali's upgrade is $UPGRADE_LEN bytes" >&2

record() { echo "$1" >> "$ROWS"; echo "$1" >&2; }

# Runs "$@" pinned to CPU 0 under /usr/bin/time in $D; sets WALL CPU_USER
# CPU_SYS MAXRSS, and SERVER_PCT OTHER_PCT (account).
timed_run() {
  local s0 s1
  s0=$(snap)
  /usr/bin/time -o "$D/time" -f '%e %U %S %M' taskset -c 0 "$@" > "$D/stdout" 2> "$D/stderr" || true
  s1=$(snap)
  read -r WALL CPU_USER CPU_SYS MAXRSS < <(tail -1 "$D/time")
  account "$s0" "$s1" "$CPU_USER"
}

# Runs "$@" pinned to CPU 0 while sampling its VmRSS and rchar (bytes it
# passed to read()) every 10 ms into $D/samples ("unix_ms rss_kb rchar"),
# the launch time on the first line ("launch MS") and the client's user and
# sys seconds on the last ("rusage U S"); sets SERVER_PCT OTHER_PCT. The
# launch is stamped just before the exec, so the sampler's own start-up is
# not in it.
probed_run() {
  local s0 s1
  s0=$(snap)
  python3 - "$D" "$@" <<'PY'
import resource, subprocess, sys, time
d, cmd = sys.argv[1], sys.argv[2:]
out = open(f"{d}/samples", "w")
launch = time.time() * 1000
p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdin=subprocess.DEVNULL,
                     stdout=open(f"{d}/stdout", "w"), stderr=open(f"{d}/stderr", "w"))
out.write(f"launch {launch:.1f}\n")
while p.poll() is None:
    try:
        st = open(f"/proc/{p.pid}/status").read()
        io = open(f"/proc/{p.pid}/io").read()
    except OSError:
        break
    rss = next((l.split()[1] for l in st.splitlines() if l.startswith("VmRSS:")), None)
    rchar = next((l.split()[1] for l in io.splitlines() if l.startswith("rchar:")), None)
    if rss is None or rchar is None:  # exiting
        break
    out.write(f"{time.time() * 1000:.1f} {rss} {rchar}\n")
    time.sleep(0.01)
p.wait()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
out.write(f"rusage {ru.ru_utime} {ru.ru_stime}\n")
PY
  s1=$(snap)
  account "$s0" "$s1" "$(awk '$1 == "rusage" {print $2}' "$D/samples")"
}

# tcpkali binds every socket to its source address before connecting, so
# unlike barrage it cannot reuse a local port that a previous run left in
# TIME_WAIT, even towards a new server port: a second 10,000-connection run
# within a minute crawls. Each tcpkali run gets its own loopback source
# address instead (127.1.x.y, from the run's fresh port).
src_ip() { echo "127.1.$((PORT / 250 % 250)).$((PORT % 250 + 2))"; }

# tcpkali can hold more connections than -c asks: its orchestrator thread
# writes one byte per connection wanted into its worker's pipe and tops up
# on counts the worker has not updated yet (flooding at 10,000/s: 130 to 256
# of 100; opening 10,000 at 20,000/s: 12,363 to 12,528). So the connections
# it really held are counted from the kernel mid-run (ESTABLISHED sockets to
# the run's server port), $1 s after the start, into $D/held; wait_held
# waits for that count and sets HELD.
count_held() {
  (sleep "$1"; ss -Htn state established "( dport = :$PORT )" | wc -l > "$D/held") & COUNTER=$!
}
wait_held() { wait "$COUNTER" 2>/dev/null || true; HELD=$(cat "$D/held" 2>/dev/null || echo 0); }

# One JSON row from a run folder: barrage's figures from its report.json,
# tcpkali's from its output and samples, raw_tcp's from its output. All
# arithmetic on raw data is here, in one place.
row() {
  python3 - "$@" <<'PY'
import json, sys
row, tool, run, d = sys.argv[1:5]
kv = dict(a.split("=", 1) for a in sys.argv[5:])
num = lambda k: float(kv[k])
out = {"row": row, "tool": tool, "run": int(run), "dir": d}
if "conns" in kv:
    out["connections"] = int(kv["conns"])
if "held" in kv:
    out["held"] = int(kv["held"])
if "user" in kv:
    cpu = num("user") + num("sys")
    out.update(client_cpu_s=cpu, wall_s=num("wall"), client_cpu_pct=cpu / num("wall") * 100,
               client_maxrss_mb=num("maxrss") / 1024)
if "server_pct" in kv:
    out.update(server_cpu_pct=num("server_pct"), client_core_busy_pct=num("core0_pct"),
               server_core_busy_pct=num("core1_pct"), other_cpu_pct=num("other_pct"),
               listen_overflows=int(kv["overflows"]))

def report():
    return json.load(open(f"{d}/report.json"))

def tcpkali():
    """tcpkali's summary: bytes received after its ramp-up, the duration of
    that window, and the latency line when --latency-marker was given."""
    t = {}
    for line in open(f"{d}/stdout"):
        if line.startswith("Total data received:"):
            t["rcvd"] = int(line.rsplit("(", 1)[1].split()[0])
        elif line.startswith("Test duration:"):
            t["duration"] = float(line.split()[2])
        elif line.startswith("Message latency at percentiles:"):
            # "Message latency at percentiles: 0.2/0.5 ms (50/99%)", 0.1 ms resolution
            vals = line.split(":", 1)[1].split()[0].split("/")
            t["lat_ms"] = [float(v) for v in vals]
    return t

def samples():
    lines = [l.split() for l in open(f"{d}/samples") if l.strip()]
    launch = float(lines[0][1])
    return launch, [tuple(float(x) for x in l) for l in lines[1:] if l[0] != "rusage"]

def at(s, t):
    """The first sample at or after unix ms t."""
    return next((x for x in s if x[0] >= t), None)

def tcpkali_upgraded(s, held, n):
    """When tcpkali had read n 101 responses, held being the connections it
    opened, from its rchar (bytes it passed to read()). Idle, rchar is its
    start-up reads (rchar_base, measured by a one-connection run at the
    start), one byte per connection from its orchestrator's pipe, and one
    101 per connection; uWS's 2-byte pings come 4 s after a connection's
    upgrade at the earliest. (Its own "Ramped up" line is no use: it comes
    once every connect() is issued, before they complete.) Returns the time
    of the first 10 ms sample where rchar covers them, or None."""
    base, ulen = float(kv["rchar_base"]), int(kv["upgrade_len"])
    need = base + held + n * ulen - ulen / 2
    done = next((x for x in s if x[2] >= need), None)
    return done[0] if done else None

if (row, tool) == ("flood", "barrage"):
    r = report()
    steady = [p for p in r["phases"] if p["name"] == "steady"][0]
    # Every echo barrage received, warm-up included: the CPU time covers
    # the whole process too.
    received = sum(p["messages"]["received"] for p in r["phases"])
    out.update(messages=received, msgs_per_cpu_s=received / cpu,
               msgs_per_s=steady["messages"]["received"] / steady["duration_s"],
               rtt_p50_us=r["metrics"]["rtt"]["p50_us"], rtt_p99_us=r["metrics"]["rtt"]["p99_us"],
               errors=sum(r["totals"]["errors"].values()), verdict=r["verdict"])
elif (row, tool) == ("flood", "tcpkali"):
    t = tcpkali()
    # Bytes received after the ramp-up, less one 101 response per connection
    # held (uWS's is 183 bytes: status line, Upgrade, Connection, Accept,
    # Date and "uWebSockets: 20"; measured at the start of every run as
    # upgrade_len), in 66-byte frames. tcpkali's ramp-up ends once every
    # connect() is issued; with 100 connections all their 101s came after
    # it, in the count, in every run checked (an idle run reads exactly
    # 100 x 183 bytes). Were some before it, this would undercount by at
    # most 100 x 183 / 66 = 277 messages of tens of millions.
    msgs = (t["rcvd"] - int(kv["upgrade_len"]) * out["held"]) / int(kv["frame"])
    out.update(messages=msgs, msgs_per_cpu_s=msgs / cpu, msgs_per_s=msgs / t["duration"])
elif row == "idle":
    launch, s = samples()
    if tool == "barrage":
        r = report()
        f = r["run_data"]["facts"]
        held_from = f["started_at_ms"] + f["load_started_ms"]
        out["opened"] = r["totals"]["connections"]["opened"]
        out["held"] = out["opened"]
    else:
        held_from = tcpkali_upgraded(s, out["held"], out["held"]) if out["held"] else None
    x = at(s, held_from + float(kv["at_ms"])) if held_from else None
    out.update(rss_kb=x[1] if x else None, sampled_at_s=(x[0] - held_from) / 1000 if x else None)
elif row == "open":
    launch, s = samples()
    n = out["connections"]
    if tool == "barrage":
        r = report()
        f = r["run_data"]["facts"]
        c = r["totals"]["connections"]
        # The report's rate starts at barrage's own start (after its set-up);
        # from the exec, as tcpkali's must be, is the figure compared.
        out.update(opened=c["opened"], failed=c["failed"], report_open_rate=c["open_rate"],
                   open_s=(f["started_at_ms"] + f["load_started_ms"] - launch) / 1000,
                   connect_p99_us=r["metrics"]["connect"]["p99_us"])
        out["opens_per_s"] = c["opened"] / out["open_s"] if c["failed"] == 0 else None
    else:
        # The time to its n-th upgrade, as barrage's is to its n-th: the
        # connections it opens beyond -c come later.
        done = tcpkali_upgraded(s, out["held"], n) if out["held"] >= n else None
        out["open_s"] = (done - launch) / 1000 if done else None
        out["opens_per_s"] = n / out["open_s"] if done else None
elif (row, tool) == ("fixed", "barrage"):
    r = report()
    steady = [p for p in r["phases"] if p["name"] == "steady"][0]
    out.update(msgs_per_s=steady["achieved_rate"], rtt_p50_us=r["metrics"]["rtt"]["p50_us"],
               rtt_p99_us=r["metrics"]["rtt"]["p99_us"], send_lag_p99_us=r["metrics"]["send_lag"]["p99_us"],
               service_p50_us=r["metrics"]["service"]["p50_us"], service_p99_us=r["metrics"]["service"]["p99_us"],
               saturated=r["saturated"], errors=sum(r["totals"]["errors"].values()))
elif (row, tool) == ("fixed", "tcpkali"):
    t = tcpkali()
    msgs = (t["rcvd"] - int(kv["upgrade_len"]) * out["held"]) / int(kv["frame"])
    out["msgs_per_s"] = msgs / t["duration"]
    if "lat_ms" in t:
        out.update(rtt_p50_us=t["lat_ms"][0] * 1000, rtt_p99_us=t["lat_ms"][1] * 1000)
elif (row, tool) == ("closed", "barrage"):
    r = report()
    steady = [p for p in r["phases"] if p["name"] == "steady"][0]
    out.update(msgs_per_s=steady["achieved_rate"], rtt_p50_us=r["metrics"]["rtt"]["p50_us"],
               rtt_p99_us=r["metrics"]["rtt"]["p99_us"])
    out["cpu_s_per_million"] = cpu / sum(p["messages"]["received"] for p in r["phases"]) * 1e6
elif (row, tool) == ("flood", "raw-tcp"):
    line = open(f"{d}/stdout").read()
    n = int(line.split("messages=")[1].split()[0])
    out.update(msgs_per_s=n / float(line.split("seconds=")[1].split()[0]), msgs_per_cpu_s=n / cpu)
elif (row, tool) == ("closed", "raw-tcp"):
    line = open(f"{d}/stdout").read()
    n = int(line.split("round_trips=")[1].split()[0])
    secs = float(line.split("seconds=")[1].split()[0])
    out.update(msgs_per_s=n / secs, cpu_s_per_million=cpu / n * 1e6)
print(json.dumps(out))
PY
}

# A row that failed to parse is reported and left out, not fatal: the other
# runs still make a table.
emit() { local line; if line=$(row "$@"); then record "$line"; else echo "efficiency: no figures from $4 (see its stdout/stderr)" >&2; fi; }

# barrage's command line for a scenario against this run's server, into
# CMD. Only report.json is written: the HTML page and .hlog files are not
# used here and would add to the CPU time measured.
barrage_cmd() {
  local scenario=$1; shift
  CMD=("$BIN" run "$scenario" --target "ws://127.0.0.1:$PORT/" --no-tui --quiet --format json --out "$D" "$@")
}
# The time columns of a timed_run, for row().
time_args() { echo user="$CPU_USER" sys="$CPU_SYS" wall="$WALL" maxrss="$MAXRSS" $(cpu_args); }
cpu_args() { echo server_pct="$SERVER_PCT" core0_pct="$CORE0_PCT" core1_pct="$CORE1_PCT" other_pct="$OTHER_PCT" overflows="$OVERFLOWS"; }

# tcpkali's own reads before its first connection (configuration, /proc
# files, and taskset's before it execs: about 18 KB here), for telling from its rchar when its connections
# have all upgraded (row(), tcpkali_upgraded): a one-connection idle run's
# final rchar less that connection's 1 + 183 bytes.
RCHAR_BASE=0
if [ $HAVE_TK = 1 ] && { want idle || want open; }; then
  D="$OUT/tcpkali-calibration"; mkdir -p "$D"; start_server
  probed_run "$TK" -w 1 --ws -c 1 --connect-rate 10k --connect-timeout 10s --source-ip "$(src_ip)" -T 0.5s "127.0.0.1:$PORT/"
  stop_server
  RCHAR_BASE=$(awk -v u="$UPGRADE_LEN" '$1 != "rusage" && NF == 3 { r = $3 } END { print r - 1 - u }' "$D/samples")
  echo "efficiency: tcpkali reads $RCHAR_BASE bytes before connecting" >&2
fi
# Row c's cap on the opening rate, the same for both tools: barrage's is in
# its scenario, so tcpkali's is read from there.
OPEN_CAP=$(sed -nE 's/^connections:.*rate: ([0-9]+)\/s.*/\1/p' bench/scenarios/connect-10k.yaml)

python3 - "$RUNS" "$ONLY" "$SERVER_NAME" "$HAVE_TK" "$UPGRADE_LEN" "$RCHAR_BASE" "$OPEN_CAP" "$STAMP" "${NOTES[@]}" >> "$ROWS" <<'PY'
import json, sys
runs, only, server, have_tk, ulen, rbase, cap, stamp, *notes = sys.argv[1:]
print(json.dumps({"row": "meta", "runs": int(runs), "rows": only.split(","), "server": server,
                  "tcpkali": have_tk == "1", "upgrade_response_bytes": int(ulen), "tcpkali_rchar_base": int(rbase),
                  "open_cap_per_s": int(cap), "stamp": stamp, "notes": notes}))
PY

# Every tcpkali run gets --connect-timeout 10s, barrage's timeout in these
# scenarios, instead of its 1 s default: with 1 s, a connection that waits
# for a SYN retransmit (a full accept queue) or a busy moment is given up
# and another opened while the first may still complete. Its 100-connection
# runs open at 1,000/s (0.1 s, before its -T starts): at 10,000/s its
# orchestrator outruns its flooding worker (count_held) and it held 130 to
# 256 connections instead of 100; at 1,000/s it held 100 every time.
if want flood; then
  echo "== flood: 100 connections, 64 B, as fast as possible, 10 s" >&2
  for i in $(seq "$RUNS"); do
    D="$OUT/flood-barrage-$i"; mkdir -p "$D"; start_server
    barrage_cmd bench/scenarios/flood.yaml; timed_run "${CMD[@]}"
    stop_server
    emit flood barrage "$i" "$D" $(time_args)
    if [ $HAVE_TK = 1 ]; then
      D="$OUT/flood-tcpkali-$i"; mkdir -p "$D"; start_server
      # tcpkali takes host:port[/path], not a ws:// URL; --ws upgrades. One
      # worker thread: it is pinned to one CPU, as barrage is.
      count_held 5
      timed_run "$TK" -w 1 --ws -c 100 --connect-rate 1k --connect-timeout 10s -m "$MSG" --source-ip "$(src_ip)" -T 10s "127.0.0.1:$PORT/"
      wait_held; stop_server
      emit flood tcpkali "$i" "$D" $(time_args) held="$HELD" upgrade_len="$UPGRADE_LEN" frame=$FRAME
    fi
    # The ceiling of the same pipeline: 100 connections x 64 in flight of
    # 66-byte messages (a 64 B text frame as the server sends it) over
    # plain TCP, a write per batch of replies read, nothing framed, parsed
    # or timed (bench/raw_tcp.rs pipeline). tcpkali never waits for a
    # reply, so its writes are ~1,500 messages each; a tool that keeps 64
    # in flight writes at most 64.
    D="$OUT/flood-raw-tcp-$i"; mkdir -p "$D"; wait_quiet
    PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
    taskset -c 1 "$RAW" server "127.0.0.1:$PORT" & SERVER=$!; wait_port
    timed_run "$RAW" pipeline "127.0.0.1:$PORT" 100 10 66 64
    stop_server
    emit flood raw-tcp "$i" "$D" $(time_args)
  done
fi

# RSS is read at a fixed time into the hold (6 s after every connection is
# open), not at its peak: the peak catches the opening's transient buffers,
# the hold is what a held connection costs. hold.yaml holds for 10 s;
# tcpkali holds 12 s after its ramp-up (-T), idle (no -m).
if want idle; then
  echo "== idle: RSS during the hold at 100 and 10,000 connections" >&2
  for i in $(seq "$RUNS"); do
    for n in 100 10000; do
      D="$OUT/idle-$n-barrage-$i"; mkdir -p "$D"; start_server
      barrage_cmd bench/scenarios/hold.yaml --connections "$n"; probed_run "${CMD[@]}"
      stop_server
      emit idle barrage "$i" "$D" conns=$n at_ms=6000 $(cpu_args)
      if [ $HAVE_TK = 1 ]; then
        D="$OUT/idle-$n-tcpkali-$i"; mkdir -p "$D"; start_server
        count_held 5
        probed_run "$TK" -w 1 --ws -c "$n" --connect-rate 10k --connect-timeout 10s --source-ip "$(src_ip)" \
          -T 12s "127.0.0.1:$PORT/"
        wait_held; stop_server
        emit idle tcpkali "$i" "$D" conns=$n at_ms=6000 $(cpu_args) held="$HELD" upgrade_len="$UPGRADE_LEN" rchar_base="$RCHAR_BASE"
      fi
    done
  done
fi

# Opening speed, from the tool's exec to its 10,000th completed upgrade,
# both capped at the same rate (connect-10k.yaml's, 20,000/s): a higher cap
# does not speed barrage up, and makes tcpkali overrun uWS's accept queue
# (backlog 512), whose dropped SYNs wait 1 s for a retransmit, and open far
# more connections than asked: that measures the collision, not the tool.
if want open; then
  echo "== open: 10,000 connections, opens per second" >&2
  for i in $(seq "$RUNS"); do
    D="$OUT/open-barrage-$i"; mkdir -p "$D"; start_server
    barrage_cmd bench/scenarios/connect-10k.yaml; probed_run "${CMD[@]}"
    stop_server
    emit open barrage "$i" "$D" conns=10000 $(cpu_args)
    if [ $HAVE_TK = 1 ]; then
      D="$OUT/open-tcpkali-$i"; mkdir -p "$D"; start_server
      count_held 4
      probed_run "$TK" -w 1 --ws -c 10000 --connect-rate "$OPEN_CAP" --connect-timeout 10s --source-ip "$(src_ip)" \
        -T 6s "127.0.0.1:$PORT/"
      wait_held; stop_server
      emit open tcpkali "$i" "$D" conns=10000 $(cpu_args) held="$HELD" upgrade_len="$UPGRADE_LEN" rchar_base="$RCHAR_BASE"
    fi
  done
fi

# Latency at a rate both tools hold easily: what each adds to a round trip.
# tcpkali times a message from its write to the first sight of the marker
# (the whole 64-byte text, which occurs once per echo) in what it reads.
if want fixed; then
  echo "== fixed: 10,000 msg/s over 100 connections, rtt" >&2
  for i in $(seq "$RUNS"); do
    D="$OUT/fixed-barrage-$i"; mkdir -p "$D"; start_server
    barrage_cmd bench/scenarios/fixed-10k.yaml; timed_run "${CMD[@]}"
    stop_server
    emit fixed barrage "$i" "$D" $(time_args)
    if [ $HAVE_TK = 1 ]; then
      D="$OUT/fixed-tcpkali-$i"; mkdir -p "$D"; start_server
      count_held 5
      timed_run "$TK" -w 1 --ws -c 100 --connect-rate 1k --connect-timeout 10s -m "$MSG" --message-rate 100 --source-ip "$(src_ip)" \
        --latency-marker "$MSG" --latency-percentiles 50,99 -T 10s "127.0.0.1:$PORT/"
      wait_held; stop_server
      emit fixed tcpkali "$i" "$D" $(time_args) held="$HELD" upgrade_len="$UPGRADE_LEN" frame=$FRAME
    fi
  done
fi

# tcpkali has no closed loop (one message in flight per connection), so this
# row puts barrage against the machine's ceiling instead: the same ping-pong
# over plain TCP with no WebSocket framing (bench/raw_tcp.rs, as in
# bench/run.sh section 1).
if want closed; then
  echo "== closed: 100 connections x 1 in flight, 64 B, round trips per second" >&2
  for i in $(seq "$RUNS"); do
    D="$OUT/closed-barrage-$i"; mkdir -p "$D"; start_server
    barrage_cmd bench/scenarios/throughput.yaml; timed_run "${CMD[@]}"
    stop_server
    emit closed barrage "$i" "$D" $(time_args)

    D="$OUT/closed-raw-tcp-$i"; mkdir -p "$D"; wait_quiet
    PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
    taskset -c 1 "$RAW" server "127.0.0.1:$PORT" & SERVER=$!; wait_port
    timed_run "$RAW" client "127.0.0.1:$PORT" 100 10 64
    stop_server
    emit closed raw-tcp "$i" "$D" $(time_args)
  done
fi

python3 bench/efficiency_summary.py "$ROWS" > bench/EFFICIENCY.md
echo "wrote bench/EFFICIENCY.md (raw data in $OUT, $(( $(date +%s) - T_START )) s)" >&2
