//! Connections served with barrage's own codec (server role): echo over
//! permessage-deflate (fastwebsockets cannot carry RSV1), broadcast rooms
//! and push, with or without compression.
//!
//! One task per connection waits on whichever comes first: bytes from the
//! client (read into the decoder's buffer, which is cancel safe), messages
//! queued for it by its room, its push timer, or server shutdown. Everything
//! a wake-up produces is encoded into one buffer and written at once, as the
//! fastwebsockets path does with its coalescing writer.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ServerStats;
use super::idle::{self, IDLE_CLOSE, IDLE_REASON};
use super::push::Ticker;
use super::rooms::{self, Membership, Outbound};
use crate::ws::codec::{Event, opcode};
use crate::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use crate::ws::{Decoder, Encoder};

/// Queued room messages encoded per wake-up before writing, so one busy
/// room cannot keep a connection from reading.
const DELIVER_BATCH: usize = 64;

/// The output buffer is freed after writing when it grew beyond this.
const KEEP_OUT: usize = 64 * 1024;

/// How long the closing frames may take to go out.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// What a connection does with what it receives, and what it sends unasked.
pub(super) enum Behaviour {
    /// Sends every data message back.
    Echo,
    /// Passes data messages to the rest of its room; join requests move it.
    Broadcast(Membership, mpsc::Receiver<Outbound>),
    /// Echoes data messages and pushes its own on a timer.
    Push(Ticker),
}

/// Encodes frames for one connection into its output buffer.
struct Writer<'a> {
    encoder: Encoder,
    out: Vec<u8>,
    rng: fastrand::Rng,
    stats: &'a ServerStats,
}

impl Writer<'_> {
    /// Appends a data message (counted in `stats.messages`); false when it
    /// cannot be compressed, after appending a close 1011.
    fn data(&mut self, op: u8, payload: &[u8]) -> bool {
        if self
            .encoder
            .message(&mut self.out, op, payload, &mut self.rng)
            .is_err()
        {
            self.close(1011);
            return false;
        }
        self.stats.messages.fetch_add(1, Relaxed);
        true
    }

    fn control(&mut self, op: u8, payload: &[u8]) {
        self.encoder
            .control(&mut self.out, op, payload, &mut self.rng);
    }

    fn close(&mut self, code: u16) {
        self.close_with(code, b"");
    }

    fn close_with(&mut self, code: u16, reason: &[u8]) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        self.control(opcode::CLOSE, &payload);
    }
}

/// Serves until the client closes, breaks the protocol (a message over
/// `max_message` bytes after inflation closes with 1009), goes away, or
/// `cancel` fires (close 1001). `agreed` is the permessage-deflate the
/// handshake agreed, if any. `io` may be an [`idle::Idle`] stream: its
/// timeout closes with 1001 "idle timeout".
pub(super) async fn serve<S>(
    mut io: S,
    agreed: Option<&DeflateParams>,
    max_message: usize,
    mut behaviour: Behaviour,
    cancel: &CancellationToken,
    stats: &ServerStats,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inflater = agreed.map(|a| Inflater::new(Role::Server, a));
    let mut decoder = Decoder::with_role(Role::Server, max_message, inflater, Vec::new());
    let deflater = agreed.map(|a| Deflater::new(Role::Server, a));
    let mut w = Writer {
        encoder: Encoder::new(Role::Server, deflater, None),
        out: Vec::new(),
        rng: fastrand::Rng::new(),
        stats,
    };
    loop {
        let (membership, inbox, ticker) = match &mut behaviour {
            Behaviour::Echo => (None, None, None),
            Behaviour::Broadcast(m, rx) => (Some(m), Some(rx), None),
            Behaviour::Push(t) => (None, None, Some(t)),
        };
        let done = tokio::select! {
            _ = cancel.cancelled() => {
                w.close(1001);
                true
            }
            r = io.read_buf(decoder.buffer_mut()) => match r {
                Ok(0) => return,
                Ok(_) => on_read(&mut decoder, &mut w, membership),
                Err(e) if idle::is_idle_timeout(&e) => {
                    w.close_with(IDLE_CLOSE, IDLE_REASON);
                    true
                }
                Err(_) => return,
            },
            first = recv(inbox) => deliver(first, &mut behaviour, &mut w),
            _ = tick(ticker) => match &mut behaviour {
                Behaviour::Push(t) => !w.data(opcode::TEXT, t.next_message()),
                _ => false,
            },
        };
        if done {
            // The closing frames, then the end of our side; a client that
            // does not take them within the limit is dropped.
            // Unless the server is stopping, what the client still sends
            // is read, not left to turn our close into a reset (see
            // `idle::linger`).
            let _ = tokio::time::timeout(CLOSE_LIMIT, async {
                io.write_all(&w.out).await?;
                if cancel.is_cancelled() {
                    return io.shutdown().await;
                }
                tokio::select! {
                    r = idle::linger(&mut io) => r,
                    _ = cancel.cancelled() => Ok(()),
                }
            })
            .await;
            return;
        }
        if !w.out.is_empty() {
            // A write blocked by a client that does not read still ends on
            // shutdown (without a close frame: one is half written).
            let written = tokio::select! {
                biased;
                r = io.write_all(&w.out) => r.is_ok(),
                _ = cancel.cancelled() => false,
            };
            if !written {
                return;
            }
            w.out.clear();
            if w.out.capacity() > KEEP_OUT {
                w.out = Vec::new();
            }
        }
    }
}

/// The next message queued by the room (never, outside broadcast mode).
async fn recv(inbox: Option<&mut mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// When the next push is due (never, outside push mode).
async fn tick(ticker: Option<&mut Ticker>) {
    match ticker {
        Some(t) => t.tick().await,
        None => std::future::pending().await,
    }
}

/// Encodes `first` and whatever else the room has queued (up to a batch);
/// true when the connection must end.
fn deliver(first: Option<Outbound>, behaviour: &mut Behaviour, w: &mut Writer) -> bool {
    let Behaviour::Broadcast(_, rx) = behaviour else {
        return false;
    };
    // The membership holds a sender, so the queue never reports closed.
    let Some((op, payload)) = first else {
        return true;
    };
    if !w.data(op, &payload) {
        return true;
    }
    for _ in 1..DELIVER_BATCH {
        let Ok((op, payload)) = rx.try_recv() else {
            break;
        };
        if !w.data(op, &payload) {
            return true;
        }
    }
    false
}

/// Handles every complete event in the decoder's buffer; true when the
/// connection must end (after the close frame appended to `w`).
fn on_read(decoder: &mut Decoder, w: &mut Writer, mut room: Option<&mut Membership>) -> bool {
    loop {
        match decoder.next_event() {
            Ok(None) => return false,
            Ok(Some(Event::Message {
                opcode: op,
                payload,
                ..
            })) => {
                let ok = match room.as_deref_mut() {
                    None => w.data(op, payload),
                    Some(m) => match rooms::join_request(op, payload) {
                        Some(to) => {
                            let members = m.switch(&to);
                            w.data(opcode::TEXT, rooms::joined_reply(&to, members).as_bytes())
                        }
                        None => {
                            m.broadcast(op, payload, w.stats);
                            true
                        }
                    },
                };
                if !ok {
                    return true;
                }
            }
            Ok(Some(Event::Ping(p))) => w.control(opcode::PONG, p),
            Ok(Some(Event::Pong(_))) => {}
            Ok(Some(Event::Close { code })) => {
                // Echo the code back (1005 means none was given).
                w.close(if code == 1005 { 1000 } else { code });
                return true;
            }
            Err(e) => {
                w.close(e.close_code());
                return true;
            }
        }
    }
}
