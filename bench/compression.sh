#!/usr/bin/env bash
# What permessage-deflate costs and saves, against real peers: Python
# `websockets`, Node `ws` and `barrage serve`, each without and with
# compression (context takeover on, and off on both sides), the same load
# (bench/scenarios/compression.yaml). Prints a Markdown table of message
# bytes, wire bytes and rtt per run; medians of RUNS runs. Last results:
# bench/COMPRESSION.md.
#
#   bench/compression.sh        # RUNS=3; the table goes into bench/COMPRESSION.md
#
# The peer is pinned to CPU 0 and barrage to CPU 1; all traffic is loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=bench/out/compression-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
cargo build --release --bin barrage >&2
bash scripts/install-peers.sh
BIN=target/release/barrage

# start_peer NAME ARGS...: starts a peer on a free port, sets PEER and PORT.
start_peer() {
  local name=$1; shift
  case $name in
    python) PYTHONPATH=.peers/python taskset -c 0 python3 tests/peers/ws_echo.py --port 0 "$@" > "$OUT/port" & PEER=$! ;;
    node) NODE_PATH=.peers/node/node_modules taskset -c 0 node tests/peers/ws_echo.js --port 0 "$@" > "$OUT/port" & PEER=$! ;;
    barrage)
      PORT=$((9300 + RANDOM % 500))
      taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --workers 1 "$@" 2>/dev/null & PEER=$!
      for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done
      return 1 ;;
  esac
  for _ in $(seq 100); do grep -q LISTENING "$OUT/port" 2>/dev/null && break; sleep 0.05; done
  PORT=$(awk '/LISTENING/ {print $2}' "$OUT/port")
}
stop_peer() { kill "$PEER" 2>/dev/null || true; wait "$PEER" 2>/dev/null || true; }

echo '| peer | compression | message bytes sent / received | wire bytes sent / received | wire ÷ message | rtt p50 | rtt p99 |'
echo '|---|---|---|---|---|---|---|'
for peer in python node barrage; do
  for mode in none deflate no-takeover; do
    case $mode in
      none) server_args=(); yaml="compression: none" ;;
      deflate) server_args=(--compression); yaml="compression: deflate" ;;
      no-takeover)
        server_args=(--compression --no-context-takeover)
        yaml="compression: { method: deflate, client_no_context_takeover: true, server_no_context_takeover: true }" ;;
    esac
    scenario="$OUT/$peer-$mode.yaml"
    { cat bench/scenarios/compression.yaml; echo "$yaml"; } > "$scenario"
    for run in $(seq "$RUNS"); do
      start_peer "$peer" "${server_args[@]}"
      taskset -c 1 $BIN run "$scenario" --target "ws://127.0.0.1:$PORT/" --no-tui --quiet \
        --out "$OUT/$peer-$mode-$run" > /dev/null 2>&1 || true
      stop_peer
    done
    python3 - "$OUT" "$peer" "$mode" "$RUNS" <<'PY'
import json, statistics, sys
out, peer, mode, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
reps = [json.load(open(f"{out}/{peer}-{mode}-{r}/report.json")) for r in range(1, runs + 1)]
med = lambda f: statistics.median(f(r) for r in reps)
b = lambda k: med(lambda r: r["totals"]["bytes"][k])
ms, mr, ws, wr = b("sent"), b("received"), b("wire_sent"), b("wire_received")
p50 = med(lambda r: r["metrics"]["rtt"]["p50_us"])
p99 = med(lambda r: r["metrics"]["rtt"]["p99_us"])
comp = min(r["totals"]["connections"]["compressed"] for r in reps)
errs = max(sum(r["totals"]["errors"].values()) for r in reps)
note = f" ({comp} compressed)" if mode != "none" else ""
note += f", {errs} errors" if errs else ""
print(f"| {peer} | {mode}{note} | {ms:,.0f} / {mr:,.0f} | {ws:,.0f} / {wr:,.0f} | {(ws + wr) / (ms + mr):.3f} | {p50:.0f} µs | {p99:.0f} µs |")
PY
  done
done
