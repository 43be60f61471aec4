//! [`TlsIo`]: moving bytes between a readiness-driven `TcpStream` and a
//! rustls client connection once the handshake is done.

use std::io::{self, Read, Write};

use rustls::ClientConnection;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::SEND_BUFFER_LIMIT;

/// What one [`TlsIo::read_plain`] call produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Plaintext bytes appended to `out`.
    pub plain: usize,
    /// The peer closed: nothing more will arrive (plaintext of this call,
    /// if any, came before the close).
    pub eof: bool,
    /// The close was a TLS `close_notify`; false with `eof` means a bare
    /// TCP EOF (possible truncation).
    pub close_notify: bool,
}

/// `io::Read` over a socket without waiting: `try_read`, and a short read
/// (the socket is drained) clears tokio's read readiness as a `WouldBlock`
/// would, so the caller's next `readable()` waits for new data without an
/// extra `read` syscall. `drained` records that it happened.
struct SocketReader<'a> {
    stream: &'a TcpStream,
    drained: bool,
}

impl Read for SocketReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let spare = buf.len();
        let mut got = 0;
        let stream = self.stream;
        let r = stream.try_io(Interest::READABLE, || {
            got = stream.try_read(buf)?;
            if got > 0 && got < spare {
                // Makes try_io clear the readiness it saw; an event that
                // arrived meanwhile is kept.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
                self.drained = true;
                Ok(got)
            }
            other => other,
        }
    }
}

/// `io::Write` over a socket without waiting (`try_write`).
struct SocketWriter<'a>(&'a TcpStream);

impl Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Non-blocking TLS I/O over a tokio `TcpStream` driven by readiness
/// (`readable()`/`writable()`, never `AsyncRead`), after a handshake done
/// with `tokio_rustls::TlsConnector` and taken apart with `into_inner()`.
///
/// Contract for the connection loop:
/// - call [`read_plain`](Self::read_plain) once right after construction
///   (the handshake may have left records or plaintext inside rustls, which
///   no socket readiness would announce), then whenever `readable()` fires;
///   `Err(WouldBlock)` means wait for `readable()` again;
/// - after any call, if [`wants_write`](Self::wants_write), wait for
///   `writable()` and call [`flush`](Self::flush).
pub struct TlsIo {
    conn: ClientConnection,
    /// Plaintext accepted by `write_plain` that rustls had no room for yet
    /// (its ciphertext buffer is capped at [`SEND_BUFFER_LIMIT`]).
    backlog: Vec<u8>,
}

impl TlsIo {
    /// Takes over an established client connection and caps its ciphertext
    /// buffer at [`SEND_BUFFER_LIMIT`].
    pub fn new(mut conn: ClientConnection) -> Self {
        conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Self {
            conn,
            backlog: Vec::new(),
        }
    }

    /// The rustls connection (negotiated ALPN, protocol version, ...).
    pub fn connection(&self) -> &ClientConnection {
        &self.conn
    }

    /// Reads all ciphertext the socket has now (until it is drained or at
    /// EOF, so tokio's read readiness is cleared), processes it, and appends
    /// all available plaintext to `out`, including plaintext rustls already
    /// held. Returns how much was appended and whether the peer closed;
    /// `Err(WouldBlock)` when there was no plaintext and no close; other
    /// errors for socket failures and TLS failures (`InvalidData` with
    /// rustls's message; the alert rustls queued is sent on a best-effort
    /// basis). Also writes what rustls queued in reply (e.g. a TLS 1.3 key
    /// update) as far as the socket takes it.
    pub fn read_plain(&mut self, stream: &TcpStream, out: &mut Vec<u8>) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        // Records read earlier (by the handshake driver) come first.
        self.process(stream, out, &mut outcome)?;
        let mut socket = SocketReader {
            stream,
            drained: false,
        };
        while !outcome.eof {
            match self.conn.read_tls(&mut socket) {
                // TCP EOF: rustls notes it; no more records can complete.
                Ok(0) => outcome.eof = true,
                Ok(_) => {
                    self.process(stream, out, &mut outcome)?;
                    if socket.drained {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wants_write() {
            // Best effort: a failing socket shows in the next write or read,
            // and the plaintext of this call must not be lost to it.
            let _ = self.flush(stream);
        }
        if outcome.plain == 0 && !outcome.eof {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(outcome)
    }

    /// Processes the records rustls holds and moves their plaintext to `out`.
    fn process(
        &mut self,
        stream: &TcpStream,
        out: &mut Vec<u8>,
        outcome: &mut ReadOutcome,
    ) -> io::Result<()> {
        let state = match self.conn.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                let _ = self.conn.write_tls(&mut SocketWriter(stream));
                return Err(tls_error(e));
            }
        };
        let n = state.plaintext_bytes_to_read();
        if n > 0 {
            let start = out.len();
            out.resize(start + n, 0);
            self.conn.reader().read_exact(&mut out[start..])?;
            outcome.plain += n;
        }
        if state.peer_has_closed() {
            outcome.eof = true;
            outcome.close_notify = true;
        }
        Ok(())
    }

    /// Hands `plain` to rustls and writes as much ciphertext as the socket
    /// takes now. All of `plain` is accepted: what rustls has no room for
    /// waits in the backlog. Returns `Ok(())` whether or not everything went
    /// out (never `WouldBlock`); [`wants_write`](Self::wants_write) tells
    /// whether something is still queued.
    pub fn write_plain(&mut self, stream: &TcpStream, plain: &[u8]) -> io::Result<()> {
        let rest = if self.backlog.is_empty() {
            let taken = self.conn.writer().write(plain)?;
            &plain[taken..]
        } else {
            plain
        };
        self.backlog.extend_from_slice(rest);
        self.flush(stream)
    }

    /// Hands rustls as much of `plain` as its buffer takes and writes
    /// ciphertext as far as the socket takes it; returns the plaintext
    /// bytes taken (0 when rustls is full). Unlike
    /// [`write_plain`](Self::write_plain) nothing waits outside rustls, so
    /// the caller's own queue bounds memory.
    pub fn write_some(&mut self, stream: &TcpStream, plain: &[u8]) -> io::Result<usize> {
        self.flush(stream)?;
        if !self.backlog.is_empty() {
            return Ok(0);
        }
        let taken = self.conn.writer().write(plain)?;
        self.flush(stream)?;
        Ok(taken)
    }

    /// Writes queued ciphertext, and encrypts the backlog as room frees up,
    /// until everything is out or the socket would block (which clears
    /// tokio's write readiness). Never returns `WouldBlock`; check
    /// [`wants_write`](Self::wants_write).
    pub fn flush(&mut self, stream: &TcpStream) -> io::Result<()> {
        loop {
            if !self.backlog.is_empty() {
                let taken = self.conn.writer().write(&self.backlog)?;
                self.backlog.drain(..taken);
            }
            if !self.conn.wants_write() {
                if self.backlog.is_empty() {
                    return Ok(());
                }
                // rustls took nothing yet has nothing to send: cannot
                // progress (e.g. the connection was closed for writing).
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "TLS connection no longer accepts data",
                ));
            }
            match self.conn.write_tls(&mut SocketWriter(stream)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether ciphertext or backlogged plaintext waits for the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write() || !self.backlog.is_empty()
    }

    /// Queues a close_notify (after any backlogged plaintext); send it with
    /// [`flush`](Self::flush).
    pub fn send_close_notify(&mut self) {
        if !self.backlog.is_empty() {
            // Plaintext accepted earlier goes out before the close.
            self.conn.set_buffer_limit(None);
            let backlog = std::mem::take(&mut self.backlog);
            // Unlimited buffer: takes everything unless writing is closed.
            let _ = self.conn.writer().write_all(&backlog);
            self.conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        }
        self.conn.send_close_notify();
    }
}
