# WebSocket room server for barrage's fan-out tests: every connection is in
# one room from the moment it connects; a `{"op":"join"...}` message is
# answered with {"op":"joined"} to its sender alone, and any other text
# message goes to every other member. With --evict-after K, once K messages
# have been passed on, one member (the first to connect that is not the
# sender) silently stops getting them: its connection stays open, as a
# member a server lost track of.
# Install the library with scripts/install-peers.sh, then from the repo root:
#   PYTHONPATH=.peers/python python3 tests/peers/ws_room.py --port 0 --evict-after 250
# Once listening it prints exactly one line, `LISTENING <port>`, to stdout.
import argparse
import asyncio
import logging
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def parse_args(argv):
    p = argparse.ArgumentParser(description="WebSocket room server (test peer).")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--evict-after", type=int, default=None, metavar="K",
                   help="after K messages passed on, one member stops getting them")
    args = p.parse_args(argv)
    if args.evict_after is not None and args.evict_after < 0:
        p.error("--evict-after must be 0 or more")
    return args


def make_handler(args):
    members = []  # in the order they connected
    state = {"passed": 0, "evicted": None}

    async def handler(ws):
        members.append(ws)
        try:
            async for message in ws:
                if isinstance(message, str) and '"join"' in message:
                    await ws.send('{"op":"joined"}')
                    continue
                if args.evict_after is not None and state["evicted"] is None \
                        and state["passed"] >= args.evict_after:
                    state["evicted"] = next((m for m in members if m is not ws), None)
                state["passed"] += 1
                for m in list(members):
                    if m is ws or m is state["evicted"]:
                        continue
                    try:
                        await m.send(message)
                    except ConnectionClosed:
                        pass
        except ConnectionClosed:
            pass
        finally:
            members.remove(ws)

    return handler


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(make_handler(args), "127.0.0.1", args.port, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"LISTENING {port}\n")
        sys.stdout.flush()
        await stop


if __name__ == "__main__":
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    try:
        asyncio.run(main(parse_args(sys.argv[1:])))
    except OSError as e:
        print(f"ws_room.py: {e}", file=sys.stderr)
        sys.exit(1)
