//! Misbehaving servers on loopback, one per fault: each breaks the protocol
//! (or HTTP) its own way right after the upgrade, and barrage must count it
//! by kind with its reason, answer with the right close code, never hang and
//! still write the report.

use crate::common;

use common::{bad_server, frame, read_report, run_yaml};

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

async fn run_against(addr: SocketAddr) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: faults\ntarget: ws://{addr}/\nconnections: {{ count: 2, timeout: 2s }}\n\
         phases:\n  - {{ name: p, duration: 500ms, rate: 20/s }}\n"
    );
    let out = dir.path().join("out");
    let t0 = std::time::Instant::now();
    run_yaml(&yaml, &out).await;
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t0.elapsed()
    );
    read_report(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_are_counted_with_their_reason_and_close_code() {
    let mut huge = vec![0x82, 127];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        ("reserved bits", frame(0xC1, b"x"), "reserved bits", 1002),
        (
            "reserved opcode",
            frame(0x83, b"x"),
            "reserved opcode 0x3",
            1002,
        ),
        (
            "invalid UTF-8",
            frame(0x81, &[0xC3, 0x28]),
            "invalid UTF-8",
            1007,
        ),
        (
            "masked server frame",
            vec![0x81, 0x81, 1, 2, 3, 4, b'x' ^ 1],
            "masked frame",
            1002,
        ),
        ("2^62-byte frame", huge, "exceeds the limit", 1009),
        (
            "invalid close code",
            frame(0x88, &999u16.to_be_bytes()),
            "invalid close frame",
            1002,
        ),
        (
            "control frame over 125 bytes",
            frame(0x89, &[0u8; 126]),
            "control frame of 126 bytes",
            1002,
        ),
        (
            "fragmented control frame",
            frame(0x09, b"p"),
            "fragmented control frame",
            1002,
        ),
        (
            "continuation without a start",
            frame(0x80, b"x"),
            "unexpected continuation",
            1002,
        ),
    ];
    for (name, bytes, reason, code) in cases {
        let (addr, codes) = bad_server(bytes, None, None).await;
        let r = run_against(addr).await;
        let t = &r["totals"];
        assert_eq!(t["errors"]["protocol"], 2, "{name}: {t}");
        assert_eq!(t["connections"]["closed_by_server"], 2, "{name}: {t}");
        let why = t["recent_errors"].to_string();
        assert!(why.contains(reason), "{name}: {why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            *codes.lock().unwrap(),
            vec![code, code],
            "{name}: close codes sent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_instead_of_101_are_counted_by_status() {
    for (status, key) in [
        ("200 OK", "200"),
        ("404 Not Found", "404"),
        ("503 Service Unavailable", "503"),
    ] {
        let (addr, _) = bad_server(Vec::new(), Some(status), None).await;
        let r = run_against(addr).await;
        let t = &r["totals"];
        assert_eq!(t["errors"]["handshake"], 2, "{status}: {t}");
        assert_eq!(t["http_statuses"][key], 2, "{status}: {t}");
        assert_eq!(t["connections"]["opened"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_upgrade_is_a_handshake_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: mute\ntarget: ws://{addr}/\nconnections: {{ count: 3, timeout: 300ms }}\n\
         phases:\n  - {{ name: p, duration: 500ms, rate: 20/s }}\n"
    );
    let out = dir.path().join("out");
    let o = run_yaml(&yaml, &out).await;
    assert_eq!(o.exit_code(), 3);
    let t = read_report(&out)["totals"].clone();
    assert_eq!(t["errors"]["handshake"], 3, "{t}");
    assert!(
        t["recent_errors"]
            .to_string()
            .contains("no answer within 300ms"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_shows_as_send_lag_and_unsent_messages() {
    // Upgrades, then never reads again: the socket buffers fill up.
    let (addr, _) = bad_server(Vec::new(), None, Some(Duration::from_secs(6))).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: stalled\ntarget: ws://{addr}/\nconnections: {{ count: 2 }}\n\
         message: {{ binary: {{ size: 16KiB }} }}\n\
         phases:\n  - {{ name: p, duration: 2s, rate: 2000/s }}\n"
    );
    let out = dir.path().join("out");
    run_yaml(&yaml, &out).await;
    let r = read_report(&out);
    let t = &r["totals"];
    // 4,000 messages of 16 KiB were due; the kernel buffers take a few MiB
    // and the write queue 256 KiB per connection; the rest was never sent
    // and is counted, and what was sent late shows its lag.
    let (sent, not_sent) = (
        t["messages"]["sent"].as_u64().unwrap(),
        t["messages"]["not_sent"].as_u64().unwrap(),
    );
    assert!(not_sent > 1000 && sent + not_sent >= 3900, "{t}");
    assert!(r["phases"][0]["saturated"] == true, "{}", r["phases"][0]);
    assert_eq!(
        t["errors"]["timeout"].as_u64().unwrap(),
        sent,
        "every sent message timed out: {t}"
    );
}

/// `barrage serve` as its own process on `port`.
fn serve_process(port: u16) -> std::process::Child {
    let child = common::barrage()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = child;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("barrage serve did not listen on {port}");
}

/// Waits (up to 10 s) until `n` client connections to `port` on loopback
/// are established, as the kernel lists them (/proc/net/tcp).
async fn wait_for_established(port: u16, n: usize) {
    let local = format!(":{port:04X} ");
    for _ in 0..200 {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        // Server-side sockets: the local address is the listening port;
        // state 01 is ESTABLISHED.
        let count = table
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 3).then(|| (f[1], f[3]))
            })
            .filter(|(addr, st)| format!("{addr} ").ends_with(&local) && *st == "01")
            .count();
        if count >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} connections to port {port} never established");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_that_comes_back_gets_its_connections_back() {
    let port = free_port();
    let mut server = serve_process(port);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: comeback\ntarget: ws://127.0.0.1:{port}/\nconnections: {{ count: 20 }}\n\
         reconnect: {{ max: 20, backoff: 50ms..400ms }}\n\
         phases:\n  - {{ name: p, duration: 5s, rate: 400/s }}\n\
         thresholds:\n  - errors.closed < 1\n"
    );
    let out = dir.path().join("out");
    let run = tokio::spawn({
        let out = out.clone();
        async move { run_yaml(&yaml, &out).await }
    });
    tokio::time::sleep(Duration::from_millis(1800)).await;
    // kill -9: no close frames, no FIN handshake of its own making.
    server.kill().unwrap();
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut server = serve_process(port);
    let outcome = run.await.unwrap();
    server.kill().unwrap();
    let _ = server.wait();
    let r = read_report(&out);
    let t = &r["totals"];
    let c = &t["connections"];
    // Every connection was dropped once and came back.
    assert_eq!(t["errors"]["closed"], 20, "{t}");
    assert_eq!(c["closed_by_server"], 20, "{t}");
    assert!(c["attempted"].as_u64().unwrap() >= 40, "{t}");
    assert!(c["opened"].as_u64().unwrap() >= 40, "{t}");
    // Messages flowed after the restart: the last timeline seconds have replies.
    let tl = r["timeline"].as_array().unwrap();
    let late: u64 = tl
        .iter()
        .rev()
        .skip(2)
        .take(2)
        .map(|p| p["received"].as_u64().unwrap())
        .sum();
    assert!(late > 300, "replies after the restart: {late}");
    // The reconnect storm shows in the timeline: attempts rise after the kill.
    let attempts: Vec<u64> = tl.iter().map(|p| p["attempts"].as_u64().unwrap()).collect();
    let first = attempts.iter().position(|a| *a > 0).unwrap();
    assert!(
        attempts[first + 1..].iter().sum::<u64>() >= 20,
        "{attempts:?}"
    );
    // The threshold on dropped connections decides the verdict.
    assert_eq!(outcome.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_that_never_returns_ends_the_run_on_time_and_thresholds_decide() {
    let port = free_port();
    let mut server = serve_process(port);
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: gone\ntarget: ws://127.0.0.1:{port}/\nconnections: {{ count: 10 }}\n\
         reconnect: {{ max: 100, backoff: 50ms..200ms }}\n\
         phases:\n  - {{ name: p, duration: 3s, rate: 200/s }}\n\
         thresholds:\n  - errors.rate < 1%\n"
    );
    let out = dir.path().join("out");
    let t0 = std::time::Instant::now();
    let run = tokio::spawn({
        let out = out.clone();
        async move { run_yaml(&yaml, &out).await }
    });
    // Killed once every connection is in and messages flow (not after a
    // fixed wait: on a busy machine the run may take a second to start).
    wait_for_established(port, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let outcome = run.await.unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let t = read_report(&out)["totals"].clone();
    assert!(
        t["errors"]["connect"].as_u64().unwrap() > 10,
        "reopen attempts counted: {t}"
    );
    assert_eq!(t["connections"]["closed_by_server"], 10, "{t}");
    // Connections did open, so this is not exit 3: the threshold fails.
    assert_eq!(outcome.exit_code(), 1, "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_is_counted_as_closed_with_its_reason() {
    // Upgrades, then resets the connection after 300 ms.
    let (addr, _) = bad_server(Vec::new(), None, Some(Duration::from_millis(300))).await;
    let r = run_against(addr).await;
    let t = &r["totals"];
    assert_eq!(t["errors"]["closed"], 2, "{t}");
    assert_eq!(t["connections"]["closed_by_server"], 2, "{t}");
    let why = t["recent_errors"].to_string().to_lowercase();
    assert!(why.contains("reset"), "{why}");
}
