//! A server that stops answering for a while must show in the `rtt` tail,
//! while the open model keeps sending on schedule.

mod common;

use common::run_yaml;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fastwebsockets::{FragmentCollector, OpCode, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The upgraded socket a test server's behaviour is written against.
type Socket = FragmentCollector<TokioIo<hyper::upgrade::Upgraded>>;

/// A real WebSocket server (hyper + fastwebsockets) on 127.0.0.1:0 that
/// hands every upgraded connection to `behave`.
async fn ws_server<F, Fut>(behave: F) -> SocketAddr
where
    F: Fn(Socket) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let behave = behave.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let behave = behave.clone();
                    async move {
                        let (resp, fut) = upgrade::upgrade(&mut req)?;
                        tokio::spawn(async move {
                            if let Ok(ws) = fut.await {
                                behave(FragmentCollector::new(ws)).await;
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

/// A WebSocket echo server that holds every reply while the clock is inside
/// `stall` (offsets from `t0`).
async fn stalling_server(t0: Instant, stall: (Duration, Duration)) -> SocketAddr {
    ws_server(move |mut ws: Socket| async move {
        while let Ok(frame) = ws.read_frame().await {
            if !matches!(frame.opcode, OpCode::Text | OpCode::Binary) {
                if frame.opcode == OpCode::Close {
                    return;
                }
                continue;
            }
            let now = t0.elapsed();
            if now >= stall.0 && now < stall.1 {
                tokio::time::sleep(stall.1 - now).await;
            }
            if ws.write_frame(frame).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_shows_in_rtt_while_sends_follow_schedule() {
    let t0 = Instant::now();
    let stall = (Duration::from_millis(1200), Duration::from_millis(2200));
    let addr = stalling_server(t0, stall).await;
    let yaml = format!(
        r#"
name: stall-test
target: ws://{addr}/
connections: {{ count: 10, rate: 1000/s, timeout: 2s }}
phases:
  - {{ name: steady, duration: 3s, rate: 500/s }}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(&yaml, dir.path()).await;
    let r = &o.report;
    let sent = r.totals.messages.sent;
    assert!(
        (sent as f64 - 1500.0).abs() <= 30.0,
        "sent {sent}, schedule says 1500"
    );
    // Every reply arrives after the stall, none lost.
    assert_eq!(r.totals.messages.received, sent);
    let rtt = &r.metrics["rtt"];
    // About a third of the messages were held up to a second.
    assert!(rtt.max_us > 800_000.0, "rtt max {}µs", rtt.max_us);
    assert!(rtt.p90_us > 300_000.0, "rtt p90 {}µs", rtt.p90_us);
    assert!(
        rtt.p50_us < 50_000.0,
        "rtt p50 {}µs: most messages were not stalled",
        rtt.p50_us
    );
    // During the stall the sender kept its pace (about 500 a second) while
    // most replies were held back.
    let stalled_second = r
        .timeline
        .iter()
        .find(|p| p.phase.is_some() && p.received * 2 < p.sent)
        .unwrap_or_else(|| panic!("no second with sends but few replies: {:?}", r.timeline));
    assert!(stalled_second.sent >= 450, "{stalled_second:?}");
}

/// A WebSocket server that echoes `replies` messages per connection, then
/// reads on without answering and drops the connection after `hold`.
async fn dropping_server(replies: usize, hold: Duration) -> SocketAddr {
    ws_server(move |mut ws: Socket| async move {
        let deadline = tokio::time::Instant::now() + hold;
        let mut n = 0;
        loop {
            let frame = tokio::select! {
                f = ws.read_frame() => match f { Ok(f) => f, Err(_) => return },
                _ = tokio::time::sleep_until(deadline) => return, // drop: no close frame
            };
            if matches!(frame.opcode, OpCode::Text | OpCode::Binary) && n < replies {
                n += 1;
                if ws.write_frame(frame).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_flight_on_a_lost_connection_are_counted_not_dropped() {
    let addr = dropping_server(5, Duration::from_millis(700)).await;
    let yaml = format!(
        "name: drop-test\ntarget: ws://{addr}/\nconnections: {{ count: 10, rate: 1000/s }}\n\
         phases:\n  - {{ name: steady, duration: 2s, rate: 200/s }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(&yaml, dir.path()).await;
    let t = &o.report.totals;
    assert_eq!(t.connections.closed_by_server, 10);
    assert_eq!(t.errors["closed"], 10);
    assert_eq!(t.messages.received, 50, "5 replies per connection");
    // Every message sent is either answered or counted as a timeout.
    assert!(t.errors["timeout"] > 0);
    assert_eq!(t.messages.sent, t.messages.received + t.errors["timeout"]);
    assert!(
        t.recent_errors.iter().any(|e| e.starts_with("closed:")),
        "{:?}",
        t.recent_errors
    );
}
