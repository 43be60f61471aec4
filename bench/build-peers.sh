#!/usr/bin/env bash
# Builds the two C/C++ peers of bench/efficiency.sh from their public sources:
# tcpkali (the load tool issue 18 compares barrage with) and the uWebSockets
# EchoServer example (the server both tools load). Neither is in Debian's
# archive, so they are built from fetched git mirrors; everything built lands
# in bench/.tools/ (git-ignored): their code is never committed here.
#
#   bench/build-peers.sh            # builds what is missing, then checks a fresh build
#   bench/build-peers.sh --verify   # only the check: tcpkali's WebSocket flood against uws-echo
#
# Sources: $PEER_SRC (default /work/.mirror) holding bare git repositories
#   satori-com+tcpkali/repo, uNetworking+uWebSockets/repo, uNetworking+uSockets/repo.
# A peer whose source is absent is skipped with a plain message, exit 0:
# bench/efficiency.sh says which comparisons that leaves out.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
TOOLS="$BENCH_DIR/.tools"
BIN="$TOOLS/bin"
BUILD="$TOOLS/build"
PEER_SRC=${PEER_SRC:-/work/.mirror}
TCPKALI_GIT="$PEER_SRC/satori-com+tcpkali/repo"
UWS_GIT="$PEER_SRC/uNetworking+uWebSockets/repo"
USOCKETS_GIT="$PEER_SRC/uNetworking+uSockets/repo"
mkdir -p "$BIN" "$BUILD"

# apt-get only for packages really missing: an apt-get update costs tens of
# seconds and the machine may be shared with a compile.
apt_updated=0
need_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "build-peers: installing ${missing[*]} (Debian)" >&2
  if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

is_git() { [ -f "$1/HEAD" ] || git --git-dir="$1" rev-parse --git-dir >/dev/null 2>&1; }

# A fresh, untouched copy of a repository's tree at $2 (default HEAD) in $3.
extract() {
  rm -rf "$3"; mkdir -p "$3"
  git --git-dir="$1" archive "${2:-HEAD}" | tar -x -C "$3"
}

# Builds run at low priority: the benchmark machine is often compiling
# barrage at the same time, and a peer build is never urgent.
NICE="nice -n 10"

build_tcpkali() {
  if [ -x "$BIN/tcpkali" ]; then return 0; fi
  if ! is_git "$TCPKALI_GIT"; then
    echo "build-peers: skipping tcpkali: no source at $TCPKALI_GIT (set PEER_SRC)" >&2
    return 0
  fi
  need_pkgs autoconf automake libtool bison flex make gcc g++ zlib1g-dev libncurses-dev
  local dir="$BUILD/tcpkali"
  extract "$TCPKALI_GIT" HEAD "$dir"
  # glibc 2.32 removed <sys/sysctl.h>. On Linux tcpkali never calls
  # sysctlbyname (configure finds none, and it reads /proc/sys instead), so
  # the include is dead and dropping it is the whole port.
  sed -i '/#include <sys\/sysctl.h>/d' "$dir/src/tcpkali_syslimits.c"
  (
    cd "$dir"
    $NICE autoreconf -i >/dev/null 2>&1 || $NICE autoreconf -iv
    $NICE ./configure -q >/dev/null
    $NICE make -j2 -s >/dev/null 2>"$dir/make.log" || { tail -30 "$dir/make.log" >&2; exit 1; }
  )
  install -m 755 "$dir/src/tcpkali" "$BIN/tcpkali"
  echo "build-peers: built $BIN/tcpkali ($(git --git-dir="$TCPKALI_GIT" rev-parse --short HEAD))" >&2
  built=1
}

build_uws() {
  if [ -x "$BIN/uws-echo" ]; then return 0; fi
  if ! is_git "$UWS_GIT"; then
    echo "build-peers: skipping uws-echo: no uWebSockets source at $UWS_GIT (set PEER_SRC)" >&2
    return 0
  fi
  if ! is_git "$USOCKETS_GIT"; then
    echo "build-peers: skipping uws-echo: no uSockets source at $USOCKETS_GIT (uWebSockets' submodule)" >&2
    return 0
  fi
  need_pkgs make gcc g++ zlib1g-dev
  local dir="$BUILD/uWebSockets"
  extract "$UWS_GIT" HEAD "$dir"
  # uSockets is a submodule: build the commit uWebSockets pins, which the
  # mirror may have moved past; fall back to the mirror's HEAD only if the
  # pinned one is not in it.
  local pin
  pin=$(git --git-dir="$UWS_GIT" ls-tree HEAD uSockets | awk '{print $3}')
  if [ -n "$pin" ] && git --git-dir="$USOCKETS_GIT" cat-file -e "$pin^{commit}" 2>/dev/null; then
    extract "$USOCKETS_GIT" "$pin" "$dir/uSockets"
  else
    echo "build-peers: uSockets commit ${pin:-?} pinned by uWebSockets is not in $USOCKETS_GIT; using its HEAD" >&2
    extract "$USOCKETS_GIT" HEAD "$dir/uSockets"
  fi
  # The example listens on a hard-coded 9001; the benchmark needs a fresh
  # port per run (TIME_WAIT), so take it from argv[1] or $PORT. Nothing else
  # of the example changes.
  local ex="$dir/examples/EchoServer.cpp"
  sed -i \
    -e 's/^int main() {/int main(int argc, char **argv) {\n    int port = argc > 1 ? atoi(argv[1]) : (getenv("PORT") ? atoi(getenv("PORT")) : 9001);/' \
    -e 's/\.listen(9001, \[\](auto \*listen_socket)/.listen(port, [port](auto *listen_socket)/' \
    -e 's/<< 9001 <</<< port <</' "$ex"
  if ! grep -q 'listen(port, \[port\]' "$ex" || ! grep -q 'int port = ' "$ex"; then
    echo "build-peers: EchoServer.cpp no longer looks as expected; the port patch did not apply" >&2; exit 1
  fi
  (
    cd "$dir"
    # Plain TCP on epoll: no TLS, no libuv (the defaults of uSockets' Makefile
    # once WITH_OPENSSL and WITH_LIBUV are off).
    # (Its Makefile tries Windows' lib.exe before ar: that failure is noise.)
    $NICE make -s -C uSockets WITH_OPENSSL=0 WITH_LIBUV=0 >build.log 2>&1 || { tail -30 build.log >&2; exit 1; }
    # The flags of uWebSockets' own build.c for its examples, for this one
    # example only (build.c compiles all fourteen), less -march=native: a
    # bench/.tools kept on a machine of another CPU model must not die of
    # SIGILL. GCC 12 warns about uWS's integer formatting; the log keeps
    # that out of the way.
    $NICE g++ -O3 -flto=auto -std=c++2b -Isrc -IuSockets/src \
      examples/EchoServer.cpp uSockets/*.o -lz -o uws-echo >>build.log 2>&1 || { tail -30 build.log >&2; exit 1; }
  )
  install -m 755 "$dir/uws-echo" "$BIN/uws-echo"
  echo "build-peers: built $BIN/uws-echo (uWebSockets $(git --git-dir="$UWS_GIT" rev-parse --short HEAD), uSockets ${pin:0:7})" >&2
  built=1
}

# The check the benchmark relies on: uws-echo answers WebSocket upgrades on
# 127.0.0.1 and echoes, and tcpkali floods it and reports its byte counts.
verify() {
  if [ ! -x "$BIN/tcpkali" ] || [ ! -x "$BIN/uws-echo" ]; then
    echo "build-peers: not verified: $( [ -x "$BIN/tcpkali" ] || echo "tcpkali " )$( [ -x "$BIN/uws-echo" ] || echo "uws-echo " )missing" >&2
    return 0
  fi
  local port=$((20000 + RANDOM % 10000)) srv out
  taskset -c 1 "$BIN/uws-echo" "$port" >/dev/null 2>&1 & srv=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  # tcpkali takes host:port[/path], not a ws:// URL; --ws makes it upgrade.
  out=$(taskset -c 0 "$BIN/tcpkali" -w 1 --ws -c 100 --connect-rate 10k \
    -m '"123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"' -T 10s "127.0.0.1:$port/" 2>&1) || true
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null || true
  echo "$out" | grep -E "^Total data (sent|received)" >&2
  local rcvd
  rcvd=$(echo "$out" | sed -nE 's/^Total data received: .*\(([0-9]+) bytes\).*/\1/p')
  if [ -z "$rcvd" ] || [ "$rcvd" -eq 0 ]; then
    echo "build-peers: verification failed: tcpkali received nothing from uws-echo:" >&2
    echo "$out" | tail -20 >&2
    return 1
  fi
  echo "build-peers: verified: uws-echo echoes and tcpkali counts ($rcvd bytes received in 10 s)" >&2
}

if [ "${1:-}" = --verify ]; then verify; exit; fi
built=0
build_tcpkali
build_uws
[ $built = 1 ] && verify
echo "build-peers: tcpkali $( [ -x "$BIN/tcpkali" ] && echo "$BIN/tcpkali" || echo "not built" ), uws-echo $( [ -x "$BIN/uws-echo" ] && echo "$BIN/uws-echo" || echo "not built" )" >&2
exit 0
