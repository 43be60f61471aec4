#!/usr/bin/env bash
# Runs one peer load tool once against the barrage echo server at
# ws://127.0.0.1:9001/ (start it first, e.g. on CPU 0:
#   taskset -c 0 barrage serve --listen 127.0.0.1:9001 --workers 1)
# with the workload of artillery-echo.yml / tsung-echo.xml (100 connections,
# closed send-64-byte-text / wait-for-echo loops, 3 s ramp, 10 s measured
# window at full concurrency, ~15 s of load in total), pinned to CPU 1.
#
# Usage: run-peer.sh artillery|tsung
# Prints exactly one line to stdout:
#   tool=T messages=N seconds=S msgs_per_s=R cpu_s=C peak_rss_mb=M
# Everything else (tool output, logs, reports) goes to stderr or to a temp dir
# whose path is printed on stderr (kept for inspection).
#
# How each number is obtained:
#   messages    echoes completed inside the 10 s measured window, from the
#               tool's own accounting:
#               - artillery: counter "echo.window_completed" of the final
#                 JSON report (aggregate.counters); each virtual user counts
#                 the echoes (matched replies) it received between 3 s and
#                 13 s after the first user started (artillery-echo-processor.js).
#               - tsung: sum of the "stats: request" interval counts of the 10
#                 one-second stats dumps in tsung.log that follow the first
#                 dump showing "users 100" (ramp done); with ack="parse" a
#                 request completes when its reply frame arrived.
#   seconds     length of that window: 10 for artillery (wall clock, in the
#               processor); for tsung the difference of the dump timestamps
#               (whole seconds, 10 when dumps are on time).
#   msgs_per_s  messages / seconds.
#   cpu_s       user+sys CPU seconds of the whole tool run (startup, load,
#               report), from /usr/bin/time %U+%S (includes waited-for
#               children; Artillery's workers are threads of one process).
#   peak_rss_mb maximum over 200 ms samples of the summed RSS of the tool's
#               process tree (the process under /usr/bin/time and all its
#               descendants), in MiB; same method for both tools. Sampling can
#               miss a short spike, so the result is raised to /usr/bin/time's
#               %M (kernel high-water RSS of the largest single process) when
#               that is larger: Artillery runs as one node process (workers
#               are threads), for which %M is exact. Tsung's epmd daemon
#               detaches from the tree and is not counted (it is ~1 MB).
set -euo pipefail

TOOL="${1:-}"
case "$TOOL" in
  artillery|tsung) ;;
  *) echo "usage: $0 artillery|tsung" >&2; exit 2 ;;
esac

PEERS_DIR="$(cd "$(dirname "$0")" && pwd)"
BENCH_DIR="$(dirname "$PEERS_DIR")"
ARTILLERY="${ARTILLERY:-$BENCH_DIR/.tools/node_modules/.bin/artillery}"
TSUNG="${TSUNG:-/usr/bin/tsung}"
CPU="${PEER_CPU:-1}"
HARD_TIMEOUT="${PEER_TIMEOUT:-120}"   # seconds; the load itself lasts ~15 s

if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi

# The echo server must be up.
if ! (exec 3<>/dev/tcp/127.0.0.1/9001) 2>/dev/null; then
  echo "no server on 127.0.0.1:9001" >&2
  exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/run-peer-$TOOL.XXXXXX")"
echo "run-peer: $TOOL, files in $TMP" >&2

case "$TOOL" in
  artillery)
    export ARTILLERY_DISABLE_TELEMETRY=true
    CMD=("$ARTILLERY" run --output "$TMP/report.json" "$PEERS_DIR/artillery-echo.yml")
    ;;
  tsung)
    # 1 s stats dumps (default 10 s) so the 10 s window can be cut out.
    export ERL_FLAGS="-tsung_controller dumpstats_interval 1000"
    CMD=("$TSUNG" -n -f "$PEERS_DIR/tsung-echo.xml" -l "$TMP/log" start)
    ;;
esac

# Start the tool (pinned) under /usr/bin/time, in the background.
timeout "$HARD_TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$TMP/time.txt" \
  taskset -c "$CPU" "${CMD[@]}" >"$TMP/tool.out" 2>"$TMP/tool.err" &
ROOT=$!

# All descendants of a pid (recursive pgrep -P).
descendants() {
  local c
  for c in $(pgrep -P "$1" || true); do
    echo "$c"
    descendants "$c"
  done
}

# Sample the summed RSS (KiB) of the tool tree every 200 ms while it runs.
# The tree sampled = children of the /usr/bin/time process (the tool) and
# their descendants; `timeout` and `time` themselves are left out.
peak_kb=0
while kill -0 "$ROOT" 2>/dev/null; do
  pids=""
  for tp in $(pgrep -P "$ROOT" || true); do            # /usr/bin/time
    for p in $(pgrep -P "$tp" || true); do             # the tool
      pids="$pids $p $(descendants "$p" | tr '\n' ' ')"
    done
  done
  if [ -n "${pids// /}" ]; then
    kb=$( (ps -o rss= -p "$(echo $pids | tr ' ' ',')" 2>/dev/null || true) \
           | awk '{s += $1} END {print s + 0}')
    if [ "$kb" -gt "$peak_kb" ]; then peak_kb=$kb; fi
  fi
  sleep 0.2
done
rc=0
wait "$ROOT" || rc=$?
cat "$TMP/tool.out" >&2
if [ "$rc" -ne 0 ]; then
  echo "run-peer: $TOOL exited with status $rc (124 = hard timeout)" >&2
  tail -n 30 "$TMP/tool.err" >&2 || true
  exit 1
fi

read -r wall usr sys maxrss_kb < <(tail -n 1 "$TMP/time.txt")
echo "run-peer: /usr/bin/time wall=${wall}s user=${usr}s sys=${sys}s max_single_rss=${maxrss_kb}KiB; sampled tree peak=${peak_kb}KiB" >&2
if [ "$maxrss_kb" -gt "$peak_kb" ]; then peak_kb=$maxrss_kb; fi

case "$TOOL" in
  artillery)
    messages=$(jq -r '.aggregate.counters["echo.window_completed"] // empty' "$TMP/report.json")
    seconds=10
    jq -c '.aggregate.counters' "$TMP/report.json" >&2
    ;;
  tsung)
    LOGFILE=$(ls -d "$TMP"/log/*/tsung.log | head -n 1)
    # Blocks start with "# stats: dump at TS"; per block take "users" (current
    # count) and the interval count of "request". Window: the 10 blocks after
    # the first one showing 100 users.
    read -r messages seconds < <(awk '
      /^# stats: dump at / { n++; ts[n] = $5; next }
      /^stats: users / && n > 0 { users[n] = $3 }
      /^stats: request / && n > 0 { req[n] = $3 }
      END {
        for (i = 1; i <= n; i++) if (users[i] >= 100) { first = i; break }
        if (!first || first + 10 > n) { print "", ""; exit }
        for (i = first + 1; i <= first + 10; i++) sum += req[i]
        print sum, ts[first + 10] - ts[first]
      }' "$LOGFILE")
    grep -E '^stats: (users|request|connect|error|connected|websocket)' "$LOGFILE" | tail -n 8 >&2 || true
    ;;
esac

if [ -z "${messages:-}" ] || [ -z "${seconds:-}" ] || [ "$seconds" -le 0 ]; then
  echo "run-peer: could not read the message count for $TOOL (see $TMP)" >&2
  exit 1
fi

awk -v t="$TOOL" -v m="$messages" -v s="$seconds" -v u="$usr" -v y="$sys" -v k="$peak_kb" 'BEGIN {
  printf "tool=%s messages=%d seconds=%.1f msgs_per_s=%.0f cpu_s=%.1f peak_rss_mb=%.0f\n",
         t, m, s, m / s, u + y, k / 1024
}'
