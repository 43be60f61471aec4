// WebSocket echo server built on Node `ws`, an interop peer for barrage's
// tests (tests/peers/ws_echo.py is the same server on Python `websockets`).
// Install the library with scripts/install-peers.sh, then from the repo root:
//   NODE_PATH=.peers/node/node_modules node tests/peers/ws_echo.js --port 0 [--compression]
// Once listening it prints exactly one line, `LISTENING <port>`, to stdout.
// Run with --help for every option.
'use strict';

const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');

const DEFAULT_MAX_SIZE = 64 * 1024 * 1024;
// Close codes an endpoint may send (RFC 6455 section 7.4, IANA registry).
const SENDABLE_CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]);
// On SIGTERM/SIGINT, how long to wait for clients to answer our close frame.
const SHUTDOWN_CLOSE_TIMEOUT_MS = 3000;

const USAGE = `usage: ws_echo.js [--port N] [--compression] [--no-context-takeover]
                  [--subprotocol NAME]... [--ping-interval SECS]
                  [--close-after N] [--close-code C] [--close-reason TEXT]
                  [--max-size BYTES] [--verbose]

WebSocket echo server (interop peer).

  --port N               port on 127.0.0.1; 0 picks a free one (default 0)
  --compression          offer permessage-deflate
  --no-context-takeover  with compression: answer server_no_context_takeover
                         (implies --compression)
  --subprotocol NAME     a supported subprotocol (repeatable); the first one
                         the client offers is chosen
  --ping-interval SECS   send a ping every SECS
  --close-after N        close after echoing N messages
  --close-code C         close code for --close-after (default 1000)
  --close-reason TEXT    close reason for --close-after (default empty)
  --max-size BYTES       largest message accepted (default 64 MiB)
  --verbose              log connections, pings and closes to stderr
`;

function usageError(msg) {
  process.stderr.write(`${USAGE}ws_echo.js: error: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    port: 0,
    compression: false,
    noContextTakeover: false,
    subprotocols: [],
    pingInterval: null,
    closeAfter: null,
    closeCode: 1000,
    closeReason: '',
    maxSize: DEFAULT_MAX_SIZE,
    verbose: false,
  };
  const intArg = (name, v) => {
    if (v === undefined || !/^-?\d+$/.test(v)) usageError(`${name} expects an integer, got ${v}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${a} expects a value`);
      return argv[++i];
    };
    switch (a) {
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      case '--port':
        args.port = intArg(a, value());
        break;
      case '--compression':
        args.compression = true;
        break;
      case '--no-context-takeover':
        args.noContextTakeover = true;
        break;
      case '--subprotocol':
        args.subprotocols.push(value());
        break;
      case '--ping-interval': {
        const v = value();
        args.pingInterval = Number(v);
        if (v.trim() === '' || !Number.isFinite(args.pingInterval)) usageError(`${a} expects a number, got ${v}`);
        break;
      }
      case '--close-after':
        args.closeAfter = intArg(a, value());
        break;
      case '--close-code':
        args.closeCode = intArg(a, value());
        break;
      case '--close-reason':
        args.closeReason = value();
        break;
      case '--max-size':
        args.maxSize = intArg(a, value());
        break;
      case '--verbose':
        args.verbose = true;
        break;
      default:
        usageError(`unrecognized argument: ${a}`);
    }
  }
  if (args.port < 0 || args.port > 65535) usageError('--port must be between 0 and 65535');
  if (args.pingInterval !== null && args.pingInterval <= 0) usageError('--ping-interval must be positive');
  if (args.closeAfter !== null && args.closeAfter < 0) usageError('--close-after must be 0 or more');
  if (!(SENDABLE_CLOSE_CODES.has(args.closeCode) || (args.closeCode >= 3000 && args.closeCode <= 4999))) {
    usageError(`--close-code ${args.closeCode} is not a code an endpoint may send`);
  }
  if (Buffer.byteLength(args.closeReason, 'utf8') > 123) usageError('--close-reason must be at most 123 bytes of UTF-8');
  if (args.maxSize <= 0) usageError('--max-size must be positive');
  if (args.noContextTakeover) args.compression = true;
  return args;
}

const args = parseArgs(process.argv.slice(2));
const log = args.verbose ? (msg) => process.stderr.write(`ws_echo.js: ${msg}\n`) : () => {};

let perMessageDeflate = false;
if (args.compression) {
  // threshold 0: compress every message, however small (ws skips < 1 KiB by default).
  perMessageDeflate = { threshold: 0 };
  // A client_no_context_takeover offer is accepted either way.
  if (args.noContextTakeover) perMessageDeflate.serverNoContextTakeover = true;
}

// Pick the first subprotocol, in the client's order, that we support. With no
// match (or no --subprotocol at all) the handshake goes on without one rather
// than failing, the same as the Python peer. (ws on its own would take the
// client's first offer, supported or not.)
const supported = new Set(args.subprotocols);
function handleProtocols(offered) {
  for (const name of offered) {
    if (supported.has(name)) return name;
  }
  return false;
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: args.port,
  perMessageDeflate,
  handleProtocols,
  maxPayload: args.maxSize,
  clientTracking: true,
});

let nextId = 1;

wss.on('connection', (ws, req) => {
  const id = nextId++;
  let echoed = 0;
  let pinger = null;
  log(
    `${id} open from ${req.socket.remoteAddress}:${req.socket.remotePort} ` +
      `subprotocol=${ws.protocol || 'None'} extensions=${ws.extensions || 'None'}`
  );

  const closeNow = () => {
    log(`${id} closing with ${args.closeCode} after ${echoed} messages`);
    ws.close(args.closeCode, args.closeReason);
  };

  if (args.pingInterval !== null) {
    pinger = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      // A 4-byte random payload, like the Python peer's pings.
      ws.ping(crypto.randomBytes(4));
      log(`${id} sent ping`);
    }, args.pingInterval * 1000);
  }

  ws.on('pong', () => log(`${id} pong`));

  ws.on('message', (data, isBinary) => {
    if (ws.readyState !== WebSocket.OPEN) return; // already closing
    // Same bytes back, text as text and binary as binary.
    ws.send(data, { binary: isBinary });
    echoed++;
    if (args.closeAfter !== null && echoed >= args.closeAfter) closeNow();
  });

  ws.on('error', (err) => log(`${id} error: ${err.message}`));

  ws.on('close', (code) => {
    if (pinger !== null) clearInterval(pinger);
    log(`${id} closed after ${echoed} messages (code ${code})`);
  });

  if (args.closeAfter === 0) closeNow();
});

wss.on('listening', () => {
  const port = wss.address().port;
  process.stdout.write(`LISTENING ${port}\n`);
  log(`ws ${require('ws/package.json').version} listening on 127.0.0.1:${port}`);
});

wss.on('error', (err) => {
  process.stderr.write(`ws_echo.js: ${err.message}\n`);
  process.exit(1);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  log('shutting down');
  // Close every connection with 1001 (going away), like the Python peer, and
  // give clients a moment to answer before dropping them.
  for (const ws of wss.clients) ws.close(1001);
  const force = setTimeout(() => {
    for (const ws of wss.clients) ws.terminate();
    setTimeout(() => process.exit(0), 200).unref();
  }, SHUTDOWN_CLOSE_TIMEOUT_MS);
  force.unref();
  wss.close(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
