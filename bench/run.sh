#!/usr/bin/env bash
# The benchmark suite: barrage against the tools users would pick instead, on
# this machine, in one run. Needs the README's set-up (the Rust toolchain);
# installs the peers (Artillery from npm, Tsung from Debian) where missing.
#
#   bench/run.sh            # RUNS=3 by default; results in bench/RESULTS.md
#   RUNS=5 bench/run.sh
#
# Every load goes to 127.0.0.1; the server is pinned to CPU 0 and the load
# tool to CPU 1. Each figure is the median of RUNS runs; ratios compare
# medians measured in this same run. Benchmarks are not tests: CI times nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PORT=9001
OUT=bench/out/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
git rev-parse --short HEAD > "$OUT/commit" 2>/dev/null || true

cargo build --release --bin barrage --example raw_tcp >&2
bench/install-peers.sh
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
BIN=target/release/barrage
RAW=target/release/examples/raw_tcp

wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# Every barrage run gets a server on a port not used before in this run:
# reusing one would make new connections collide with the previous run's
# TIME_WAIT sockets and wait for SYN retransmits. Peers are set up for 9001.
NEXT_PORT=9100
start_server() {
  PORT=${1:-$NEXT_PORT}; NEXT_PORT=$((NEXT_PORT + 1))
  taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --workers 1 2>/dev/null & SERVER=$!; wait_port
}
stop_server() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
record() { echo "$1" >> "$RESULTS"; echo "$1" >&2; }

# Runs barrage pinned to CPU 1 with /usr/bin/time; prints "wall user sys maxrss_kb".
run_barrage() {
  local scenario=$1 dir=$2; shift 2
  /usr/bin/time -o "$dir/time" -f '%e %U %S %M' taskset -c 1 $BIN run "$scenario" --target "ws://127.0.0.1:$PORT/" \
    --out "$dir" --quiet "$@" > "$dir/stdout" 2>&1 || true
  cat "$dir/time"
}

# Peak RSS (KB) of process $1 sampled every 100 ms until it exits.
sample_rss() {
  local pid=$1 max=0 r
  while kill -0 "$pid" 2>/dev/null; do
    r=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ -n "$r" ] && [ "$r" -gt "$max" ] && max=$r
    sleep 0.1
  done
  echo "$max"
}

# One result line for a barrage run in $2 (bench name $1), from its
# report.json and /usr/bin/time's user, sys and peak RSS ($3 $4 $5).
barrage_row() {
  python3 - "$@" <<'PY'
import json, sys
bench, d, user, sys_, rss = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
r = json.load(open(f"{d}/report.json"))
p = [p for p in r["phases"] if p["name"] == "steady"][0]
m = p["metrics"]
total = sum(x["messages"]["sent"] for x in r["phases"])
cpu = user + sys_
row = {"bench": bench, "tool": "barrage", "msgs_per_s": p["achieved_rate"],
  "cpu_s_per_million": cpu / total * 1e6 if total else None, "msgs_per_cpu_s": total / cpu if cpu else None,
  "cpu_pct": cpu / r["duration_s"] * 100, "peak_rss_mb": rss / 1024,
  "rtt_p50_us": m["rtt"]["p50_us"], "rtt_p99_us": m["rtt"]["p99_us"], "send_lag_p99_us": m["send_lag"]["p99_us"],
  "saturated": p["saturated"]}
if p["target_rate"]:
    row["target"] = p["target_rate"]
    row["rate_error_pct"] = (p["achieved_rate"] / p["target_rate"] - 1) * 100
print(json.dumps(row))
PY
}

echo "== 1. closed-model throughput: 100 connections, 64 B echo, 10 s" >&2
for i in $(seq "$RUNS"); do
  start_server
  d="$OUT/throughput-barrage-$i"; mkdir -p "$d"
  read -r wall user sys rss < <(run_barrage bench/scenarios/throughput.yaml "$d")
  stop_server
  barrage_row throughput "$d" "$user" "$sys" "$rss" >> "$RESULTS"
  tail -1 "$RESULTS" >&2

  PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
  taskset -c 0 $RAW server 127.0.0.1:$PORT & RAWSRV=$!; wait_port
  line=$(/usr/bin/time -o "$OUT/raw-time" -f '%e %U %S %M' taskset -c 1 $RAW client 127.0.0.1:$PORT 100 10 64)
  kill $RAWSRV; wait $RAWSRV 2>/dev/null || true
  read -r wall user sys rss < "$OUT/raw-time"
  n=$(echo "$line" | sed -E 's/.*round_trips=([0-9]+).*/\1/')
  record "$(python3 -c "import json;print(json.dumps({'bench':'throughput','tool':'raw-tcp','msgs_per_s':$n/10,'cpu_s_per_million':($user+$sys)/$n*1e6,'peak_rss_mb':$rss/1024}))")"

  for peer in artillery tsung; do
    start_server 9001
    if line=$(bench/peers/run-peer.sh $peer 2>"$OUT/$peer-$i.log"); then
      record "$(python3 - "$line" <<'PY'
import json, sys
kv = dict(x.split("=", 1) for x in sys.argv[1].split())
m = float(kv["messages"])
print(json.dumps({"bench": "throughput", "tool": kv["tool"], "msgs_per_s": float(kv["msgs_per_s"]),
  "cpu_s_per_million": float(kv["cpu_s"]) / m * 1e6 if m else None, "peak_rss_mb": float(kv["peak_rss_mb"])}))
PY
)"
    else
      echo "$peer run $i failed, see $OUT/$peer-$i.log" >&2
    fi
    stop_server
  done
done

echo "== 2. pipelined flood: 100 connections x 64 in flight, 10 s" >&2
for i in $(seq "$RUNS"); do
  start_server
  d="$OUT/flood-$i"; mkdir -p "$d"
  read -r wall user sys rss < <(run_barrage bench/scenarios/flood.yaml "$d")
  stop_server
  barrage_row flood "$d" "$user" "$sys" "$rss" >> "$RESULTS"
  tail -1 "$RESULTS" >&2
done

echo "== 3. open-model precision: 20,000 msg/s over 1,000 connections" >&2
for i in $(seq "$RUNS"); do
  start_server
  d="$OUT/open-$i"; mkdir -p "$d"
  read -r wall user sys rss < <(run_barrage bench/scenarios/open-20k.yaml "$d")
  stop_server
  barrage_row open "$d" "$user" "$sys" "$rss" >> "$RESULTS"
  tail -1 "$RESULTS" >&2
done

echo "== 4. connection scale: idle connections held" >&2
for n in 1 1000 10000 19000; do
  for i in $(seq "$RUNS"); do
    start_server
    d="$OUT/hold-$n-$i"; mkdir -p "$d"
    taskset -c 1 $BIN run bench/scenarios/hold.yaml --connections "$n" --target "ws://127.0.0.1:$PORT/" \
      --out "$d" --quiet > "$d/stdout" 2>&1 &
    pid=$!
    rss=$(sample_rss $pid)
    wait $pid || true
    stop_server
    python3 - "$d" "$n" "$rss" >> "$RESULTS" <<'PY'
import json, sys
d, n, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(f"{d}/report.json"))
c = r["totals"]["connections"]
print(json.dumps({"bench": "hold", "tool": "barrage", "connections": n, "opened": c["opened"],
  "open_rate": c["open_rate"], "peak_rss_mb": rss / 1024,
  "connect_p99_us": r["metrics"]["connect"]["p99_us"]}))
PY
    tail -1 "$RESULTS" >&2
  done
done

echo "== 5. dashboard cost: the throughput run with the dashboard (in tmux) and without" >&2
command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux >/dev/null; }
for i in $(seq "$RUNS"); do
  for mode in tui no-tui; do
    start_server
    d="$OUT/tui-$mode-$i"; mkdir -p "$d"
    flag=""; [ "$mode" = no-tui ] && flag="--no-tui"
    tmux new-session -d -s "bench-tui-$$" -x 160 -y 48 \
      "taskset -c 1 $BIN run bench/scenarios/throughput.yaml --target ws://127.0.0.1:$PORT/ --out $d $flag > /dev/null 2>&1; touch $d/done"
    while [ ! -e "$d/done" ]; do sleep 0.5; done
    tmux kill-session -t "bench-tui-$$" 2>/dev/null || true
    stop_server
    python3 - "$d" "$mode" >> "$RESULTS" <<'PY'
import json, sys
d, mode = sys.argv[1], sys.argv[2]
r = json.load(open(f"{d}/report.json"))
p = [p for p in r["phases"] if p["name"] == "steady"][0]
print(json.dumps({"bench": "tui", "tool": mode, "msgs_per_s": p["achieved_rate"]}))
PY
    tail -1 "$RESULTS" >&2
  done
done

python3 bench/summarize.py "$RESULTS" "$RUNS" > bench/RESULTS.md
echo "wrote bench/RESULTS.md (raw data in $OUT)" >&2
