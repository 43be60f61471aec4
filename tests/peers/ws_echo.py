# WebSocket echo server built on Python `websockets`, an interop peer for
# barrage's tests (tests/peers/ws_echo.js is the same server on Node `ws`).
# Install the library with scripts/install-peers.sh, then from the repo root:
#   PYTHONPATH=.peers/python python3 tests/peers/ws_echo.py --port 0 [--compression]
# Once listening it prints exactly one line, `LISTENING <port>`, to stdout.
# Run with --help for every option.
import argparse
import asyncio
import logging
import signal
import sys
import time

import websockets
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
# Close codes an endpoint may send (RFC 6455 section 7.4, IANA registry).
SENDABLE_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
# On SIGTERM/SIGINT, how long to wait for clients to answer our close frame.
SHUTDOWN_CLOSE_TIMEOUT = 3.0

log = logging.getLogger("ws_echo")


def parse_args(argv):
    p = argparse.ArgumentParser(description="WebSocket echo server (interop peer).")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--compression", action="store_true", help="offer permessage-deflate")
    p.add_argument(
        "--no-context-takeover",
        action="store_true",
        help="with compression: answer server_no_context_takeover (implies --compression)",
    )
    p.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="a supported subprotocol (repeatable); the first one the client offers is chosen",
    )
    p.add_argument("--ping-interval", type=float, default=None, metavar="SECS", help="send a ping every SECS")
    p.add_argument("--close-after", type=int, default=None, metavar="N", help="close after echoing N messages")
    p.add_argument("--close-code", type=int, default=1000, metavar="C", help="close code for --close-after")
    p.add_argument("--close-reason", default="", metavar="TEXT", help="close reason for --close-after")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, metavar="BYTES", help="largest message accepted")
    p.add_argument(
        "--max-rate",
        type=float,
        default=None,
        metavar="N",
        help="answer at most N messages a second over all connections, queuing the rest in order "
        "(a server with a known capacity: past N its latency grows without bound)",
    )
    p.add_argument("--verbose", action="store_true", help="log connections, pings and closes to stderr")
    args = p.parse_args(argv)

    if not 0 <= args.port <= 65535:
        p.error("--port must be between 0 and 65535")
    if args.ping_interval is not None and args.ping_interval <= 0:
        p.error("--ping-interval must be positive")
    if args.close_after is not None and args.close_after < 0:
        p.error("--close-after must be 0 or more")
    if not (args.close_code in SENDABLE_CLOSE_CODES or 3000 <= args.close_code <= 4999):
        p.error(f"--close-code {args.close_code} is not a code an endpoint may send")
    if len(args.close_reason.encode("utf-8")) > 123:
        p.error("--close-reason must be at most 123 bytes of UTF-8")
    if args.max_size <= 0:
        p.error("--max-size must be positive")
    if args.max_rate is not None and args.max_rate <= 0:
        p.error("--max-rate must be positive")
    if args.no_context_takeover:
        args.compression = True
    return args


def make_subprotocol_selector(supported):
    """Pick the first subprotocol, in the client's order, that we support.

    With no match (or no --subprotocol at all) the handshake goes on without a
    subprotocol rather than failing, the same as the Node peer.
    """
    supported = set(supported)

    def select(connection, offered):
        for name in offered:
            if name in supported:
                return name
        return None

    return select


async def send_pings(ws, interval):
    def on_pong(waiter):
        if waiter.cancelled() or waiter.exception() is not None:
            return
        log.info("%s pong after %.1f ms", ws.id, waiter.result() * 1000)

    try:
        while True:
            await asyncio.sleep(interval)
            waiter = await ws.ping()
            log.info("%s sent ping", ws.id)
            waiter.add_done_callback(on_pong)
    except ConnectionClosed:
        pass


class Pacer:
    """Sends queued replies at most `rate` a second, in arrival order.

    A reply's slot is 1/rate after the one before; an idle server banks at
    most BURST seconds of slots, so the limit holds over any second.
    """

    BURST = 0.005

    def __init__(self, rate):
        self.interval = 1.0 / rate
        self.queue = asyncio.Queue()
        self.slot = time.monotonic()

    async def run(self):
        while True:
            ws, message = await self.queue.get()
            now = time.monotonic()
            self.slot = max(self.slot + self.interval, now - self.BURST)
            if self.slot > now:
                await asyncio.sleep(self.slot - now)
            try:
                await ws.send(message)
            except ConnectionClosed:
                pass


def make_handler(args, pacer):
    async def handler(ws):
        log.info(
            "%s open from %s:%s subprotocol=%s extensions=%s",
            ws.id,
            *ws.remote_address[:2],
            ws.subprotocol,
            ws.response.headers.get("Sec-WebSocket-Extensions"),
        )
        pinger = None
        if args.ping_interval is not None:
            pinger = asyncio.create_task(send_pings(ws, args.ping_interval))
        echoed = 0
        try:
            if args.close_after == 0:
                await ws.close(args.close_code, args.close_reason)
                return
            async for message in ws:
                # str stays a text frame, bytes stays a binary frame.
                if pacer is not None:
                    pacer.queue.put_nowait((ws, message))
                else:
                    await ws.send(message)
                echoed += 1
                if args.close_after is not None and echoed >= args.close_after:
                    log.info("%s closing with %d after %d messages", ws.id, args.close_code, echoed)
                    await ws.close(args.close_code, args.close_reason)
                    return
        except ConnectionClosed:
            pass
        finally:
            if pinger is not None:
                pinger.cancel()
            log.info("%s closed after %d messages (code %s)", ws.id, echoed, ws.close_code)

    return handler


async def main(args):
    if args.compression and args.no_context_takeover:
        # Same settings as websockets' compression="deflate" default, plus
        # server_no_context_takeover; a client_no_context_takeover offer is accepted.
        compression = None
        extensions = [
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    elif args.compression:
        compression = "deflate"
        extensions = None
    else:
        compression = None
        extensions = None

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    pacer = Pacer(args.max_rate) if args.max_rate is not None else None
    if pacer is not None:
        pacing = asyncio.create_task(pacer.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async with serve(
        make_handler(args, pacer),
        "127.0.0.1",
        args.port,
        compression=compression,
        extensions=extensions,
        select_subprotocol=make_subprotocol_selector(args.subprotocol),
        ping_interval=None,  # pings, when asked for, come from send_pings()
        ping_timeout=None,
        close_timeout=SHUTDOWN_CLOSE_TIMEOUT,
        max_size=args.max_size,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"LISTENING {port}\n")
        sys.stdout.flush()
        log.info("websockets %s listening on 127.0.0.1:%d", websockets.__version__, port)
        await stop
        log.info("shutting down")
        if pacer is not None:
            pacing.cancel()
        # Leaving the block closes every connection with 1001 (going away).


if __name__ == "__main__":
    args = parse_args(sys.argv[1:])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="ws_echo.py: %(message)s",
    )
    if not args.verbose:
        # websockets logs failed handshakes and the like; keep quiet by default.
        logging.getLogger("websockets").setLevel(logging.CRITICAL)
    else:
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        asyncio.run(main(args))
    except OSError as e:  # e.g. port in use
        print(f"ws_echo.py: {e}", file=sys.stderr)
        sys.exit(1)
