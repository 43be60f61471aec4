//! Write coalescing for the echo server: writes are buffered and go out when
//! the connection has nothing more to read (or the buffer is full), so a
//! burst of pipelined messages is answered with one `write` instead of one
//! per frame. fastwebsockets never flushes on its own, and it reads through
//! this wrapper, so the moment its read would wait is the moment to send.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered before a write is forced even with more input waiting.
const LIMIT: usize = 64 * 1024;

/// A stream whose writes wait until its reads would block.
pub struct Coalescing<S> {
    inner: S,
    out: Vec<u8>,
    pos: usize,
}

impl<S> Coalescing<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Coalescing {
            inner,
            out: Vec::new(),
            pos: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Writes out everything buffered.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.out.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => match this.poll_send(cx) {
                // Nothing more to read for now: answer what was read.
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= LIMIT {
            ready!(this.poll_send(cx))?;
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_reader_to_run_dry() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut server = Coalescing::new(server);
        let (mut c_read, mut c_write) = tokio::io::split(client);
        c_write.write_all(b"ab").await.unwrap();
        let mut buf = [0u8; 1];
        // Two reads, two echoes: nothing is sent while input is waiting.
        for _ in 0..2 {
            server.read_exact(&mut buf).await.unwrap();
            server.write_all(&buf).await.unwrap();
        }
        assert_eq!(server.out, b"ab");
        // The next read finds nothing and sends both echoes in one write.
        let mut more = [0u8; 1];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut more))
                .await;
        assert!(read.is_err(), "no input yet");
        assert!(server.out.is_empty());
        let mut echoed = [0u8; 2];
        c_read.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ab");
    }
}
