#!/usr/bin/env bash
# Installs the load tools barrage is compared with, by package name, where
# they are missing: Artillery (npm) and Tsung (Debian). Used by bench/run.sh;
# safe to run again.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
TOOLS="$BENCH_DIR/.tools"
mkdir -p "$TOOLS"

if ! command -v tsung >/dev/null 2>&1; then
  echo "installing tsung (Debian)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tsung >/dev/null
fi

if [ ! -x "$TOOLS/node_modules/.bin/artillery" ]; then
  echo "installing artillery (npm) into bench/.tools" >&2
  (cd "$TOOLS" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent artillery@2 >/dev/null)
fi
echo "peers: tsung $(command -v tsung), artillery $TOOLS/node_modules/.bin/artillery" >&2
