# WebSocket push server with faults, a peer for barrage's completeness tests
# (`sequence:`): after a client's first message (its subscribe), it pushes
# {"seq": N, "ts": <unix µs>} for N = 1..--count at --rate a second, then
# keeps the connection open. Faults, by sequence number:
#   --drop-every K       never sends N when N % K == 0
#   --duplicate-every K  sends N twice when N % K == 0
#   --swap-every K       sends N + 1 before N when N % K == 0
# Install the library with scripts/install-peers.sh, then from the repo root:
#   PYTHONPATH=.peers/python python3 tests/peers/ws_push.py --port 0 --count 501 --drop-every 100
# Once listening it prints exactly one line, `LISTENING <port>`, to stdout.
import argparse
import asyncio
import json
import logging
import signal
import sys
import time

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


def parse_args(argv):
    p = argparse.ArgumentParser(description="WebSocket push server with faults (test peer).")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--count", type=int, default=100, help="messages pushed per connection")
    p.add_argument("--rate", type=float, default=500.0, help="messages a second per connection")
    p.add_argument("--drop-every", type=int, default=0, metavar="K", help="drop N when N %% K == 0")
    p.add_argument("--duplicate-every", type=int, default=0, metavar="K", help="send N twice when N %% K == 0")
    p.add_argument("--swap-every", type=int, default=0, metavar="K", help="send N+1 before N when N %% K == 0")
    args = p.parse_args(argv)
    if args.count < 1 or args.rate <= 0:
        p.error("--count must be at least 1 and --rate positive")
    for k in (args.drop_every, args.duplicate_every, args.swap_every):
        if k < 0:
            p.error("fault intervals must be 0 (off) or positive")
    return args


def order(args):
    """The sequence numbers in the order they go out, faults applied."""
    out = []
    n = 1
    while n <= args.count:
        hit = lambda k: k > 0 and n % k == 0
        if hit(args.swap_every) and n + 1 <= args.count:
            out += [n + 1, n]
            n += 2
            continue
        if hit(args.drop_every):
            n += 1
            continue
        out.append(n)
        if hit(args.duplicate_every):
            out.append(n)
        n += 1
    return out


def make_handler(args):
    plan = order(args)

    async def handler(ws):
        try:
            await ws.recv()  # the subscribe
            start = time.monotonic()
            for i, n in enumerate(plan):
                due = start + i / args.rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                await ws.send(json.dumps({"seq": n, "ts": time.time_ns() // 1000}))
            await ws.wait_closed()
        except ConnectionClosed:
            pass

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
        print(f"ws_push.py: {e}", file=sys.stderr)
        sys.exit(1)
