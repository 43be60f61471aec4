#!/usr/bin/env bash
# Installs what the test suite drives besides barrage itself, so the tests
# never install software: tmux (the dashboard in a real terminal), Chromium
# (report.html rendered headless), man and groff (`barrage man` rendered), and the
# peers of scripts/install-peers.sh (Python `websockets`, Node `ws`,
# kubernetes-validate) into the git-ignored .peers/. Safe to run again:
# what is here is skipped. System packages need root (or sudo) and apt; on
# another system install tmux, chromium and man yourself, or skip their
# tests with BARRAGE_TEST_SKIP=tui,chromium,man (peers: BARRAGE_TEST_SKIP=peers).
#   bash scripts/test-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v man >/dev/null 2>&1 || missing="$missing man-db"
command -v groff >/dev/null 2>&1 || missing="$missing groff-base"
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: no apt-get here; install$missing yourself, or skip their tests with BARRAGE_TEST_SKIP" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
  echo "test-deps: installed$missing"
fi

bash scripts/install-peers.sh
