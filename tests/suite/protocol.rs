//! The WebSocket protocol under load against real servers on loopback:
//! TLS and permessage-deflate together (barrage's client against barrage's
//! server), certificate failures counted as `tls`, refused upgrades counted
//! by HTTP status, headers from the environment that never reach the
//! report, subprotocols, pings, fragments, the size limit and close codes.

use crate::common;

use common::{check_report, read_report, run_bin, run_yaml, write_scenario};

use std::net::SocketAddr;

use barrage::server::{self, Mode, Options};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// barrage's server with TLS (a fresh self-signed certificate, whose PEM is
/// written to `dir/ca.pem`), compression and a subprotocol.
async fn tls_server(dir: &std::path::Path) -> server::ServerHandle {
    let (cert, key) = barrage::tls::self_signed().unwrap();
    std::fs::write(dir.join("ca.pem"), &cert).unwrap();
    let opts = Options {
        tls: Some(barrage::tls::server_config(&cert, &key).unwrap()),
        compression: true,
        subprotocols: vec!["chat.v1".into()],
        ..Mode::Echo.into()
    };
    server::start("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap()
}

/// Compressible text: the same padding in every message.
const PADDED: &str = r#"{ text: '{"seq":{{seq}},"pad":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}' }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_compression_together_against_the_builtin_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = tls_server(dir.path()).await;
    let yaml = format!(
        r#"
name: wss-deflate
target: wss://127.0.0.1:{port}/
tls: {{ ca: {ca}, server_name: localhost }}
compression: deflate
subprotocols: [chat.v0, chat.v1]
ping: {{ every: 200ms }}
fragment: 40
close: {{ code: 4000, reason: done }}
connections: {{ count: 20, rate: 200/s }}
message: {PADDED}
phases:
  - {{ name: steady, duration: 2s, rate: 1000/s }}
"#,
        port = srv.local_addr.port(),
        ca = dir.path().join("ca.pem").display()
    );
    let out = dir.path().join("out");
    let outcome = run_yaml(&yaml, &out).await;
    let r = read_report(&out);
    let t = &r["totals"];
    assert_eq!(outcome.exit_code(), 0, "{t}");
    assert_eq!(t["connections"]["opened"], 20, "{t}");
    assert_eq!(t["connections"]["compressed"], 20, "{t}");
    assert_eq!(t["connections"]["subprotocol"], 20, "{t}");
    let (sent, received) = (
        t["messages"]["sent"].as_u64().unwrap(),
        t["messages"]["received"].as_u64().unwrap(),
    );
    assert!(sent >= 1900 && received == sent, "{t}");
    let errors: u64 = t["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(errors, 0, "{t}");
    // Compression shows as fewer wire bytes than message bytes, even with
    // the 40-byte fragments' extra headers.
    let b = &t["bytes"];
    let (msg_sent, wire_sent) = (
        b["sent"].as_u64().unwrap(),
        b["wire_sent"].as_u64().unwrap(),
    );
    let (msg_recv, wire_recv) = (
        b["received"].as_u64().unwrap(),
        b["wire_received"].as_u64().unwrap(),
    );
    assert_eq!(msg_sent, msg_recv, "{b}");
    assert!(
        wire_sent * 2 < msg_sent,
        "wire {wire_sent} vs message {msg_sent}"
    );
    assert!(
        wire_recv * 2 < msg_recv,
        "wire {wire_recv} vs message {msg_recv}"
    );
    // Every connection timed its TLS handshake; pings got their pongs.
    assert_eq!(r["metrics"]["tls"]["count"], 20);
    assert!(
        r["metrics"]["ping"]["count"].as_u64().unwrap() >= 20 * 5,
        "{}",
        r["metrics"]["ping"]
    );
    // The server echoed our close code back.
    assert_eq!(t["close_codes"]["4000"], 20, "{t}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error_and_insecure_skips_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let srv = tls_server(dir.path()).await;
    let port = srv.local_addr.port();
    let scenario = |tls: &str| {
        format!(
            "name: t\ntarget: wss://127.0.0.1:{port}/\ntls: {tls}\nconnections: {{ count: 3 }}\n\
             phases:\n  - {{ name: p, duration: 500ms, rate: 30/s }}\n"
        )
    };
    let out = dir.path().join("untrusted");
    let outcome = run_yaml(&scenario("{}"), &out).await;
    let r = read_report(&out);
    assert_eq!(outcome.exit_code(), 3, "no connection opened");
    assert_eq!(r["totals"]["errors"]["tls"], 3, "{}", r["totals"]);
    let why = r["totals"]["recent_errors"].to_string();
    assert!(
        why.contains("tls:") && why.to_lowercase().contains("certificate"),
        "{why}"
    );

    let out = dir.path().join("insecure");
    let outcome = run_yaml(&scenario("{ insecure: true }"), &out).await;
    assert_eq!(outcome.exit_code(), 0, "{}", read_report(&out)["totals"]);
    srv.shutdown().await;
}

/// An HTTP server that refuses every upgrade with `status`, unless the
/// request carries `Authorization: Bearer let-me-in`.
async fn refusing_server(status: StatusCode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| async move {
                    let auth = req.headers().get("authorization").cloned();
                    if auth.is_some_and(|v| v == "Bearer let-me-in") {
                        let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
                        tokio::spawn(async move {
                            if let Ok(ws) = fut.await {
                                let mut ws = fastwebsockets::FragmentCollector::new(ws);
                                while let Ok(f) = ws.read_frame().await {
                                    if f.opcode == fastwebsockets::OpCode::Close {
                                        return;
                                    }
                                    if ws.write_frame(f).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        });
                        return Ok::<_, fastwebsockets::WebSocketError>(resp);
                    }
                    let mut resp = Response::new(Empty::<Bytes>::new());
                    *resp.status_mut() = status;
                    Ok(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrades_are_counted_by_status_and_secrets_stay_out_of_reports() {
    let dir = tempfile::tempdir().unwrap();
    let addr = refusing_server(StatusCode::TOO_MANY_REQUESTS).await;
    let base = format!(
        "name: auth\ntarget: ws://{addr}/\nconnections: {{ count: 4 }}\n\
         phases:\n  - {{ name: p, duration: 500ms, rate: 40/s }}\n"
    );
    // Without the header: every upgrade refused with 429, shown as such.
    let out = dir.path().join("refused");
    let outcome = run_yaml(&base, &out).await;
    assert_eq!(outcome.exit_code(), 3);
    let r = read_report(&out);
    assert_eq!(r["totals"]["http_statuses"]["429"], 4, "{}", r["totals"]);
    assert_eq!(r["totals"]["errors"]["handshake"], 4);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("HTTP 429 (rate limited)"), "{summary}");

    // With the token from the environment (the real binary, so the
    // variable is the child's alone): all upgrades pass, and the token is
    // in no file of the report set.
    let yaml =
        format!("{base}headers: {{ Authorization: \"Bearer ${{env:BARRAGE_TEST_TOKEN}}\" }}\n");
    let file = write_scenario(dir.path(), "auth.yaml", &yaml);
    let out = dir.path().join("allowed");
    let status = common::barrage()
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("BARRAGE_TEST_TOKEN", "let-me-in")
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    check_report(&out, status.status.code());
    for f in std::fs::read_dir(&out).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(
            !text.contains("let-me-in"),
            "secret leaked into the report set"
        );
    }
    assert!(!String::from_utf8_lossy(&status.stdout).contains("let-me-in"));

    // The token written into the file itself: redacted in report.json's
    // copy of the scenario.
    let literal = write_scenario(
        dir.path(),
        "literal.yaml",
        &format!("{base}headers: {{ Authorization: \"Bearer let-me-in\" }}\n"),
    );
    let out = dir.path().join("literal");
    let o = run_bin(&[
        "run",
        literal.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_report(&out, o.status.code());
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(report.contains("<redacted>") && !report.contains("let-me-in"));

    // A missing variable: exit 2 naming it, nothing run.
    let o = run_bin(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("none").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("BARRAGE_TEST_TOKEN") && err.contains("auth.yaml:"),
        "{err}"
    );
    assert!(!dir.path().join("none").exists());

    // A CA file that does not exist: exit 2 naming the field, nothing run.
    let bad_ca = write_scenario(
        dir.path(),
        "bad-ca.yaml",
        &base
            .replace("ws://", "wss://")
            .replace("connections:", "tls:\n  ca: missing/ca.pem\nconnections:"),
    );
    let o = run_bin(&[
        "run",
        bad_ca.to_str().unwrap(),
        "--out",
        dir.path().join("none").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad-ca.yaml:4:") && err.contains("tls.ca") && err.contains("missing/ca.pem"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_max_message_size_is_a_protocol_error_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    // An echo awaited over the limit is refused when the scenario is read,
    // so the 2 KiB echoes here are not awaited (correlate: none).
    let yaml = "name: big\ntarget: builtin\nmax_message_size: 1KiB\nfragment: 256\n\
                connections: { count: 2 }\n\
                flow: [ { loop: [ { send: { binary: { size: 2KiB }, correlate: none } } ] } ]\n\
                phases:\n  - { name: p, duration: 500ms, rate: 20/s }\n";
    let out = dir.path().join("out");
    run_yaml(yaml, &out).await;
    let r = read_report(&out);
    assert_eq!(r["totals"]["errors"]["protocol"], 2, "{}", r["totals"]);
    let why = r["totals"]["recent_errors"].to_string();
    assert!(why.contains("exceeds the limit of 1024 bytes"), "{why}");
}
