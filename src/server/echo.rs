//! Plain echo on fastwebsockets: the fast path the benchmarks measure.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, upgrade};
use tokio::io::AsyncWriteExt;

use super::{ServerStats, Shared, coalesce};

/// Echoes on the upgraded connection until the client closes or the
/// server shuts down.
pub(super) async fn serve(fut: upgrade::UpgradeFut, shared: Arc<Shared>) {
    let Ok(ws) = fut.await else { return };
    shared.stats.connections.fetch_add(1, Relaxed);
    // Echoes of pipelined messages go out together (see `coalesce`).
    let io = coalesce::Coalescing::new(ws.into_inner());
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(io, Role::Server));
    tokio::select! {
        _ = shared.cancel.cancelled() => {}
        _ = echo(&mut ws, &shared.stats) => {}
    }
    // Send what is still buffered (the close reply) before closing.
    let mut io = ws.into_inner();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), io.shutdown()).await;
}

async fn echo<S>(ws: &mut FragmentCollector<S>, stats: &ServerStats)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
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
    }
}
