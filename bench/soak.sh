#!/usr/bin/env bash
# Soak: does a long run stay flat? 5,000 connections at 5,000 msg/s for
# 10 minutes (bench/scenarios/soak.yaml) against `barrage serve`; the
# client's RSS is sampled every 10 s. Prints the samples, the growth from
# the first sample after the ramp to the last, the timeline's length and the
# report's size, next to a 1-minute run's report size (the timeline aside,
# a report should not grow with the run's length).
#
#   bench/soak.sh                 # ~12 minutes; results in bench/SOAK.md
#   DURATION=2m bench/soak.sh     # a shorter look
#
# Not a test: CI never runs it. All traffic is loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10m}
OUT=bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
cargo build --release --bin barrage >&2
BIN=target/release/barrage
taskset -c 0 $BIN serve --listen 127.0.0.1:9501 --workers 1 2>/dev/null & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 0.5

sed "s/duration: 10m/duration: $DURATION/" bench/scenarios/soak.yaml > "$OUT/soak.yaml"
sed "s/duration: 10m/duration: 1m/" bench/scenarios/soak.yaml > "$OUT/minute.yaml"

taskset -c 1 $BIN run "$OUT/minute.yaml" --no-tui --quiet --out "$OUT/minute" > /dev/null 2>&1 || true

taskset -c 1 $BIN run "$OUT/soak.yaml" --no-tui --quiet --out "$OUT/soak" > /dev/null 2>&1 & CLIENT=$!
: > "$OUT/rss.tsv"
t=0
while kill -0 $CLIENT 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$CLIENT/status 2>/dev/null || echo 0)
  [ -n "$rss" ] && [ "$rss" != 0 ] && printf '%s\t%s\n' "$t" "$rss" >> "$OUT/rss.tsv"
  sleep 10; t=$((t + 10))
done
wait $CLIENT || true

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = [tuple(map(int, l.split())) for l in open(f"{out}/rss.tsv") if l.strip()]
# Skip the ramp (first 10 s) and the closing seconds.
steady = [r for r in rows if r[0] >= 20]
first, last = steady[0][1], steady[-1][1]
peak = max(r[1] for r in steady)
rep = json.load(open(f"{out}/soak/report.json"))
minute = json.load(open(f"{out}/minute/report.json"))
size = lambda r: len(json.dumps({k: v for k, v in r.items() if k != "timeline"}))
t = rep["totals"]
print(f"samples (s, RSS KiB): {rows}")
print(f"RSS first steady sample {first} KiB, last {last} KiB, peak {peak} KiB: growth {(last - first) / first * 100:+.1f}%")
print(f"timeline points {len(rep['timeline'])} for {rep['duration_s']:.0f} s")
print(f"report.json without the timeline: {size(rep)} bytes (1-minute run: {size(minute)} bytes); with it {os.path.getsize(out + '/soak/report.json')} bytes")
print(f"messages sent {t['messages']['sent']}, received {t['messages']['received']}, errors {sum(t['errors'].values())}, verdict {rep['verdict']}")
PY
