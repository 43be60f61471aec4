//! The idle timeout of upgraded connections (`barrage serve --idle-timeout`):
//! a stream whose reads fail with [`io::ErrorKind::TimedOut`] once nothing
//! has been received for the limit, and the closing of a connection the
//! server gives up on (close frame out, then the client's last bytes
//! drained so they do not turn the close into a reset).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The reason sent with the close frame of a connection that was idle.
pub(super) const IDLE_REASON: &[u8] = b"idle timeout";

/// The close code of a connection that was idle: 1001, going away.
pub(super) const IDLE_CLOSE: u16 = 1001;

/// A stream whose reads end with a `TimedOut` error when `limit` passes
/// without a byte received; without a limit it only passes calls on.
pub(super) struct Idle<S> {
    inner: S,
    timer: Option<Timer>,
}

struct Timer {
    limit: Duration,
    /// When the last byte arrived (or the connection was upgraded).
    last: Instant,
    /// Fires at or after `last + limit`; moved forward lazily, so a busy
    /// connection does not touch the timer wheel on every read.
    sleep: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    pub(super) fn new(inner: S, limit: Option<Duration>) -> Self {
        let timer = limit.map(|limit| {
            let last = Instant::now();
            Timer {
                limit,
                last,
                sleep: Box::pin(tokio::time::sleep_until(last + limit)),
            }
        });
        Idle { inner, timer }
    }
}

/// True for the error [`Idle`] reads end with.
pub(super) fn is_idle_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(t) = &mut this.timer else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                t.last = Instant::now();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => loop {
                if t.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let deadline = t.last + t.limit;
                if deadline <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "idle timeout",
                    )));
                }
                // Bytes came since the timer was set: wait out the rest.
                t.sleep.as_mut().reset(deadline);
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Ends our side of a connection whose close frame is already written (or
/// buffered in `io`): sends what is buffered and a FIN, then reads and
/// discards what the client still sends until it closes too. Closing a
/// socket with unread input makes the kernel send a reset, which can
/// destroy the close frame before the client reads it, and a client told
/// "message too big" is usually still sending. Callers bound it in time.
pub(super) async fn linger<S>(io: &mut S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.shutdown().await?;
    let mut sink = vec![0u8; 64 * 1024];
    while io.read(&mut sink).await? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_time_out_only_after_the_limit_without_input() {
        let (mut client, server) = tokio::io::duplex(1024);
        let limit = Duration::from_millis(300);
        let mut idle = Idle::new(server, Some(limit));
        let mut buf = [0u8; 8];
        // A byte every 150 ms keeps it open past the limit.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        let start = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
        let err = read.expect("timed out by the limit").unwrap_err();
        assert!(is_idle_timeout(&err), "{err}");
        let waited = start.elapsed();
        assert!(waited >= limit - Duration::from_millis(20), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn without_a_limit_reads_wait() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut idle = Idle::new(server, None);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_millis(400), idle.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting");
    }
}
