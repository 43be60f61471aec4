//! The built-in target server (`barrage serve`, and `target: builtin`): an
//! HTTP/1.1 listener (hyper), optionally behind TLS, that upgrades to
//! WebSocket and echoes every text and binary message back. Uncompressed
//! connections run on fastwebsockets; permessage-deflate connections on
//! barrage's own codec ([`deflate_echo`]), since fastwebsockets cannot
//! carry RSV1.

mod coalesce;
mod deflate_echo;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ws::deflate::DeflateParams;

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Sends every text and binary message back unchanged (default).
    #[default]
    Echo,
}

/// How the server is set up. `Options::from(Mode::Echo)` is a plain echo
/// server: no TLS, no compression, no subprotocols.
#[derive(Clone, Default)]
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
    /// Data messages echoed.
    pub messages: AtomicU64,
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
    accept: JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, closes every connection and waits for the accept loop.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.accept.await;
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
    let cancel = CancellationToken::new();
    let stats = Arc::new(ServerStats::default());
    let opts = Arc::new(opts);
    let accept = tokio::spawn(accept_loop(listener, opts, cancel.clone(), stats.clone()));
    Ok(ServerHandle {
        local_addr,
        stats,
        cancel,
        accept,
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
    let opts = Arc::new(opts);
    let first = reuseport_listener(listen)?;
    let local_addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers.max(1) {
        listeners.push(reuseport_listener(local_addr)?);
    }
    let cancel = CancellationToken::new();
    let stats = Arc::new(ServerStats::default());
    let mut threads = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (cancel, stats, opts) = (cancel.clone(), stats.clone(), opts.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("serve-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        match TcpListener::from_std(l) {
                            Ok(l) => accept_loop(l, opts, cancel, stats).await,
                            Err(_) => cancel.cancel(),
                        }
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
        accept,
    })
}

async fn accept_loop(
    listener: TcpListener,
    opts: Arc<Options>,
    cancel: CancellationToken,
    stats: Arc<ServerStats>,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, peer)) => {
                if let Ok(mut peers) = stats.peers.lock() {
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
        let cancel = cancel.clone();
        let stats = stats.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            match opts.tls.clone() {
                None => serve_http(stream, opts, cancel, stats).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    let tls = tokio::select! {
                        _ = cancel.cancelled() => return,
                        t = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)) => t,
                    };
                    if let Ok(Ok(tls)) = tls {
                        serve_http(tls, opts, cancel, stats).await;
                    }
                }
            }
        });
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves HTTP/1.1 on one connection until it upgrades or ends.
async fn serve_http<S>(
    io: S,
    opts: Arc<Options>,
    cancel: CancellationToken,
    stats: Arc<ServerStats>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, opts.clone(), cancel.clone(), stats.clone()));
    let conn = http1::Builder::new()
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
    opts: Arc<Options>,
    cancel: CancellationToken,
    stats: Arc<ServerStats>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
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
    let (mut response, fut) = upgrade::upgrade(&mut req)?;
    if let Some(p) = subprotocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        response.headers_mut().insert("sec-websocket-protocol", p);
    }
    if let Some((agreed, header)) = deflate
        && let Ok(v) = HeaderValue::from_str(&header)
    {
        {
            response.headers_mut().insert("sec-websocket-extensions", v);
            tokio::spawn(async move {
                let Ok(ws) = fut.await else { return };
                stats.connections.fetch_add(1, Relaxed);
                let io = ws.into_inner();
                deflate_echo::serve(io, &agreed, &cancel, &stats).await;
            });
            return Ok(response);
        }
    }
    let mode = opts.mode;
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        stats.connections.fetch_add(1, Relaxed);
        // Echoes of pipelined messages go out together (see `coalesce`).
        let io = coalesce::Coalescing::new(ws.into_inner());
        let mut ws = FragmentCollector::new(WebSocket::after_handshake(io, Role::Server));
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = serve_ws(&mut ws, mode, &stats) => {}
        }
        // Send what is still buffered (the close reply) before closing.
        let mut io = ws.into_inner();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), io.shutdown()).await;
    });
    Ok(response)
}

async fn serve_ws<S>(ws: &mut FragmentCollector<S>, mode: Mode, stats: &ServerStats)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match mode {
        Mode::Echo => loop {
            let frame = match ws.read_frame().await {
                Ok(f) => f,
                Err(_) => return,
            };
            match frame.opcode {
                OpCode::Text | OpCode::Binary => {
                    stats.messages.fetch_add(1, Relaxed);
                    if ws.write_frame(frame).await.is_err() {
                        return;
                    }
                }
                OpCode::Close => return,
                _ => {}
            }
        },
    }
}
