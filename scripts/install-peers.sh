#!/usr/bin/env bash
# Installs the interop test peers (Python `websockets`, Node `ws`, and
# `kubernetes-validate` for the manifests of `barrage k8s`) into the
# git-ignored folder .peers/ at the repo root. Safe to run repeatedly: a peer
# already installed at its pinned version is skipped.
#   bash scripts/install-peers.sh
# The echo servers in tests/peers/ are then run as:
#   PYTHONPATH=.peers/python python3 tests/peers/ws_echo.py --port 0
#   NODE_PATH=.peers/node/node_modules node tests/peers/ws_echo.js --port 0
set -euo pipefail

PY_WEBSOCKETS_VERSION="15.0.1"
# Kubernetes's own OpenAPI schemas, bundled, for the generated manifests.
K8S_VALIDATE_VERSION="1.37.0"
NODE_WS_VERSION="8.23.0"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="$ROOT/.peers"
PY_DIR="$PEERS/python"
K8S_DIR="$PEERS/k8s-validate"
NODE_DIR="$PEERS/node"

# Only a fresh machine lacks these; this machine has python3 and node already.
apt_done=0
apt_install() {
    if [ "$apt_done" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            python3 python3-pip nodejs npm >/dev/null
        apt_done=1
    fi
}
if ! command -v python3 >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1 \
    || ! command -v npm >/dev/null 2>&1; then
    apt_install
fi

# pip_install DIR SPEC: SPEC (and its dependencies) alone into DIR, afresh.
pip_install() {
    python3 -m pip --version >/dev/null 2>&1 || apt_install
    rm -rf "$1"
    mkdir -p "$1"
    # --break-system-packages is only needed (and only known) by Debian's pip
    # on an externally managed python; --target never touches the system site.
    # --root-user-action silences pip's warning about running as root (CI does).
    local extra=() pip_help
    pip_help="$(python3 -m pip install --help 2>/dev/null || true)"
    case "$pip_help" in *--break-system-packages*) extra+=(--break-system-packages) ;; esac
    case "$pip_help" in *--root-user-action*) extra+=(--root-user-action=ignore) ;; esac
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        "${extra[@]}" --target "$1" "$2"
    echo "peers: $2 installed in ${1#"$ROOT"/}"
}

# Python websockets: the package writes its version into the dist-info folder name.
if [ ! -d "$PY_DIR/websockets-$PY_WEBSOCKETS_VERSION.dist-info" ] || [ ! -d "$PY_DIR/websockets" ]; then
    pip_install "$PY_DIR" "websockets==$PY_WEBSOCKETS_VERSION"
fi

# kubernetes-validate, in its own folder (each install starts its folder afresh).
if [ ! -d "$K8S_DIR/kubernetes_validate-$K8S_VALIDATE_VERSION.dist-info" ]; then
    pip_install "$K8S_DIR" "kubernetes-validate==$K8S_VALIDATE_VERSION"
fi

# Node ws: check the version recorded in its package.json.
ws_pkg="$NODE_DIR/node_modules/ws/package.json"
have_ws=""
if [ -f "$ws_pkg" ]; then
    have_ws="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ws_pkg" | head -n 1)"
fi
if [ "$have_ws" != "$NODE_WS_VERSION" ]; then
    mkdir -p "$NODE_DIR"
    npm install --silent --no-audit --no-fund --save-exact --prefix "$NODE_DIR" "ws@$NODE_WS_VERSION" >/dev/null
    echo "peers: node ws $NODE_WS_VERSION installed in .peers/node"
fi
