//! The built-in target server (`barrage serve`, and `target: builtin`): an
//! HTTP/1.1 listener (hyper), optionally behind TLS, that upgrades to
//! WebSocket and then echoes, relays messages between the members of chat
//! rooms, or pushes messages on a timer (see [`Mode`]).
//!
//! Plain echo runs on fastwebsockets, the fast path the benchmarks measure.
//! Echo over permessage-deflate (fastwebsockets cannot carry RSV1),
//! broadcast and push run on barrage's own codec in server role
//! ([`codec_conn`]), compressed when the client offered it and the server
//! accepts it.

mod coalesce;
mod codec_conn;
mod echo;
mod idle;
mod push;
mod rooms;
mod shared;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastwebsockets::{WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ws::deflate::DeflateParams;
use shared::{OpenConn, Shared};

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Sends every text and binary message back unchanged (default).
    #[default]
    Echo,
    /// Chat rooms. A connection joins the room its path names
    /// (`/room/NAME`; any other path joins `lobby`), and a text message
    /// `{"op":"join","room":"NAME"}` moves it, answered to it alone with
    /// `{"op":"joined","room":"NAME","members":N}`. Every other text or
    /// binary message goes unchanged to every other member of the sender's
    /// room, not back to the sender; a member with 1024 messages already
    /// queued misses it ([`ServerStats::dropped`]). Rooms are shared by all connections,
    /// whatever worker thread serves them.
    #[value(
        help = "Chat rooms: /room/NAME (else lobby), {\"op\":\"join\",\"room\":NAME} moves; messages go to the rest of the room"
    )]
    Broadcast,
    /// Ticker. From the upgrade on, each connection is sent a text message
    /// every 1/[`Options::push_rate`] seconds:
    /// `{"seq":N,"ts":T,"pad":"xxx…"}`, with `seq` counting from 0 per
    /// connection, `ts` the Unix time of sending in microseconds and `pad`
    /// sized so the message is exactly [`Options::push_size`] bytes (when the
    /// message with an empty pad is already longer, it goes without the
    /// `pad` field). Messages from the client are echoed.
    #[value(
        help = "Ticker: {\"seq\":N,\"ts\":µs,\"pad\":\"x…\"} of --push-size bytes at --push-rate; client messages echoed"
    )]
    Push,
}

impl Mode {
    /// The name on the command line (`echo`, `broadcast`, `push`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Broadcast => "broadcast",
            Mode::Push => "push",
        }
    }
}

/// How the server is set up. `Options::from(Mode::Echo)` is a plain echo
/// server: no TLS, no compression, no subprotocols.
#[derive(Clone)]
pub struct Options {
    /// What the server does with messages. Default echo.
    pub mode: Mode,
    /// TLS: connections are accepted with this config. Default: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept permessage-deflate when a client offers it. Default off.
    pub compression: bool,
    /// With compression, reset the server's context after every message
    /// (answers `server_no_context_takeover`). Default off.
    pub no_context_takeover: bool,
    /// Subprotocols supported; the first the client offers is chosen.
    /// Default none.
    pub subprotocols: Vec<String>,
    /// Push mode: messages per second sent to each connection. Default 10.
    /// A rate that is not a positive finite number sends none; rates above
    /// about 1000/s are held back by the timer's millisecond resolution.
    pub push_rate: f64,
    /// Push mode: the size of each pushed message in bytes. Default 128.
    pub push_size: usize,
    /// Largest message a client may send, in bytes after reassembling its
    /// fragments (and inflating it); a larger one closes the connection
    /// with 1009 (message too big). Default [`DEFAULT_MAX_MESSAGE_SIZE`],
    /// the client side's default `max_message_size`.
    pub max_message_size: usize,
    /// How long a client may take to send a request's headers (the
    /// upgrade request, and each request after a non-upgrade answer) before
    /// its connection is closed; `None` waits forever. Default
    /// [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Option<Duration>,
    /// How long an upgraded connection may send nothing at all (any byte,
    /// a ping included, counts as sending) before it is closed with 1001
    /// "idle timeout". Default `None` (never): push and broadcast listeners
    /// legitimately never send.
    pub idle_timeout: Option<Duration>,
}

/// Default of [`Options::max_message_size`]: 1 MiB, as the client side.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = crate::scenario::DEFAULT_MAX_MESSAGE;

/// Default of [`Options::header_timeout`]: 10 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::default(),
            tls: None,
            compression: false,
            no_context_takeover: false,
            subprotocols: Vec::new(),
            push_rate: 10.0,
            push_size: 128,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            header_timeout: Some(DEFAULT_HEADER_TIMEOUT),
            idle_timeout: None,
        }
    }
}

impl From<Mode> for Options {
    fn from(mode: Mode) -> Self {
        Options {
            mode,
            ..Options::default()
        }
    }
}

/// Counters the server keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// WebSocket connections upgraded.
    pub connections: AtomicU64,
    /// Data messages sent: echoed, delivered to room members, pushed, and
    /// join answers.
    pub messages: AtomicU64,
    /// Broadcast messages not delivered because the member's queue was full.
    pub dropped: AtomicU64,
    /// Distinct client addresses seen (updated once per accepted connection).
    pub peers: Mutex<HashSet<IpAddr>>,
}

/// A running server; dropping it does not stop it, call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    /// The address it listens on (with the real port when bound to port 0).
    pub local_addr: SocketAddr,
    /// Live counters.
    pub stats: Arc<ServerStats>,
    cancel: CancellationToken,
    /// Taken by [`ServerHandle::shutdown`].
    accept: Option<JoinHandle<()>>,
}

impl Drop for ServerHandle {
    /// A handle dropped without `shutdown` (a panicking test, an early
    /// return) still stops the server: its worker threads would otherwise
    /// serve on, and a runtime waiting for them would never end.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl ServerHandle {
    /// Stops accepting, closes every connection and waits for the accept loop
    /// (and, up to a second, for broadcast, push and compressed connections
    /// to send their close frames).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }

    /// A token that stops the server when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Binds `listen` and serves on the current tokio runtime until shut down;
/// connections are spread over its worker threads. Used for `target: builtin`.
pub async fn start(listen: SocketAddr, opts: Options) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let shared = Shared::new(opts);
    let (stats, cancel) = (shared.stats.clone(), shared.cancel.clone());
    let accept = tokio::spawn(async move {
        accept_loop(listener, shared.clone()).await;
        shared.drain().await;
    });
    Ok(ServerHandle {
        local_addr,
        stats,
        cancel,
        accept: Some(accept),
    })
}

/// A listener with SO_REUSEPORT, so several can share one port.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    listener.into_std()
}

/// Serves on `workers` threads, each with its own single-threaded runtime
/// and its own SO_REUSEPORT listener on the same port, so the kernel spreads
/// connections over them and no connection moves between threads. Used by
/// `barrage serve --workers N`.
pub async fn start_workers(
    listen: SocketAddr,
    opts: Options,
    workers: usize,
) -> std::io::Result<ServerHandle> {
    let first = reuseport_listener(listen)?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers.max(1) {
        listeners.push(reuseport_listener(local_addr)?);
    }
    // One set of rooms and counters for all workers.
    let shared = Shared::new(opts);
    let (stats, cancel) = (shared.stats.clone(), shared.cancel.clone());
    let mut threads = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        match TcpListener::from_std(l) {
                            Ok(l) => accept_loop(l, shared.clone()).await,
                            Err(_) => shared.cancel.cancel(),
                        }
                        // This runtime runs its connections' last writes.
                        shared.drain().await;
                    });
                    // Connection tasks end with the runtime.
                    rt.shutdown_background();
                })?,
        );
    }
    let accept = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    Ok(ServerHandle {
        local_addr,
        stats,
        cancel,
        accept: Some(accept),
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, peer)) => {
                if let Ok(mut peers) = shared.stats.peers.lock() {
                    peers.insert(peer.ip());
                }
                s
            }
            // Out of descriptors or a connection reset before accept: keep
            // serving the others.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            match shared.opts.tls.clone() {
                None => serve_http(stream, shared).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let tls = tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        t = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)) => t,
                    };
                    if let Ok(Ok(tls)) = tls {
                        serve_http(tls, shared).await;
                    }
                }
            }
        });
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on one connection until it upgrades or ends. A request
/// whose headers take longer than [`Options::header_timeout`] (slowloris)
/// ends the connection.
async fn serve_http<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = shared.opts.header_timeout;
    let service = service_fn(move |req| handle(req, shared.clone()));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let _ = conn.await;
}

/// The first subprotocol in the client's `Sec-WebSocket-Protocol` that
/// the server supports.
fn choose_subprotocol(req: &Request<Incoming>, supported: &[String]) -> Option<String> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| supported.iter().any(|s| s == p))
        .map(str::to_string)
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let opts = &shared.opts;
    if !upgrade::is_upgrade_request(&req) {
        let mut resp = Response::new(Empty::new());
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return Ok(resp);
    }
    let subprotocol = choose_subprotocol(&req, &opts.subprotocols);
    let deflate = if opts.compression {
        let offers: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-extensions")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        DeflateParams::negotiate_server(&offers.join(", "), opts.no_context_takeover)
    } else {
        None
    };
    let room = rooms::room_from_path(req.uri().path());
    let (mut response, fut) = upgrade::upgrade(&mut req)?;
    if let Some(p) = subprotocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        response.headers_mut().insert("sec-websocket-protocol", p);
    }
    // Compression only when its answer fits in a header.
    let agreed = deflate.and_then(|(agreed, header)| {
        let v = HeaderValue::from_str(&header).ok()?;
        response.headers_mut().insert("sec-websocket-extensions", v);
        Some(agreed)
    });
    let behaviour = match opts.mode {
        Mode::Echo if agreed.is_none() => {
            tokio::spawn(echo::serve(fut, shared.clone()));
            return Ok(response);
        }
        Mode::Echo => codec_conn::Behaviour::Echo,
        // A member before the client sees the 101, so a message sent right
        // after the handshake reaches every member whose handshake is done.
        Mode::Broadcast => {
            let (membership, inbox) = shared.rooms.enter(room);
            codec_conn::Behaviour::Broadcast(membership, inbox)
        }
        Mode::Push => {
            let period = push::period(opts.push_rate);
            codec_conn::Behaviour::Push(push::Ticker::new(period, opts.push_size))
        }
    };
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        let _open = OpenConn::new(shared.clone());
        shared.stats.connections.fetch_add(1, Relaxed);
        let io = idle::Idle::new(ws.into_inner(), shared.opts.idle_timeout);
        codec_conn::serve(
            io,
            agreed.as_ref(),
            shared.opts.max_message_size,
            behaviour,
            &shared.cancel,
            &shared.stats,
        )
        .await;
    });
    Ok(response)
}
