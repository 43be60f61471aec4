//! `barrage serve` against clients that try to exhaust it: endless
//! continuation frames (`--max-message-size`), request headers that never
//! end (slowloris, `--header-timeout`) and upgraded connections that never
//! send (`--idle-timeout`). Each test runs the real binary on 127.0.0.1 and
//! talks to it over raw sockets; every wait has a deadline and every loop a
//! count.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// A `barrage serve` child process on a free loopback port; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `barrage serve --listen 127.0.0.1:0 --workers 1 ARGS...` and
    /// reads its port from the startup line.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_barrage"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("barrage serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads stderr to its end (the child's death), so the server never
        // writes into a closed pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().take(10_000) {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Server { child, port: 0 };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("barrage serve prints its startup line");
        server.port = line
            .split("ws://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the startup line: {line}"));
        server
    }

    /// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status of the server");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    fn connect(&self) -> TcpStream {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the server");
        tcp.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        tcp
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the client reads.
#[derive(Debug, PartialEq)]
enum Got {
    Frame { fin: bool, op: u8, payload: Vec<u8> },
    Eof,
}

impl Got {
    /// The code of a close frame.
    fn close_code(&self) -> Option<u16> {
        match self {
            Got::Frame {
                op: 0x8, payload, ..
            } if payload.len() >= 2 => Some(u16::from_be_bytes([payload[0], payload[1]])),
            _ => None,
        }
    }
}

/// An upgraded WebSocket connection, read by hand.
struct Ws {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    /// Connects and upgrades with a hand-written request.
    fn open(server: &Server) -> Ws {
        let mut tcp = server.connect();
        tcp.write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = read_some(&mut tcp, &mut buf, deadline).expect("handshake answer");
            assert!(n > 0, "EOF during the handshake");
            assert!(buf.len() < 64 * 1024, "handshake answer too long");
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        Ws { tcp, buf }
    }

    /// The next frame (or EOF) the server sends, waiting until `deadline`.
    fn next(&mut self, deadline: Instant) -> io::Result<Got> {
        for _ in 0..1_000_000 {
            if let Some((got, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(got);
            }
            if read_some(&mut self.tcp, &mut self.buf, deadline)? == 0 {
                if self.buf.is_empty() {
                    return Ok(Got::Eof);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF mid-frame",
                ));
            }
        }
        Err(io::Error::other("too many reads for one frame"))
    }

    /// The next frame that is not a push, ping or pong: skips up to 10,000.
    fn next_not_data(&mut self, deadline: Instant) -> io::Result<Got> {
        for _ in 0..10_000 {
            match self.next(deadline)? {
                Got::Frame {
                    op: 0x1 | 0x2 | 0x9 | 0xA,
                    ..
                } => {}
                other => return Ok(other),
            }
        }
        Err(io::Error::other("only data frames"))
    }

    fn send(&mut self, fin: bool, op: u8, payload: &[u8]) {
        self.tcp.write_all(&client_frame(fin, op, payload)).unwrap();
    }
}

/// Reads what is there into `buf`, waiting until `deadline`; the count read
/// (0 at EOF), or `TimedOut`.
fn read_some(tcp: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    tcp.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 64 * 1024];
    match tcp.read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
        Err(e) => Err(e),
    }
}

/// One frame from the front of `b`, with the bytes it takes.
fn parse_frame(b: &[u8]) -> Option<(Got, usize)> {
    if b.len() < 2 {
        return None;
    }
    let (fin, op) = (b[0] & 0x80 != 0, b[0] & 0x0F);
    let masked = b[1] & 0x80 != 0;
    let (len, mut at) = match b[1] & 0x7F {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let mask = if masked {
        let m: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(m)
    } else {
        None
    };
    let mut payload = b.get(at..at + len)?.to_vec();
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, c)| *c ^= m[i % 4]);
    }
    Some((Got::Frame { fin, op, payload }, at + len))
}

/// A masked client frame.
fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];
    let mut f = vec![(u8::from(fin) << 7) | op];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, c)| c ^ MASK[i % 4]));
    f
}

/// A text frame with FIN=0 of 1 MiB, then continuation frames of 1 MiB
/// without end (up to 96 MiB in all): the connection must be closed with
/// 1009 and EOF soon after the 4 MiB limit, and the server must not hold
/// what was sent.
#[test]
fn endless_continuation_frames_are_closed_with_1009_at_max_message_size() {
    let server = Server::start(&["--max-message-size", "4MiB"]);
    let mut ws = Ws::open(&server);
    let rss_before = server.memory_kib("VmRSS");

    // The payload is the same in every frame, and so is its masked form.
    let payload = vec![b'a'; MIB];
    let first = client_frame(false, 0x1, &payload);
    let more = client_frame(false, 0x0, &payload);
    let mut writer = ws.tcp.try_clone().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let seen_close = closed.clone();
    // A hostile client: it goes on sending after the close frame, until
    // the server drops the connection or 96 MiB are out.
    let sending = thread::spawn(move || {
        let mut sent = 0usize;
        let mut after_close = 0usize;
        for i in 0..96 {
            let frame = if i == 0 { &first } else { &more };
            if writer.write_all(frame).is_err() {
                break;
            }
            sent += MIB;
            if seen_close.load(Ordering::Relaxed) {
                after_close += MIB;
            }
        }
        (sent, after_close)
    });

    let start = Instant::now();
    let deadline = start + Duration::from_secs(15);
    let close = ws.next_not_data(deadline);
    closed.store(true, Ordering::Relaxed);
    let after = ws.next(deadline);
    let elapsed = start.elapsed();
    let (sent, after_close) = sending.join().unwrap();
    let (rss, peak) = (server.memory_kib("VmRSS"), server.memory_kib("VmHWM"));
    eprintln!(
        "close {close:?} then {after:?} after {elapsed:?}; {} MiB sent ({} MiB after the close); \
         server RSS {rss_before} KiB before, {rss} KiB after, peak {peak} KiB",
        sent / MIB,
        after_close / MIB
    );
    let close = close.expect("a close frame");
    assert_eq!(close.close_code(), Some(1009), "{close:?}");
    assert!(
        matches!(after, Ok(Got::Eof)),
        "EOF after the close: {after:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The server did take well past the limit (it reads and drops what
    // comes after its close) without keeping it.
    assert!(sent >= 8 * MIB, "only {sent} bytes sent");
    let grown_kib = peak.saturating_sub(rss_before);
    assert!(
        (grown_kib as usize) * 1024 < 32 * MIB && (grown_kib as usize) * 1024 < sent / 2,
        "server memory grew by {grown_kib} KiB for {} MiB sent",
        sent / MIB
    );
}

/// The limit counts whole messages: exactly 4 MiB in fragments is echoed,
/// a single frame one byte over is refused with 1009 before its payload.
#[test]
fn max_message_size_is_inclusive_and_applies_to_single_frames() {
    let server = Server::start(&["--max-message-size", "4MiB"]);
    let mut ws = Ws::open(&server);
    let deadline = Instant::now() + Duration::from_secs(15);
    let quarter = vec![b'b'; MIB];
    ws.send(false, 0x2, &quarter);
    for i in 1..4 {
        ws.send(i == 3, 0x0, &quarter);
    }
    match ws.next(deadline).expect("the echo") {
        Got::Frame { fin, op, payload } => {
            assert!(fin);
            assert_eq!(op, 0x2);
            assert_eq!(payload.len(), 4 * MIB);
        }
        Got::Eof => panic!("EOF instead of the echo"),
    }
    // Only the header of the over-long frame: the server must not wait for
    // its payload to refuse it.
    let mut header = client_frame(true, 0x2, &[]);
    header[1] = 0x80 | 127;
    header.splice(2..2, ((4 * MIB + 1) as u64).to_be_bytes());
    ws.tcp.write_all(&header).unwrap();
    let close = ws.next(deadline).expect("a close frame");
    assert_eq!(close.close_code(), Some(1009), "{close:?}");
    assert_eq!(ws.next(deadline).expect("EOF"), Got::Eof);
}

/// The codec path (broadcast, push, compressed echo) takes the same limit.
#[test]
fn broadcast_mode_applies_max_message_size_to_fragments() {
    let server = Server::start(&["--mode", "broadcast", "--max-message-size", "2MiB"]);
    let mut ws = Ws::open(&server);
    let deadline = Instant::now() + Duration::from_secs(15);
    let chunk = vec![b'c'; MIB];
    ws.send(false, 0x1, &chunk);
    ws.send(false, 0x0, &chunk);
    // The header of a third MiB is enough to go over.
    ws.send(false, 0x0, &chunk);
    let close = ws.next_not_data(deadline).expect("a close frame");
    assert_eq!(close.close_code(), Some(1009), "{close:?}");
    assert_eq!(ws.next(deadline).expect("EOF"), Got::Eof);
}

/// Reads until EOF (or `deadline`); what was read, and when EOF came.
fn read_to_eof(tcp: &mut TcpStream, deadline: Instant) -> (Vec<u8>, io::Result<Instant>) {
    let mut buf = Vec::new();
    for _ in 0..10_000 {
        match read_some(tcp, &mut buf, deadline) {
            Ok(0) => return (buf, Ok(Instant::now())),
            Ok(_) => {}
            Err(e) => return (buf, Err(e)),
        }
    }
    (buf, Err(io::Error::other("no EOF after 10,000 reads")))
}

/// Slowloris: 20 sockets send the start of a request and then nothing.
/// With `--header-timeout 1s` every one is closed (EOF) within 3 s, not
/// at once; so is a keep-alive socket idle after a complete request.
#[test]
fn slowloris_requests_are_closed_after_header_timeout() {
    let server = Server::start(&["--header-timeout", "1s"]);
    let start = Instant::now();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut tcp = server.connect();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            tcp
        })
        .collect();
    // A complete request that is not an upgrade (answered 426), then silence.
    let mut keep_alive = server.connect();
    keep_alive
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let deadline = start + Duration::from_secs(3);
    for (i, tcp) in slow.iter_mut().enumerate() {
        let (bytes, eof) = read_to_eof(tcp, deadline);
        let at = eof.unwrap_or_else(|e| panic!("socket {i} still open after 3 s: {e}"));
        let after = at.duration_since(start);
        assert!(
            after >= Duration::from_millis(900),
            "socket {i} closed after {after:?}"
        );
        assert!(
            bytes.is_empty() || bytes.starts_with(b"HTTP/1.1 408"),
            "socket {i} was sent {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let (bytes, eof) = read_to_eof(&mut keep_alive, deadline);
    let answer = String::from_utf8_lossy(&bytes);
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    eof.expect("the idle keep-alive socket closed within 3 s");
}

/// `--idle-timeout 1s`: an upgraded client that sends nothing is closed
/// (1001 "idle timeout", then EOF) within 3 s; one that sends now and then
/// is not.
#[test]
fn idle_upgraded_connections_are_closed_with_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "1s"]);
    let mut silent = Ws::open(&server);
    let start = Instant::now();
    let mut chatty = Ws::open(&server);
    // Chatty: a message every 400 ms for 2.4 s, each echoed.
    for i in 0..6u8 {
        thread::sleep(Duration::from_millis(400));
        chatty.send(true, 0x1, &[b'0' + i]);
        let echo = chatty.next(Instant::now() + Duration::from_secs(3));
        assert!(
            matches!(&echo, Ok(Got::Frame { op: 0x1, payload, .. }) if payload == &[b'0' + i]),
            "message {i} after {:?}: {echo:?}",
            start.elapsed()
        );
    }
    // Silent was closed meanwhile, but not before its second.
    let deadline = start + Duration::from_secs(3);
    let close = silent.next(deadline).expect("a close frame");
    assert_eq!(close.close_code(), Some(1001), "{close:?}");
    let Got::Frame { payload, .. } = &close else {
        unreachable!()
    };
    assert_eq!(&payload[2..], b"idle timeout");
    let (_, eof) = read_to_eof(&mut silent.tcp, deadline);
    let at = eof.expect("EOF within 3 s").duration_since(start);
    assert!(at >= Duration::from_millis(900), "closed after {at:?}");
}

/// Without `--idle-timeout` a silent upgraded client stays open.
#[test]
fn without_idle_timeout_silent_connections_stay_open() {
    let server = Server::start(&[]);
    let mut ws = Ws::open(&server);
    let waited = ws.next(Instant::now() + Duration::from_secs(2));
    assert!(
        matches!(&waited, Err(e) if e.kind() == io::ErrorKind::TimedOut),
        "{waited:?}"
    );
    ws.send(true, 0x1, b"still there?");
    let echo = ws.next(Instant::now() + Duration::from_secs(5)).unwrap();
    assert_eq!(
        echo,
        Got::Frame {
            fin: true,
            op: 0x1,
            payload: b"still there?".to_vec()
        }
    );
}

/// Push subscribers never send: `--idle-timeout` closes them (which is why
/// it is off by default), after their pushes.
#[test]
fn idle_timeout_closes_silent_push_subscribers() {
    let server = Server::start(&[
        "--mode",
        "push",
        "--push-rate",
        "20/s",
        "--idle-timeout",
        "1s",
    ]);
    let mut ws = Ws::open(&server);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3);
    let mut pushes = 0;
    let close = loop {
        assert!(pushes < 1000, "too many pushes");
        match ws.next(deadline).expect("pushes, then a close frame") {
            Got::Frame { op: 0x1, .. } => pushes += 1,
            other => break other,
        }
    };
    assert!(pushes >= 5, "{pushes} pushes before the close");
    assert_eq!(close.close_code(), Some(1001), "{close:?}");
    assert_eq!(ws.next(deadline).expect("EOF"), Got::Eof);
    assert!(start.elapsed() >= Duration::from_millis(900));
}

/// The three flags refuse values they cannot use.
#[test]
fn hardening_flags_are_validated() {
    for args in [
        ["--max-message-size", "100"],
        ["--max-message-size", "2GiB"],
        ["--header-timeout", "0s"],
        ["--header-timeout", "10"],
        ["--idle-timeout", "soon"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_barrage"))
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A value wrongly accepted would start a server: wait 10 s at most.
        let mut status = None;
        for _ in 0..200 {
            status = child.try_wait().unwrap();
            if status.is_some() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} was accepted");
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?}: {err}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_barrage"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--max-message-size", "--header-timeout", "--idle-timeout"] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}
