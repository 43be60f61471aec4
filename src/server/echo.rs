//! Plain echo on fastwebsockets: the fast path the benchmarks measure.
//!
//! Fragmented messages are put together here rather than by fastwebsockets'
//! `FragmentCollector`, which has no limit on a message's size: a client
//! sending continuation frames without end would grow the server without
//! bound. A message over [`Options::max_message_size`](super::Options)
//! closes the connection with 1009 (message too big), whether it comes in
//! one frame or many.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use fastwebsockets::{Frame, OpCode, Role, WebSocket, WebSocketError, upgrade};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::idle::{self, Idle};
use super::{ServerStats, Shared, coalesce};

/// How long the last writes (and reading the client's last bytes) may take.
const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Echoes on the upgraded connection until the client closes, breaks the
/// protocol, exceeds the message limit, stays idle too long, or the server
/// shuts down.
pub(super) async fn serve(fut: upgrade::UpgradeFut, shared: Arc<Shared>) {
    let Ok(ws) = fut.await else { return };
    shared.stats.connections.fetch_add(1, Relaxed);
    let opts = &shared.opts;
    // Echoes of pipelined messages go out together (see `coalesce`).
    let io = coalesce::Coalescing::new(Idle::new(ws.into_inner(), opts.idle_timeout));
    let mut ws = WebSocket::after_handshake(io, Role::Server);
    let mut message = Reassembly::new(opts.max_message_size);
    let end = tokio::select! {
        _ = shared.cancel.cancelled() => End::Stop,
        end = echo(&mut ws, &mut message, &shared.stats) => end,
    };
    match end {
        End::Stop => {
            // Send what is still buffered before closing.
            let mut io = ws.into_inner();
            let _ = tokio::time::timeout(CLOSE_LIMIT, io.shutdown()).await;
        }
        End::Closed => linger(ws, &shared.cancel).await,
        End::Refuse(code, reason) => {
            // Unless fastwebsockets already answered with a close of its own.
            if !ws.is_closed() {
                let _ = ws.write_frame(Frame::close(code, reason)).await;
            }
            linger(ws, &shared.cancel).await;
        }
    }
}

/// Sends what is buffered, ends our side and reads what the client still
/// sends until it closes (see [`idle::linger`]), within [`CLOSE_LIMIT`] and
/// no longer than the server runs.
async fn linger<S>(ws: WebSocket<S>, cancel: &CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut io = ws.into_inner();
    tokio::select! {
        _ = tokio::time::timeout(CLOSE_LIMIT, idle::linger(&mut io)) => {}
        _ = cancel.cancelled() => {}
    }
}

/// How an echo connection ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client went away, the connection broke, or the server is
    /// shutting down: nothing more to say.
    Stop,
    /// The client closed; fastwebsockets has answered its close frame.
    Closed,
    /// The server closes with this code and reason.
    Refuse(u16, &'static [u8]),
}

/// The close code of a message over the limit.
const TOO_BIG: u16 = 1009;

async fn echo<S>(ws: &mut WebSocket<S>, message: &mut Reassembly, stats: &ServerStats) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        // fastwebsockets refuses a frame longer than what the message may
        // still grow by before reading its payload.
        ws.set_max_message_size(message.frame_limit());
        let frame = match ws.read_frame().await {
            Ok(f) => f,
            Err(e) => return ended_by(e),
        };
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => match message.add(frame) {
                Ok(None) => {}
                Ok(Some(whole)) => {
                    stats.messages.fetch_add(1, Relaxed);
                    if ws.write_frame(whole).await.is_err() {
                        return End::Stop;
                    }
                }
                Err((code, reason)) => return End::Refuse(code, reason),
            },
            OpCode::Close => return End::Closed,
            // Pings were answered by fastwebsockets; pongs need nothing.
            _ => {}
        }
    }
}

/// The end a read error means (RFC 6455 §7.4.1 codes for protocol errors).
fn ended_by(e: WebSocketError) -> End {
    match e {
        WebSocketError::FrameTooLarge => End::Refuse(TOO_BIG, b"message too big"),
        WebSocketError::InvalidUTF8 => End::Refuse(1007, b"invalid UTF-8"),
        WebSocketError::ReservedBitsNotZero
        | WebSocketError::ControlFrameFragmented
        | WebSocketError::PingFrameTooLarge
        | WebSocketError::InvalidCloseFrame
        | WebSocketError::InvalidCloseCode
        | WebSocketError::InvalidValue => End::Refuse(1002, b"protocol error"),
        WebSocketError::IoError(e) if idle::is_idle_timeout(&e) => {
            End::Refuse(idle::IDLE_CLOSE, idle::IDLE_REASON)
        }
        _ => End::Stop,
    }
}

/// A message being put together from its frames, up to a size limit.
struct Reassembly {
    max: usize,
    /// The opcode and payload so far of a fragmented message.
    partial: Option<(OpCode, Vec<u8>)>,
}

/// Why a frame is refused: close code and reason.
type Refusal = (u16, &'static [u8]);

impl Reassembly {
    fn new(max: usize) -> Self {
        Reassembly { max, partial: None }
    }

    /// The limit for fastwebsockets' next frame, which it applies as
    /// "payload shorter than": what the message may still grow by, and
    /// never less than a control frame may carry.
    fn frame_limit(&self) -> usize {
        let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len());
        self.max.saturating_sub(so_far).max(125).saturating_add(1)
    }

    /// Adds a data frame; returns the whole message once its last frame is
    /// in, or why the frame is refused.
    fn add<'f>(&mut self, frame: Frame<'f>) -> Result<Option<Frame<'f>>, Refusal> {
        const NESTED: Refusal = (1002, b"new message inside a fragmented one");
        const TOO_BIG_R: Refusal = (TOO_BIG, b"message too big");
        let len = frame.payload.len();
        match (frame.opcode, self.partial.as_mut()) {
            (OpCode::Continuation, None) => Err((1002, b"continuation without a message")),
            (OpCode::Continuation, Some((op, buf))) => {
                if len > self.max - buf.len() {
                    return Err(TOO_BIG_R);
                }
                buf.extend_from_slice(&frame.payload);
                if !frame.fin {
                    return Ok(None);
                }
                let op = *op;
                let whole = self.partial.take().map(|(_, b)| b).unwrap_or_default();
                // Single text frames are checked by fastwebsockets.
                if op == OpCode::Text && std::str::from_utf8(&whole).is_err() {
                    return Err((1007, b"invalid UTF-8"));
                }
                Ok(Some(Frame::new(true, op, None, whole.into())))
            }
            (_, Some(_)) => Err(NESTED),
            _ if len > self.max => Err(TOO_BIG_R),
            // Echoed unmasked (the client's mask must not go back).
            (op, None) if frame.fin => Ok(Some(Frame::new(true, op, None, frame.payload))),
            (op, None) => {
                self.partial = Some((op, frame.payload.to_vec()));
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Frame<'static> {
        Frame::new(fin, op, None, payload.to_vec().into())
    }

    /// The close code a frame is refused with.
    fn refused(r: Result<Option<Frame<'_>>, Refusal>) -> u16 {
        match r {
            Ok(_) => panic!("accepted"),
            Err((code, _)) => code,
        }
    }

    fn payload(f: Option<Frame<'_>>) -> Option<(OpCode, Vec<u8>)> {
        f.map(|f| (f.opcode, f.payload.to_vec()))
    }

    #[test]
    fn fragments_make_one_message_up_to_the_limit() {
        let mut m = Reassembly::new(10);
        assert_eq!(m.frame_limit(), 126);
        assert!(
            m.add(frame(false, OpCode::Text, b"abcd"))
                .unwrap()
                .is_none()
        );
        assert!(
            m.add(frame(false, OpCode::Continuation, b"efg"))
                .unwrap()
                .is_none()
        );
        let whole = m.add(frame(true, OpCode::Continuation, b"hij")).unwrap();
        assert_eq!(payload(whole), Some((OpCode::Text, b"abcdefghij".to_vec())));
        // Exactly the limit in one frame passes; one more byte does not.
        let whole = m.add(frame(true, OpCode::Binary, &[7; 10])).unwrap();
        assert_eq!(payload(whole), Some((OpCode::Binary, vec![7; 10])));
        assert_eq!(refused(m.add(frame(true, OpCode::Binary, &[7; 11]))), 1009);
    }

    #[test]
    fn continuations_past_the_limit_are_refused_with_1009() {
        let mut m = Reassembly::new(300);
        m.add(frame(false, OpCode::Binary, &[1; 200])).unwrap();
        // 100 bytes left: fastwebsockets is told a control frame's 125.
        assert_eq!(m.frame_limit(), 126);
        m.add(frame(false, OpCode::Continuation, &[1; 100]))
            .unwrap();
        assert_eq!(
            refused(m.add(frame(false, OpCode::Continuation, &[1]))),
            1009
        );

        let mut big = Reassembly::new(64 << 20);
        big.add(frame(false, OpCode::Binary, &[1; 1000])).unwrap();
        assert_eq!(big.frame_limit(), (64 << 20) - 1000 + 1);
    }

    #[test]
    fn broken_sequences_are_protocol_errors() {
        let mut m = Reassembly::new(100);
        assert_eq!(
            refused(m.add(frame(true, OpCode::Continuation, b"x"))),
            1002
        );
        m.add(frame(false, OpCode::Text, b"a")).unwrap();
        assert_eq!(refused(m.add(frame(true, OpCode::Binary, b"b"))), 1002);

        let mut m = Reassembly::new(100);
        m.add(frame(false, OpCode::Text, &[b'a', 0xC3])).unwrap();
        // The two halves of "é" across frames are fine ...
        let whole = m.add(frame(true, OpCode::Continuation, &[0xA9])).unwrap();
        assert_eq!(payload(whole).unwrap().1, "aé".as_bytes());
        // ... a lone continuation byte is not.
        m.add(frame(false, OpCode::Text, b"a")).unwrap();
        let lone = m.add(frame(true, OpCode::Continuation, &[0xA9]));
        assert_eq!(refused(lone), 1007);
    }

    #[test]
    fn read_errors_close_with_their_codes() {
        assert_eq!(
            ended_by(WebSocketError::FrameTooLarge),
            End::Refuse(1009, b"message too big")
        );
        assert_eq!(
            ended_by(WebSocketError::ReservedBitsNotZero),
            End::Refuse(1002, b"protocol error")
        );
        assert_eq!(ended_by(WebSocketError::UnexpectedEOF), End::Stop);
        let idle = std::io::Error::new(std::io::ErrorKind::TimedOut, "idle timeout");
        assert_eq!(
            ended_by(WebSocketError::IoError(idle)),
            End::Refuse(1001, b"idle timeout")
        );
    }
}
