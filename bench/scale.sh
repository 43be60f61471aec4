#!/usr/bin/env bash
# Scale: 100,000 WebSocket connections held for 60 s on this machine
# (bench/scenarios/hold-100k.yaml): `barrage run --processes 8` against
# `barrage serve --processes 8`, both over SO_REUSEPORT / source addresses
# 127.0.0.2-9. Samples the RSS of every client and server process every
# 5 s and prints a markdown table: connections open, connect rate, message
# rate, errors, client and server RSS in total and per connection.
#
#   bench/scale.sh              # ~2 minutes; results in bench/RESULTS.md
#   PROCS=6 bench/scale.sh      # another split
#   CONNECT_RATE=30000/s bench/scale.sh   # how fast connections open
#
# Not a test: CI never runs it. All traffic is loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
PROCS=${PROCS:-8}
CONNECT_RATE=${CONNECT_RATE:-10000/s}
OUT=bench/out/scale-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
sed "s|rate: 10000/s, timeout|rate: $CONNECT_RATE, timeout|" bench/scenarios/hold-100k.yaml > "$OUT/hold-100k.yaml"
cargo build --release --bin barrage >&2
BIN=target/release/barrage
# A previous 100k run leaves up to 100,000 sockets in TIME_WAIT for 60 s;
# new connections that meet them stall on SYN retries (a 14 s connect p99
# in a run started 10 s after another). Start clean.
for _ in $(seq 1 120); do
  [ "$(ss -tan state time-wait | wc -l)" -lt 1000 ] && break
  sleep 1
done
$BIN serve --listen 127.0.0.1:9400 --processes "$PROCS" 2> "$OUT/serve.log" & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1

# The sum of VmRSS (KiB) of the children of $1.
rss_of_children() {
  local total=0 pid
  for pid in $(ps --ppid "$1" -o pid= 2>/dev/null); do
    local kib
    kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  echo $total
}

$BIN run "$OUT/hold-100k.yaml" --processes "$PROCS" --no-tui \
  --out "$OUT/run" > "$OUT/run.log" 2>&1 & CLIENT=$!
printf 't_s\tclient_rss_kib\tserver_rss_kib\n' > "$OUT/rss.tsv"
t=0
while kill -0 $CLIENT 2>/dev/null; do
  printf '%s\t%s\t%s\n' "$t" "$(rss_of_children $CLIENT)" "$(rss_of_children $SERVER)" >> "$OUT/rss.tsv"
  sleep 5; t=$((t + 5))
done
wait $CLIENT || true

python3 - "$OUT" "$PROCS" <<'PY'
import csv, json, sys
out, procs = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{out}/run/report.json"))
c, m = r["totals"]["connections"], r["totals"]["messages"]
rows = list(csv.DictReader(open(f"{out}/rss.tsv"), delimiter="\t"))
tl = r["timeline"]
# Steady state: samples while every connection was open (the hold phase).
hold = [p for p in tl if p.get("phase") == "hold"]
peak_open = max((p["open"] for p in tl), default=0)
client = max(int(x["client_rss_kib"]) for x in rows)
server = max(int(x["server_rss_kib"]) for x in rows)
ph = r["phases"][0]
errs = sum(r["totals"]["errors"].values())
rtt = r["metrics"].get("rtt", {})
def us(v): return f"{v:.0f} µs" if v < 1000 else f"{v/1000:.2f} ms"
print(f"| processes (client / server) | {procs} / {procs} |")
print(f"| connections opened / failed | {c['opened']:,} / {c['failed']:,} |")
print(f"| peak open (the largest second of the shards' per-second peaks added) | {c['peak_open']:,} |")
print(f"| open at once (timeline max) | {peak_open:,} |")
print(f"| connect rate asked / achieved (opened per second of ramp) | {r['scenario']['connection_rate']:,.0f}/s / {c['open_rate']:,.0f}/s |")
cs = r["metrics"].get("connect", {}); hs = r["metrics"].get("handshake", {})
print(f"| connect p50 / p99, handshake p50 / p99 | {us(cs.get('p50_us',0))} / {us(cs.get('p99_us',0))}, {us(hs.get('p50_us',0))} / {us(hs.get('p99_us',0))} |")
print(f"| hold phase | {ph['duration_s']:.1f} s, target {ph['target_rate']:,.0f} msg/s, achieved {ph['achieved_rate']:,.0f} msg/s |")
print(f"| messages sent / received | {m['sent']:,} / {m['received']:,} |")
print(f"| errors (all kinds) | {errs:,} |")
print(f"| rtt p50 / p99 / p99.9 | {us(rtt.get('p50_us',0))} / {us(rtt.get('p99_us',0))} / {us(rtt.get('p999_us',0))} |")
print(f"| client RSS, peak (all shard processes) | {client/1024:,.0f} MiB = {client*1024/max(c['opened'],1)/1024:.1f} KiB per connection |")
print(f"| server RSS, peak (all server processes) | {server/1024:,.0f} MiB = {server*1024/max(c['opened'],1)/1024:.1f} KiB per connection |")
print(f"| verdict | {r['verdict']} |")
PY
echo "raw: $OUT" >&2
