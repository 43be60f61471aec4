//! Opening connections: what every connection of a run offers (built once
//! from the scenario: the upgrade request, TLS, the permessage-deflate
//! offer) and the opening of one connection: TCP connect from its source
//! address, TLS, upgrade and negotiation, each timed and each failure
//! counted by kind.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout_at;

use super::{EngineError, Shared};
use crate::metrics::ErrorKind;
use crate::scenario::{CloseSettings, Compression, LatencyMetric, Scenario, WsUrl};
use crate::tls::{self, ClientTlsOptions, TlsIo};
use crate::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use crate::ws::handshake::{HandshakeError, UpgradeRequest, client_handshake};
use crate::ws::{Decoder, Encoder, Stream};

/// The WebSocket settings every connection of a run uses.
pub(crate) struct Protocol {
    /// The upgrade request, rendered once.
    pub request: UpgradeRequest,
    /// TLS connector and server name for `wss://`.
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// permessage-deflate parameters offered, if compression is on.
    pub deflate: Option<DeflateParams>,
    /// Time between pings, if pings are on.
    pub ping: Option<Duration>,
    /// Largest payload per outgoing frame.
    pub fragment: Option<usize>,
    /// Largest incoming message after reassembly and inflation.
    pub max_message: usize,
    /// The close frame sent at the end.
    pub close: CloseSettings,
}

impl Protocol {
    /// Builds the settings from the scenario; TLS files are read here, so a
    /// missing CA file stops the run before any socket opens.
    pub fn new(scenario: &Scenario, url: &WsUrl, host_header: &str) -> Result<Self, EngineError> {
        let deflate = match &scenario.compression {
            Compression::None => None,
            Compression::Deflate(o) => Some(DeflateParams {
                client_max_window_bits: o.client_max_window_bits,
                server_max_window_bits: o.server_max_window_bits,
                client_no_context_takeover: o.client_no_context_takeover,
                server_no_context_takeover: o.server_no_context_takeover,
            }),
        };
        let request = UpgradeRequest::new(
            host_header,
            &url.path_and_query,
            &scenario.headers.0,
            scenario.origin.as_deref(),
            &scenario.subprotocols,
            deflate.as_ref().map(DeflateParams::offer),
        );
        let tls = if url.tls {
            let t = &scenario.tls;
            let opts = ClientTlsOptions {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
                server_name: t.server_name.clone(),
                insecure: t.insecure,
            };
            let config = tls::client_config(&opts)?;
            let name = tls::server_name(&opts, &url.host)?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Protocol {
            request,
            tls,
            deflate,
            ping: scenario.ping.map(|p| p.every),
            fragment: scenario.fragment,
            max_message: scenario.max_message_size,
            close: scenario.close.clone(),
        })
    }
}

/// An open, upgraded connection ready for the load loop.
pub(super) struct Opened {
    pub stream: Stream,
    pub decoder: Decoder,
    pub encoder: Encoder,
}

/// Counts a failed attempt of `kind` with its reason, and logs it (`-v`).
fn failed(
    shared: &Shared,
    id: u64,
    stage: usize,
    kind: ErrorKind,
    reason: impl FnOnce() -> String,
) {
    shared.setup(id, stage, |d| d.error(kind));
    let gauges = shared.recorder.gauges();
    // Formatted once for both when logged; otherwise `note_error` may
    // skip it (during an error storm one message of each kind suffices).
    if tracing::enabled!(tracing::Level::WARN) {
        let reason = reason();
        tracing::warn!(conn = id, kind = kind.name(), reason = %reason, "connection failed");
        gauges.note_error(|| reason);
    } else {
        gauges.note_error(reason);
    }
}

/// TCP connect, TLS and upgrade within the scenario's timeout; records
/// `connect`, `tls` and `handshake`, or counts the error by kind, in
/// `stage` (where the attempt began).
pub(super) async fn open(shared: &Shared, id: u64, stage: usize) -> Option<Opened> {
    let proto = &shared.protocol;
    let limit = shared.connect_timeout;
    let t0 = Instant::now();
    let deadline = (t0 + limit).into();
    let tcp = match timeout_at(deadline, connect(shared, id)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            failed(shared, id, stage, ErrorKind::Connect, || {
                format!("connect: {e}")
            });
            return None;
        }
        Err(_) => {
            failed(shared, id, stage, ErrorKind::Connect, || {
                format!("connect: no answer within {limit:?}")
            });
            return None;
        }
    };
    let t1 = Instant::now();
    shared.setup(id, stage, |d| {
        d.record(LatencyMetric::Connect, (t1 - t0).as_nanos() as u64)
    });
    let _ = tcp.set_nodelay(true);
    let mut rng = fastrand::Rng::with_seed(shared.seed.wrapping_add(id));
    let (stream, upgraded, t2) = match &proto.tls {
        None => {
            let mut tcp = tcp;
            let hs = client_handshake(&mut tcp, &proto.request, &mut rng);
            let r = timeout_at(deadline, hs).await;
            (Stream::Plain(tcp), r, t1)
        }
        Some((connector, name)) => {
            // Boxed: the TLS handshake's state is over 1 KiB, and inline
            // it would size every plain connection's open too.
            let tls = Box::pin(async {
                let mut tls = match timeout_at(deadline, connector.connect(name.clone(), tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        failed(shared, id, stage, ErrorKind::Tls, || format!("tls: {e}"));
                        return None;
                    }
                    Err(_) => {
                        failed(shared, id, stage, ErrorKind::Tls, || {
                            format!("tls: handshake not done within {limit:?}")
                        });
                        return None;
                    }
                };
                let t2 = Instant::now();
                shared.setup(id, stage, |d| {
                    d.record(LatencyMetric::Tls, (t2 - t1).as_nanos() as u64)
                });
                let hs = client_handshake(&mut tls, &proto.request, &mut rng);
                let r = timeout_at(deadline, hs).await;
                let (tcp, conn) = tls.into_inner();
                Some((Stream::Tls(tcp, Box::new(TlsIo::new(conn))), r, t2))
            });
            tls.await?
        }
    };
    let upgraded = match upgraded {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            if let HandshakeError::Status(status) = e {
                shared.recorder.gauges().http_status(status);
            }
            failed(shared, id, stage, ErrorKind::Handshake, || {
                format!("handshake: {e}")
            });
            return None;
        }
        Err(_) => {
            failed(shared, id, stage, ErrorKind::Handshake, || {
                format!("handshake: no answer within {limit:?}")
            });
            return None;
        }
    };
    let agreed = match &proto.deflate {
        None => None,
        Some(offer) => match offer.accept_response(&upgraded.extensions) {
            Ok(agreed) => agreed,
            Err(e) => {
                failed(shared, id, stage, ErrorKind::Handshake, || {
                    format!("handshake: {e}")
                });
                return None;
            }
        },
    };
    let t3 = Instant::now();
    shared.setup(id, stage, |d| {
        d.record(LatencyMetric::Handshake, (t3 - t2).as_nanos() as u64)
    });
    let (compressed, subprotocol) = (agreed.is_some(), upgraded.subprotocol.is_some());
    shared.setup_count(id, stage, |c| {
        c.compressed += u64::from(compressed);
        c.subprotocol += u64::from(subprotocol);
    });
    let inflater = agreed.as_ref().map(|a| Inflater::new(Role::Client, a));
    let deflater = agreed.as_ref().map(|a| Deflater::new(Role::Client, a));
    let mut stream = stream;
    let mut decoder =
        Decoder::with_role(Role::Client, proto.max_message, inflater, upgraded.leftover);
    if let Stream::Tls(..) = stream {
        // Records read during the upgrade may hold frames rustls decrypted
        // but the handshake did not consume; the socket will not wake us for them.
        match stream.read_into(&mut decoder) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                failed(shared, id, stage, ErrorKind::Tls, || format!("tls: {e}"));
                return None;
            }
        }
    }
    // Connect, TLS and upgrade all done (`-vv`).
    tracing::debug!(
        conn = id,
        took = ?(t3 - t0),
        compressed,
        subprotocol,
        "connection open"
    );
    Some(Opened {
        stream,
        decoder,
        encoder: Encoder::new(Role::Client, deflater, proto.fragment),
    })
}

/// TCP connect, from the connection's source address when `source_ips` is set.
async fn connect(shared: &Shared, id: u64) -> io::Result<TcpStream> {
    if shared.source_ips.is_empty() {
        return TcpStream::connect(shared.addr).await;
    }
    // By the shard's own index, so every shard spreads over all addresses.
    let local = shared.shard.local_index(id);
    let ip = shared.source_ips[(local % shared.source_ips.len() as u64) as usize];
    let socket = if shared.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(ip, 0))?;
    socket.connect(shared.addr).await
}

/// Keeps `Arc` in use for the connector type (documentation aid).
#[allow(dead_code)]
type Shareable = Arc<Protocol>;
