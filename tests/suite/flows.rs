//! Flows against real servers on loopback: replies correlated by id when a
//! server answers out of order and pushes unsolicited messages; a captured
//! token used by a later send; feeder rows bound to connections; an expect
//! timeout counted; a feeder that runs out refused before anything runs;
//! replies in flight at a stop still counted.

use crate::common;

use common::{check_report, read_report, run_bin, run_yaml, write_scenario};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barrage::metrics::decode_histogram;
use barrage::ws::codec::{Event, opcode};
use barrage::ws::deflate::Role;
use barrage::ws::{Decoder, Encoder};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a test server answers to one text message: each `(delay, text)` is
/// sent after its delay, independently of other messages.
type Answer = Arc<dyn Fn(&str) -> Vec<(Duration, String)> + Send + Sync>;

/// A WebSocket server on 127.0.0.1:0 (hyper upgrade, barrage's codec in
/// server role) that answers each text message with `answer` and, when
/// `push` is set, sends that text every 100 ms unasked.
async fn server(answer: Answer, push: Option<&'static str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Replies are small and timed: no Nagle delay behind a pending ACK.
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let answer = answer.clone();
                    async move {
                        let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
                        tokio::spawn(async move {
                            if let Ok(ws) = fut.await {
                                serve(ws.into_inner(), answer, push).await;
                            }
                        });
                        Ok::<Response<Empty<Bytes>>, fastwebsockets::WebSocketError>(resp)
                    }
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

async fn serve(io: TokioIo<hyper::upgrade::Upgraded>, answer: Answer, push: Option<&'static str>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::new(Role::Server, None, None);
        let mut rng = fastrand::Rng::new();
        let mut out = Vec::new();
        while let Some((op, payload)) = rx.recv().await {
            out.clear();
            if op == opcode::CLOSE {
                enc.control(&mut out, op, &payload, &mut rng);
            } else {
                enc.message(&mut out, op, &payload, &mut rng).unwrap();
            }
            if wr.write_all(&out).await.is_err() || op == opcode::CLOSE {
                return;
            }
        }
    });
    if let Some(text) = push {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tx.send((opcode::TEXT, text.as_bytes().to_vec())).is_err() {
                    return;
                }
            }
        });
    }
    let mut dec = Decoder::with_role(Role::Server, 1 << 20, None, Vec::new());
    loop {
        match rd.read_buf(dec.buffer_mut()).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        while let Ok(Some(ev)) = dec.next_event() {
            match ev {
                Event::Message { payload, .. } => {
                    let text = String::from_utf8_lossy(payload).to_string();
                    for (delay, reply) in answer(&text) {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send((opcode::TEXT, reply.into_bytes()));
                        });
                    }
                }
                Event::Close { code } => {
                    let _ = tx.send((opcode::CLOSE, code.to_be_bytes().to_vec()));
                    drop(tx);
                    let _ = writer.await;
                    return;
                }
                _ => {}
            }
        }
    }
}

/// The `q`-quantile of a report metric, from its stored histogram, in ms.
fn quantile_ms(r: &serde_json::Value, metric: &str, q: f64) -> f64 {
    let h = decode_histogram(r["metrics"][metric]["histogram"].as_str().unwrap()).unwrap();
    h.value_at_quantile(q) as f64 / 1e6
}

/// The number after `"id":` in a message.
fn id_of(text: &str) -> u64 {
    let rest = &text[text.find("\"id\":").unwrap() + 5..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_out_of_order_are_matched_by_field_and_fifo_gets_them_wrong() {
    // Even ids are answered after 60 ms, odd ids at once; a note is pushed
    // every 100 ms.
    let answer: Answer = Arc::new(|text| {
        let id = id_of(text);
        let delay = if id.is_multiple_of(2) { 60 } else { 0 };
        vec![(
            Duration::from_millis(delay),
            format!(r#"{{"id":{id},"ok":true}}"#),
        )]
    });
    let addr = server(answer, Some(r#"{"note":"unsolicited"}"#)).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |correlate: &'static str, out: &str| {
        let yaml = format!(
            r#"
name: request-reply
target: ws://{addr}/
connections: {{ count: 4 }}
phases:
  - {{ name: steady, duration: 2s, rate: 200/s }}
flow:
  - loop:
      - send: {{ text: '{{"id":{{{{seq}}}},"op":"get"}}', correlate: {correlate} }}
"#
        );
        let out = dir.path().join(out);
        async move {
            run_yaml(&yaml, &out).await;
            read_report(&out)
        }
    };
    let r = run("{ field: id }", "field").await;
    let t = &r["totals"];
    let sent = t["messages"]["sent"].as_u64().unwrap();
    assert!(sent >= 380, "{t}");
    assert_eq!(t["messages"]["received"].as_u64().unwrap(), sent, "{t}");
    assert_eq!(t["errors"]["timeout"], 0, "{t}");
    // 4 connections × ~20 notes each, none taken for a reply.
    let notes = t["messages"]["unmatched"].as_u64().unwrap();
    assert!((60..=90).contains(&notes), "{t}");
    // Half the replies are immediate, half take 60 ms: the distribution by id
    // shows exactly that.
    let (p25, p45, p55, p75) = (
        quantile_ms(&r, "rtt", 0.25),
        quantile_ms(&r, "rtt", 0.45),
        quantile_ms(&r, "rtt", 0.55),
        quantile_ms(&r, "rtt", 0.75),
    );
    assert!(p25 < 10.0 && p45 < 10.0, "fast half: p25 {p25} p45 {p45}");
    assert!(
        (59.0..80.0).contains(&p55) && (59.0..80.0).contains(&p75),
        "slow half: p55 {p55} p75 {p75}"
    );

    // FIFO `echo` takes a message for the echo only when it can be one
    // (same opcode, length, first and last bytes): these replies are not
    // echoes, so none is timed against the wrong request, and every
    // request is counted unanswered instead.
    let r = run("echo", "fifo").await;
    let t = &r["totals"]["messages"];
    let sent = t["sent"].as_u64().unwrap();
    assert_eq!(t["replies"], 0, "{t}");
    assert_eq!(t["unanswered"].as_u64().unwrap(), sent, "{t}");
    assert!(t["unmatched"].as_u64().unwrap() >= sent, "{t}");
    assert_eq!(r["metrics"]["rtt"]["count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_token_and_feeder_rows_reach_later_sends() {
    // login → {"token":"tok-USER"}; use with the right token → {"ok":true},
    // with a wrong one → {"ok":false}. The server records who used what.
    let used: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seen = used.clone();
    let answer: Answer = Arc::new(move |text| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let user = v["user"].as_str().unwrap_or("").to_string();
        let reply = match v["op"].as_str() {
            Some("login") => format!(r#"{{"token":"tok-{user}"}}"#),
            Some("use") => {
                let ok = v["token"].as_str() == Some(&format!("tok-{user}"));
                if ok {
                    seen.lock().unwrap().insert(user);
                }
                format!(r#"{{"ok":{ok}}}"#)
            }
            _ => "{}".to_string(),
        };
        vec![(Duration::ZERO, reply)]
    });
    let addr = server(answer, None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        "user,plan\nann,free\nbob,pro\n\"c, d\",free\n",
    )
    .unwrap();
    let yaml = format!(
        r#"
name: login-then-stream
target: ws://{addr}/
connections: {{ count: 6 }}
data: {{ file: users.csv, mode: sequential }}
phases:
  - {{ name: steady, duration: 1s, rate: 60/s }}
flow:
  - send: {{ json: {{ op: login, user: "{{{{data.user}}}}" }} }}
  - expect: {{ contains: token, timeout: 2s, capture: {{ token: token }} }}
  - loop:
      - send: {{ json: {{ op: use, user: "{{{{data.user}}}}", token: "{{{{token}}}}" }} }}
      - expect: {{ json: {{ ok: true }}, timeout: 1s }}
"#
    );
    let file = write_scenario(dir.path(), "login.yaml", &yaml);
    let scenario = barrage::scenario::load(&file).unwrap();
    let out = dir.path().join("out");
    let mut opts = barrage::RunOptions::new(scenario);
    opts.out = Some(out.clone());
    let o = barrage::run(opts).await.unwrap();
    check_report(&out, Some(i32::from(o.exit_code())));
    let r = read_report(&out);
    let t = &r["totals"];
    assert_eq!(t["errors"]["timeout"], 0, "{t}");
    assert!(t["messages"]["received"].as_u64().unwrap() >= 6 + 50, "{t}");
    let users = used.lock().unwrap().clone();
    let expected: HashSet<String> = ["ann", "bob", "c, d"].map(String::from).into();
    assert_eq!(
        users, expected,
        "every row's user logged in and used its own token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expect_that_times_out_is_counted_and_on_timeout_close_ends_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: t\ntarget: builtin\nconnections: { count: 3 }\n\
                phases:\n  - { name: p, duration: 2s, rate: 30/s }\n\
                flow:\n  - send: { text: hello }\n  - expect: { contains: never, timeout: 200ms }\n\
                \x20 - expect: { contains: hello, timeout: 1s }\n\
                \x20 - expect: { contains: never, timeout: 200ms, on_timeout: close }\n\
                \x20 - send: { text: not sent }\n";
    let out = dir.path().join("out");
    run_yaml(yaml, &out).await;
    let r = read_report(&out);
    let t = &r["totals"];
    // The first expect times out; the echo that came meanwhile is kept
    // (the backlog), so the second takes it at once; the third closes.
    assert_eq!(t["errors"]["timeout"], 6, "{t}");
    assert_eq!(t["messages"]["sent"], 3, "{t}");
    assert_eq!(t["messages"]["received"], 3, "{t}");
    assert_eq!(t["messages"]["unmatched"], 0, "{t}");
}

/// Ctrl-C with replies on their way: they are still read and timed before
/// the close, so nothing sent goes missing from the counts and nothing is
/// taken for a timeout. The server answers every message after 100 ms, so
/// about 20 are in flight at any instant at 200/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_in_flight_at_a_stop_are_still_counted() {
    let slow: Answer = Arc::new(|text: &str| vec![(Duration::from_millis(100), text.to_string())]);
    let addr = server(slow, None).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: t\ntarget: ws://{addr}/\nconnections: {{ count: 10 }}\n\
         phases:\n  - {{ name: p, duration: 30s, rate: 200/s }}\n"
    );
    let mut opts = barrage::RunOptions::new(barrage::scenario::parse("t.yaml", &yaml).unwrap());
    opts.out = Some(dir.path().join("out"));
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cancel.cancel();
    });
    let outcome = barrage::run(opts).await.unwrap();
    check_report(
        outcome.report_path.parent().unwrap(),
        Some(i32::from(outcome.exit_code())),
    );
    let r = read_report(outcome.report_path.parent().unwrap());
    let t = &r["totals"];
    assert_eq!(r["interrupted"], true);
    let sent = t["messages"]["sent"].as_u64().unwrap();
    assert!(sent > 100, "{t}");
    assert_eq!(t["messages"]["received"].as_u64().unwrap(), sent, "{t}");
    assert_eq!(t["errors"]["timeout"], 0, "{t}");
    assert_eq!(r["metrics"]["rtt"]["count"].as_u64().unwrap(), sent, "{t}");
}

#[test]
fn a_unique_feeder_that_runs_out_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.csv"), "user\nann\nbob\n").unwrap();
    let file = write_scenario(
        dir.path(),
        "unique.yaml",
        "name: u\ntarget: builtin\nconnections: { count: 5 }\n\
         data: { file: users.csv, mode: unique }\n\
         phases:\n  - { name: p, duration: 1s, rate: 10/s }\n",
    );
    let out = dir.path().join("out");
    let o = run_bin(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unique.yaml:4:")
            && err.contains("users.csv has 2 rows")
            && err.contains("5 connections"),
        "{err}"
    );
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_fan_out_delivers_n_minus_1_copies_each_timed_as_delivery() {
    // 8 connections in one room; 2 publishers send 25 messages each with
    // their send time; every message reaches the 7 other members.
    let yaml = r#"
name: fan-out
target: builtin
builtin: { mode: broadcast }
connections: { count: 8 }
delivery: { field: ts, unit: us }
roles:
  publisher:
    weight: 2
    rate: 50/s
    flow:
      - send: { json: { op: join, room: one } }
      - expect: { json: { op: joined }, timeout: 2s }
      - sleep: 300ms       # every subscriber has joined by then
      - loop: { count: 25, steps: [ { send: { text: '{"ts":{{now_us}},"seq":{{seq}}}' } }, { sleep: 20ms } ] }
  subscriber:
    weight: 6
    flow:
      - send: { json: { op: join, room: one } }
      - expect: { json: { op: joined }, timeout: 2s }
phases:
  - { name: p, duration: 2s, rate: 1/s }
"#;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_yaml(yaml, &out).await;
    let r = read_report(&out);
    let roles = &r["roles"];
    assert_eq!(roles["publisher"]["connections"], 2, "{roles}");
    // 2 joins + 50 messages sent by the publishers.
    assert_eq!(roles["publisher"]["messages"]["sent"], 52, "{roles}");
    // Each of the 50 reaches the 6 subscribers and the other publisher.
    let delivered = |role: &str| {
        roles[role]["metrics"]["delivery"]["count"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(delivered("subscriber"), 50 * 6, "{roles}");
    // each publisher gets the other one's 25.
    assert_eq!(delivered("publisher"), 2 * 25, "{roles}");
    assert_eq!(
        r["metrics"]["delivery"]["count"],
        50 * 7,
        "{}",
        r["metrics"]["delivery"]
    );
    assert_eq!(r["totals"]["messages"]["unmatched"], 0, "{}", r["totals"]);
    assert!(r["metrics"]["delivery"]["p99_us"].as_f64().unwrap() < 50_000.0);
}
