#!/usr/bin/env bash
# Capacity under an SLO, two ways, for two servers:
#   - `barrage search` (doubling, then bisecting to 5%), and
#   - a manual step test: fixed-rate `barrage run`s at 60%..140% of the
#     search's answer, the answer being the highest rate whose rtt p99 held.
# Servers: `barrage serve --workers 1` and the Python `websockets` echo peer
# (tests/peers/ws_echo.py). SLO: rtt.p99 < 10ms. The server is pinned to
# CPU 0, barrage to CPU 1; all traffic on 127.0.0.1.
#
#   bench/capacity.sh          # RUNS=3: each figure is the median of 3 searches
#   RUNS=1 bench/capacity.sh
#
# Output: bench/out/capacity-<time>/results.jsonl and a Markdown table on
# stdout (what bench/RESULTS.md section 7 shows).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SLO='rtt.p99 < 10ms'
OUT=bench/out/capacity-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
cargo build --release --bin barrage >&2
bash scripts/install-peers.sh >&2
BIN=target/release/barrage
SCENARIO=bench/scenarios/capacity.yaml
NEXT_PORT=9300

wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
start() {
  PORT=$NEXT_PORT; NEXT_PORT=$((NEXT_PORT + 1))
  case $1 in
    barrage) taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --workers 1 2>/dev/null & ;;
    python) PYTHONPATH=.peers/python taskset -c 0 python3 tests/peers/ws_echo.py --port $PORT >/dev/null & ;;
  esac
  SERVER=$!; wait_port $PORT
}
stop() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

for server in barrage python; do
  for i in $(seq "$RUNS"); do
    start $server
    d="$OUT/$server-search-$i"
    taskset -c 1 $BIN search $SCENARIO --target ws://127.0.0.1:$PORT/ --slo "$SLO" \
      --from 1000/s --to 4000000/s --step 3s --warmup 2s --cooldown 2s --precision 5% \
      --no-tui -q --out "$d" > "$d.stdout" 2>&1 || true
    stop
    cap=$(json "$d/report.json" "r['search']['capacity'] or 0")
    tb=$(json "$d/report.json" "str(r['search']['tester_bound']).lower()")
    echo "{\"server\":\"$server\",\"kind\":\"search\",\"run\":$i,\"capacity\":$cap,\"tester_bound\":$tb}" | tee -a "$RESULTS" >&2
  done
  median=$(python3 - "$RESULTS" "$server" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(statistics.median(r["capacity"] for r in rows if r["server"] == sys.argv[2] and r["kind"] == "search"))
PY
)
  # The manual step test around the search's median answer.
  for pct in 60 80 90 100 110 120 140; do
    rate=$(python3 -c "print(round($median * $pct / 100))")
    start $server
    d="$OUT/$server-step-$pct"
    taskset -c 1 $BIN run $SCENARIO --target ws://127.0.0.1:$PORT/ --rate "$rate/s" --duration 10s \
      --no-tui -q --out "$d" > "$d.stdout" 2>&1 || true
    stop
    p99=$(json "$d/report.json" "r['phases'][0]['metrics']['rtt']['p99_us']")
    sat=$(json "$d/report.json" "str(r['saturated']).lower()")
    echo "{\"server\":\"$server\",\"kind\":\"step\",\"pct\":$pct,\"rate\":$rate,\"rtt_p99_us\":$p99,\"saturated\":$sat}" | tee -a "$RESULTS" >&2
  done
done

python3 - "$RESULTS" "$RUNS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| server | `barrage search` capacity (median of %s) | runs | manual step test: highest fixed rate with rtt p99 < 10ms | rtt p99 at each step (%% of the search's answer) | ratio manual / search |" % sys.argv[2])
print("|---|---|---|---|---|---|")
for server in ("barrage", "python"):
    s = [r for r in rows if r["server"] == server and r["kind"] == "search"]
    caps = [r["capacity"] for r in s]
    med = statistics.median(caps)
    tb = " (tester-bound)" if any(r["tester_bound"] for r in s) else ""
    steps = [r for r in rows if r["server"] == server and r["kind"] == "step"]
    ok = [r["rate"] for r in steps if r["rtt_p99_us"] < 10_000 and not r["saturated"]]
    manual = max(ok) if ok else 0
    cells = ", ".join("%d%%: %.2f ms%s" % (r["pct"], r["rtt_p99_us"] / 1000, " SAT" if r["saturated"] else "") for r in steps)
    name = "`barrage serve --workers 1`" if server == "barrage" else "Python `websockets` 15 (tests/peers/ws_echo.py)"
    print("| %s | %s msg/s%s | %s | %s msg/s | %s | %.2f |" % (name, f"{med:,.0f}", tb, ", ".join(f"{c:,.0f}" for c in caps), f"{manual:,}", cells, manual / med if med else 0))
PY
