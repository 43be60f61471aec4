//! Echo over permessage-deflate with barrage's own codec (server role):
//! client frames are unmasked and inflated, replies compressed with the
//! agreed parameters. Replies to everything read in one go are written
//! together, as the fastwebsockets path does with its coalescing writer.

use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::ServerStats;
use crate::ws::codec::{Event, opcode};
use crate::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use crate::ws::{Decoder, Encoder};

/// Largest message the server accepts (after inflation).
const MAX_MESSAGE: usize = 64 << 20;

/// Echoes until the client closes, breaks the protocol, or `cancel` fires.
pub(super) async fn serve<S>(
    mut io: S,
    agreed: &DeflateParams,
    cancel: &CancellationToken,
    stats: &ServerStats,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inflater = Inflater::new(Role::Server, agreed);
    let mut decoder = Decoder::with_role(Role::Server, MAX_MESSAGE, Some(inflater), Vec::new());
    let mut encoder = Encoder::new(
        Role::Server,
        Some(Deflater::new(Role::Server, agreed)),
        None,
    );
    let mut rng = fastrand::Rng::new();
    let mut out = Vec::new();
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => {
                encoder.control(&mut out, opcode::CLOSE, &1001u16.to_be_bytes(), &mut rng);
                let _ = io.write_all(&out).await;
                return;
            }
            r = io.read_buf(decoder.buffer_mut()) => r,
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
        let mut done = false;
        loop {
            match decoder.next_event() {
                Ok(None) => break,
                Ok(Some(Event::Message {
                    opcode: op,
                    payload,
                    ..
                })) => {
                    stats.messages.fetch_add(1, Relaxed);
                    if encoder.message(&mut out, op, payload, &mut rng).is_err() {
                        done = true;
                        break;
                    }
                }
                Ok(Some(Event::Ping(p))) => {
                    encoder.control(&mut out, opcode::PONG, p, &mut rng);
                }
                Ok(Some(Event::Pong(_))) => {}
                Ok(Some(Event::Close { code })) => {
                    // Echo the code back (1005 means none was given).
                    let reply = if code == 1005 { 1000 } else { code };
                    encoder.control(&mut out, opcode::CLOSE, &reply.to_be_bytes(), &mut rng);
                    done = true;
                    break;
                }
                Err(e) => {
                    let code = e.close_code().to_be_bytes();
                    encoder.control(&mut out, opcode::CLOSE, &code, &mut rng);
                    done = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if io.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if done {
            let _ = io.shutdown().await;
            return;
        }
    }
}
