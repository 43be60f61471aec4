//! The built-in server's broadcast and push modes, driven over real loopback
//! sockets by clients made of barrage's own handshake and codec: room
//! fan-out and joins (with and without permessage-deflate, rooms shared
//! across worker threads), the ticker's rate, size and fields, echo in push
//! mode, control frames, protocol errors, shutdown, and `barrage serve`'s
//! push flags.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use barrage::server::{self, Mode, Options};
use barrage::ws::codec::{Event, opcode};
use barrage::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use barrage::ws::handshake::{UpgradeRequest, client_handshake};
use barrage::ws::{Decoder, Encoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Something the server sent.
#[derive(Debug, PartialEq)]
enum Got {
    Message(u8, Vec<u8>),
    Pong(Vec<u8>),
    Close(u16),
    /// The server closed the TCP connection.
    Eof,
}

/// A WebSocket client on barrage's codec.
struct Client {
    tcp: TcpStream,
    decoder: Decoder,
    encoder: Encoder,
    rng: fastrand::Rng,
}

impl Client {
    /// Connects to `path`, offering permessage-deflate when `compress`, and
    /// checks the server agreed to exactly that.
    async fn connect(port: u16, path: &str, compress: bool) -> Client {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let offer = compress.then(DeflateParams::default);
        let req = UpgradeRequest::new(
            &format!("127.0.0.1:{port}"),
            path,
            &[],
            None,
            &[],
            offer.as_ref().map(DeflateParams::offer),
        );
        let mut rng = fastrand::Rng::new();
        let up = client_handshake(&mut tcp, &req, &mut rng).await.unwrap();
        let agreed = offer.and_then(|o| o.accept_response(&up.extensions).unwrap());
        assert_eq!(agreed.is_some(), compress, "deflate agreed: {agreed:?}");
        let inflater = agreed.as_ref().map(|a| Inflater::new(Role::Client, a));
        let deflater = agreed.as_ref().map(|a| Deflater::new(Role::Client, a));
        Client {
            tcp,
            decoder: Decoder::with_role(Role::Client, 64 << 20, inflater, up.leftover),
            encoder: Encoder::new(Role::Client, deflater, None),
            rng,
        }
    }

    async fn send(&mut self, op: u8, payload: &[u8]) {
        let mut out = Vec::new();
        self.encoder
            .message(&mut out, op, payload, &mut self.rng)
            .unwrap();
        self.tcp.write_all(&out).await.unwrap();
    }

    async fn send_control(&mut self, op: u8, payload: &[u8]) {
        let mut out = Vec::new();
        self.encoder.control(&mut out, op, payload, &mut self.rng);
        self.tcp.write_all(&out).await.unwrap();
    }

    /// The next thing the server sends within `limit`; `None` if nothing.
    async fn next(&mut self, limit: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = match self.decoder.next_event().unwrap() {
                Some(Event::Message {
                    opcode: op,
                    payload,
                    ..
                }) => Got::Message(op, payload.to_vec()),
                Some(Event::Pong(p)) => Got::Pong(p.to_vec()),
                Some(Event::Close { code }) => Got::Close(code),
                Some(Event::Ping(_)) => continue,
                None => {
                    let read = self.tcp.read_buf(self.decoder.buffer_mut());
                    match tokio::time::timeout_at(deadline, read).await {
                        Err(_) => return None,
                        Ok(Ok(0) | Err(_)) => Got::Eof,
                        Ok(Ok(_)) => continue,
                    }
                }
            };
            return Some(got);
        }
    }

    /// The next data message, within 5 s.
    async fn message(&mut self) -> (u8, Vec<u8>) {
        match self.next(Duration::from_secs(5)).await {
            Some(Got::Message(op, p)) => (op, p),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message as JSON, within 5 s.
    async fn json(&mut self) -> serde_json::Value {
        let (op, p) = self.message().await;
        assert_eq!(op, opcode::TEXT);
        serde_json::from_slice(&p).unwrap()
    }

    /// Asserts nothing is waiting (call after giving it time to arrive).
    async fn assert_silent(&mut self, who: &str) {
        let got = self.next(Duration::from_millis(20)).await;
        assert_eq!(got, None, "{who} got something extra");
    }
}

/// The 20 messages of the fan-out test: text and binary, tiny to 60 KB.
fn chat_messages() -> Vec<(u8, Vec<u8>)> {
    (0..20)
        .map(|i| {
            if i % 2 == 0 {
                let text = format!("message {i} {}", "héllo ".repeat(i * i * 10));
                (opcode::TEXT, text.into_bytes())
            } else {
                let bytes = (0..i * i * 150).map(|j| (j * 31 + i) as u8).collect();
                (opcode::BINARY, bytes)
            }
        })
        .collect()
}

/// Runs a test body, failing it (rather than hanging) after 30 s: a server
/// that sends where it should not can leave a client blocked in a write.
async fn within_30s(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .expect("test body finished within 30 s");
}

async fn connect_all(port: u16, path: &str, n: usize, compress: bool) -> Vec<Client> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(Client::connect(port, path, compress).await);
    }
    v
}

/// Rooms with fan-out and joins, on two worker threads (rooms must be
/// shared between them).
async fn broadcast_rooms(compression: bool) {
    let opts = Options {
        compression,
        ..Mode::Broadcast.into()
    };
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), opts, 2)
        .await
        .unwrap();
    // Stops the worker threads even when an assertion fails (the test
    // runtime would otherwise wait for them forever).
    let _stop = srv.cancel_token().drop_guard();
    let port = srv.local_addr.port();
    let mut a = connect_all(port, "/room/a", 5, compression).await;
    let mut b = connect_all(port, "/room/b", 2, compression).await;

    let msgs = chat_messages();
    for (op, p) in &msgs {
        a[0].send(*op, p).await;
    }
    for (i, c) in a.iter_mut().enumerate().skip(1) {
        for (n, (op, p)) in msgs.iter().enumerate() {
            let (got_op, got) = c.message().await;
            assert!(
                got_op == *op && got == *p,
                "a[{i}] message {n}: opcode {got_op} ({} bytes) for {op} ({} bytes)",
                got.len(),
                p.len()
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, c) in a.iter_mut().enumerate() {
        c.assert_silent(&format!("a[{i}]")).await;
    }
    for (i, c) in b.iter_mut().enumerate() {
        c.assert_silent(&format!("b[{i}]")).await;
    }
    assert_eq!(srv.stats.messages.load(Relaxed), 4 * 20);

    // b[0] moves to room a: six members now, and only it hears the answer.
    b[0].send(opcode::TEXT, br#"{"op":"join","room":"a"}"#)
        .await;
    let (op, reply) = b[0].message().await;
    assert_eq!(op, opcode::TEXT);
    assert_eq!(reply, br#"{"op":"joined","room":"a","members":6}"#);
    // b[1] is alone in b now.
    b[1].send(opcode::TEXT, b"anyone?").await;
    // Not a join (the room is no string): an ordinary message.
    let not_join = br#"{"op":"join","room":7}"#;
    a[2].send(opcode::TEXT, not_join).await;
    for i in [0, 1, 3, 4] {
        assert_eq!(a[i].message().await, (opcode::TEXT, not_join.to_vec()));
    }
    assert_eq!(b[0].message().await, (opcode::TEXT, not_join.to_vec()));
    // b[1] moves to a new room of its own.
    b[1].send(opcode::TEXT, br#" {"room":"c","op":"join"}"#)
        .await;
    let joined = b[1].json().await;
    assert_eq!(joined["op"], "joined");
    assert_eq!(joined["room"], "c");
    assert_eq!(joined["members"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in a.iter_mut().chain(b.iter_mut()) {
        c.assert_silent("after the joins").await;
    }
    assert_eq!(srv.stats.messages.load(Relaxed), 4 * 20 + 1 + 5 + 1);
    assert_eq!(srv.stats.dropped.load(Relaxed), 0);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_delivers_to_the_rest_of_the_room_and_joins_move() {
    within_30s(broadcast_rooms(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_with_permessage_deflate() {
    within_30s(broadcast_rooms(true)).await;
}

#[tokio::test]
async fn other_paths_share_the_lobby() {
    within_30s(async {
        let srv = server::start("127.0.0.1:0".parse().unwrap(), Mode::Broadcast.into())
            .await
            .unwrap();
        let port = srv.local_addr.port();
        let mut x = Client::connect(port, "/", false).await;
        let mut y = Client::connect(port, "/chat?room=a", false).await;
        let mut z = Client::connect(port, "/room/lobby", false).await;
        x.send(opcode::BINARY, &[0, 1, 2]).await;
        assert_eq!(y.message().await, (opcode::BINARY, vec![0, 1, 2]));
        assert_eq!(z.message().await, (opcode::BINARY, vec![0, 1, 2]));
        y.send(opcode::TEXT, br#"{"op":"join","room":"lobby"}"#)
            .await;
        let joined = y.json().await;
        assert_eq!(joined["members"], 3, "{joined}");
        srv.shutdown().await;
    })
    .await;
}

/// One push connection for about a second: rate, size, fields; then a
/// client message comes back among the pushes.
async fn push_ticker(compression: bool) {
    let opts = Options {
        push_rate: 50.0,
        push_size: 200,
        compression,
        ..Mode::Push.into()
    };
    let srv = server::start("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    let mut c = Client::connect(srv.local_addr.port(), "/", compression).await;
    let start = Instant::now();
    let mut seq = 0u64;
    let check = |p: &[u8], seq: u64| {
        assert_eq!(p.len(), 200, "{}", String::from_utf8_lossy(p));
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        assert_eq!(v["seq"], seq, "{v}");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ts = v["ts"].as_u64().unwrap() as i128;
        let skew = now.as_micros() as i128 - ts;
        assert!(skew.abs() < 1_000_000, "ts {ts} is {skew} µs off");
        let pad = v["pad"].as_str().unwrap();
        assert!(!pad.is_empty() && pad.bytes().all(|b| b == b'x'), "{v}");
    };
    while start.elapsed() < Duration::from_secs(1) {
        let left = Duration::from_secs(1).saturating_sub(start.elapsed());
        match c.next(left).await {
            Some(Got::Message(op, p)) => {
                assert_eq!(op, opcode::TEXT);
                check(&p, seq);
                seq += 1;
            }
            None => break,
            other => panic!("{other:?}"),
        }
    }
    assert!((40..=60).contains(&seq), "{seq} pushes in a second at 50/s");

    let subscribe = br#"{"op":"subscribe","topic":"ticker"}"#;
    c.send(opcode::TEXT, subscribe).await;
    c.send(opcode::BINARY, &[9; 1000]).await;
    let mut echoed = Vec::new();
    while echoed.len() < 2 {
        let (op, p) = c.message().await;
        if p.starts_with(br#"{"seq":"#) {
            check(&p, seq);
            seq += 1;
        } else {
            echoed.push((op, p));
        }
    }
    assert_eq!(echoed[0], (opcode::TEXT, subscribe.to_vec()));
    assert_eq!(echoed[1], (opcode::BINARY, vec![9; 1000]));
    assert!(srv.stats.messages.load(Relaxed) >= seq + 2);

    // Shutdown closes with 1001 "going away".
    srv.shutdown().await;
    loop {
        match c.next(Duration::from_secs(2)).await {
            Some(Got::Message(..)) => continue,
            got => {
                assert_eq!(got, Some(Got::Close(1001)));
                break;
            }
        }
    }
}

#[tokio::test]
async fn push_sends_sized_numbered_messages_at_the_rate_and_echoes() {
    within_30s(push_ticker(false)).await;
}

#[tokio::test]
async fn push_with_permessage_deflate() {
    within_30s(push_ticker(true)).await;
}

#[tokio::test]
async fn pings_closes_and_protocol_errors() {
    within_30s(async {
        let srv = server::start("127.0.0.1:0".parse().unwrap(), Mode::Broadcast.into())
            .await
            .unwrap();
        let port = srv.local_addr.port();

        let mut c = Client::connect(port, "/", false).await;
        c.send_control(opcode::PING, b"are you there").await;
        let pong = c.next(Duration::from_secs(5)).await;
        assert_eq!(pong, Some(Got::Pong(b"are you there".to_vec())));
        c.send_control(opcode::CLOSE, &4000u16.to_be_bytes()).await;
        assert_eq!(c.next(Duration::from_secs(5)).await, Some(Got::Close(4000)));
        assert_eq!(c.next(Duration::from_secs(5)).await, Some(Got::Eof));

        // An unmasked client frame (1002), text that is not UTF-8 (1007), a
        // frame claiming 2^62 bytes (1009).
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        let mut huge = vec![0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0];
        huge.extend_from_slice(&[1, 2, 3, 4]);
        for (raw, code) in [(Some(unmasked), 1002), (None, 1007), (Some(huge), 1009)] {
            let mut c = Client::connect(port, "/", false).await;
            match raw {
                Some(bytes) => c.tcp.write_all(&bytes).await.unwrap(),
                None => c.send(opcode::TEXT, &[b'a', 0xFF, 0xFE]).await,
            }
            assert_eq!(c.next(Duration::from_secs(5)).await, Some(Got::Close(code)));
            assert_eq!(c.next(Duration::from_secs(5)).await, Some(Got::Eof));
        }
        srv.shutdown().await;
    })
    .await;
}

/// `barrage serve --mode push` with the rate and size flags, end to end.
#[tokio::test]
async fn serve_command_takes_push_rate_and_size() {
    within_30s(async {
        let bin = env!("CARGO_BIN_EXE_barrage");
        let out = std::process::Command::new(bin)
            .args(["serve", "--push-rate", "5"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "push flags without --mode push");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--mode push"));

        let child = std::process::Command::new(bin)
            .args([
                "serve",
                "--mode",
                "push",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
            ])
            .args(["--push-rate", "600/m", "--push-size", "1KiB"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let mut line = String::new();
        BufReader::new(child.0.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: Option<u16> = line
            .split("ws://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok());
        assert!(line.contains("push (10/s, 1024 B per message)"), "{line}");
        let mut c = Client::connect(port.expect("port in the startup line"), "/", false).await;
        let start = Instant::now();
        for seq in 0..3u64 {
            let (_, p) = c.message().await;
            assert_eq!(p.len(), 1024);
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            assert_eq!(v["seq"], seq);
        }
        // 10/s: the third comes 200 ms after the first.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
    })
    .await;
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server handle dropped without `shutdown` (a test that panics, an early
/// return) stops its server: the listener closes and the worker threads
/// end, instead of serving on and keeping the runtime from ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_handle_stops_the_server() {
    let srv = barrage::server::start_workers(
        "127.0.0.1:0".parse().unwrap(),
        barrage::server::Mode::Echo.into(),
        2,
    )
    .await
    .unwrap();
    let addr = srv.local_addr;
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(srv);
    let t0 = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "still accepting after the handle was dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
