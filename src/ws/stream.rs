//! An open connection's byte stream, plain TCP or TLS, driven by readiness:
//! the connection loop waits on `readable()`/`writable()` next to its timers
//! and then moves bytes without awaiting, so a read is never cut in half by
//! a timer firing.

use std::io;
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::codec::Decoder;
use crate::tls::TlsIo;

/// A connected, upgraded stream.
pub enum Stream {
    /// `ws://`: bytes go straight to the socket.
    Plain(TcpStream),
    /// `wss://`: bytes go through rustls.
    Tls(TcpStream, Box<TlsIo>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) | Stream::Tls(s, _) => s,
        }
    }

    /// Waits until the socket may have bytes to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.tcp().readable().await
    }

    /// Waits until the socket may take bytes.
    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// Polls for read readiness (as [`Stream::readable`], without a future
    /// to keep).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// Polls for write readiness (as [`Stream::writable`]).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Reads what is available into the decoder's buffer without waiting.
    /// `Ok(0)` is the end of the stream; `WouldBlock` means nothing was there.
    pub fn read_into(&mut self, decoder: &mut Decoder) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => read_plain(s, decoder),
            Stream::Tls(s, tls) => {
                let out = decoder.buffer_mut();
                let r = tls.read_plain(s, out)?;
                match (r.plain, r.eof) {
                    (0, true) => Ok(0),
                    (0, false) => Err(io::ErrorKind::WouldBlock.into()),
                    (n, _) => Ok(n),
                }
            }
        }
    }

    /// Writes as much of `buf` as the stream takes now; returns how much it
    /// took (0 when the socket is full). With TLS, bytes taken may still
    /// wait in rustls as records: see [`Stream::pending`].
    pub fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => match s.try_write(buf) {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(e) => Err(e),
            },
            Stream::Tls(s, tls) => tls.write_some(s, buf),
        }
    }

    /// Whether bytes already taken still wait to reach the socket.
    pub fn pending(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(_, tls) => tls.wants_write(),
        }
    }

    /// Writes what waits in rustls, as far as the socket takes it.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s, tls) => tls.flush(s),
        }
    }

    /// Queues TLS close_notify (nothing for plain TCP).
    pub fn close_notify(&mut self) {
        if let Stream::Tls(_, tls) = self {
            tls.send_close_notify();
        }
    }
}

/// Reads what the socket has into the decoder without waiting. A short read
/// means the socket is drained, so it also clears tokio's readiness (as
/// tokio's own `poll_read` does), saving the extra `read` that would only
/// return `WouldBlock` before the next wait.
fn read_plain(stream: &TcpStream, decoder: &mut Decoder) -> io::Result<usize> {
    let buf = decoder.buffer_mut();
    let spare = buf.capacity() - buf.len();
    let mut got = 0;
    let r = stream.try_io(Interest::READABLE, || {
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < spare {
            // Returning WouldBlock makes try_io clear the readiness it saw;
            // an event that arrived meanwhile is kept.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}
