//! Interop with other WebSocket implementations: Python `websockets` and
//! Node `ws` echo servers (tests/peers/) on loopback, installed into
//! `.peers/` by scripts/install-peers.sh (the tests never install it). Run with
//! `cargo test --features interop --test interop` (`.ci/run` does).
//!
//! Each check runs against both peers: barrage's codec byte for byte
//! (payloads identical after the round trip, context takeover on and off),
//! and short load runs for compression, subprotocols, fragments, server
//! pings and close codes, read back from the report. Also the manifests of
//! `barrage k8s` against Kubernetes's schemas (kubernetes-validate).
#![cfg(feature = "interop")]

mod common;

use common::{listening_port, needs_peers, read_report, run_yaml};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use barrage::ws::codec::{Event, opcode};
use barrage::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use barrage::ws::handshake::{UpgradeRequest, client_handshake};
use barrage::ws::{Decoder, Encoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Copy, Debug)]
enum Peer {
    Python,
    Node,
}

const PEERS: [Peer; 2] = [Peer::Python, Peer::Node];

/// A running peer echo server; killed on drop.
struct Server {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(peer: Peer, args: &[&str], log_dir: &Path) -> Server {
        let stderr = log_dir.join(format!("{peer:?}-{}.log", fastrand::u32(..)));
        let mut cmd = match peer {
            Peer::Python => {
                let mut c = Command::new("python3");
                c.arg(root().join("tests/peers/ws_echo.py"))
                    .env("PYTHONPATH", root().join(".peers/python"));
                c
            }
            Peer::Node => {
                let mut c = Command::new("node");
                c.arg(root().join("tests/peers/ws_echo.js"))
                    .env("NODE_PATH", root().join(".peers/node/node_modules"));
                c
            }
        };
        let mut child = cmd
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("peer starts");
        let port = listening_port(&mut child);
        Server {
            child,
            port,
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// One barrage-codec connection: upgrades with `offer`, sends each payload
/// as text and returns each reply with its wire size.
async fn echo_with_codec(
    port: u16,
    offer: Option<DeflateParams>,
    payloads: &[Vec<u8>],
) -> (Option<DeflateParams>, Vec<(Vec<u8>, usize)>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = UpgradeRequest::new(
        &format!("127.0.0.1:{port}"),
        "/",
        &[],
        None,
        &[],
        offer.as_ref().map(DeflateParams::offer),
    );
    let mut rng = fastrand::Rng::with_seed(3);
    let up = client_handshake(&mut tcp, &req, &mut rng).await.unwrap();
    let agreed = offer.and_then(|o| o.accept_response(&up.extensions).unwrap());
    let inflater = agreed.as_ref().map(|a| Inflater::new(Role::Client, a));
    let deflater = agreed.as_ref().map(|a| Deflater::new(Role::Client, a));
    let mut decoder = Decoder::with_role(Role::Client, 64 << 20, inflater, up.leftover);
    let mut encoder = Encoder::new(Role::Client, deflater, None);
    let mut replies = Vec::new();
    for p in payloads {
        let mut out = Vec::new();
        encoder
            .message(&mut out, opcode::TEXT, p, &mut rng)
            .unwrap();
        tcp.write_all(&out).await.unwrap();
        loop {
            match decoder.next_event().unwrap() {
                Some(Event::Message { payload, wire, .. }) => {
                    replies.push((payload.to_vec(), wire));
                    break;
                }
                Some(_) => continue,
                None => {
                    let n = tcp.read_buf(decoder.buffer_mut()).await.unwrap();
                    assert!(n > 0, "peer closed");
                }
            }
        }
    }
    (agreed, replies)
}

/// Text that compresses well.
fn compressible(n: usize) -> Vec<u8> {
    format!("{{\"n\":{n},\"pad\":\"{}\"}}", "barrage ".repeat(200)).into_bytes()
}

#[tokio::test]
async fn payloads_survive_the_round_trip_with_and_without_context_takeover() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        compressible(1),
        compressible(1),
        b"x".to_vec(),
        Vec::new(),
        "é€😀 unicode".as_bytes().to_vec(),
        (0..100_000u32).map(|i| b'a' + (i * 7 % 26) as u8).collect(),
    ];
    for peer in PEERS {
        // Context takeover (the default): a repeated message costs less.
        let srv = Server::start(peer, &["--compression"], dir.path());
        let (agreed, replies) =
            echo_with_codec(srv.port, Some(DeflateParams::default()), &payloads).await;
        assert!(
            agreed.is_some(),
            "{peer:?} did not agree permessage-deflate"
        );
        for (sent, (got, _)) in payloads.iter().zip(&replies) {
            assert_eq!(sent, got, "{peer:?}: payload changed in the round trip");
        }
        let (first, second) = (replies[0].1, replies[1].1);
        assert!(
            second < first,
            "{peer:?}: takeover should shrink the repeat ({first} → {second})"
        );
        assert!(
            replies[5].1 < payloads[5].len() / 4,
            "{peer:?}: 100 KB not compressed"
        );
        drop(srv);

        // No context takeover on both sides: identical messages, identical frames.
        let srv = Server::start(
            peer,
            &["--compression", "--no-context-takeover"],
            dir.path(),
        );
        let offer = DeflateParams {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (agreed, replies) = echo_with_codec(srv.port, Some(offer), &payloads).await;
        let agreed = agreed.expect("agreed");
        assert!(agreed.server_no_context_takeover, "{peer:?}: {agreed:?}");
        for (sent, (got, _)) in payloads.iter().zip(&replies) {
            assert_eq!(sent, got, "{peer:?}: payload changed without takeover");
        }
        assert_eq!(
            replies[0].1, replies[1].1,
            "{peer:?}: no takeover, same size"
        );
        drop(srv);

        // Without --compression the peer declines and nothing is compressed.
        let srv = Server::start(peer, &[], dir.path());
        let (agreed, replies) =
            echo_with_codec(srv.port, Some(DeflateParams::default()), &payloads[..1]).await;
        assert!(agreed.is_none(), "{peer:?} agreed although it should not");
        assert_eq!(replies[0].0, payloads[0]);
        assert!(replies[0].1 > payloads[0].len());
    }
}

/// Sums the report's error counts.
fn errors(r: &serde_json::Value) -> u64 {
    r["totals"]["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// A short load run against `port` with extra scenario lines.
async fn load(port: u16, extra: &str, out: &Path) -> serde_json::Value {
    let yaml = format!(
        "name: interop\ntarget: ws://127.0.0.1:{port}/\n{extra}\n\
         connections: {{ count: 20, rate: 200/s }}\n\
         message: {{ text: '{{\"seq\":{{{{seq}}}},\"pad\":\"{pad}\"}}' }}\n\
         phases:\n  - {{ name: steady, duration: 2s, rate: 1000/s }}\n",
        pad = "abcdefgh".repeat(40)
    );
    run_yaml(&yaml, out).await;
    read_report(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_compression_plain_and_subprotocols() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for peer in PEERS {
        let args = ["--compression", "--subprotocol", "chat.v1"];
        let srv = Server::start(peer, &args, dir.path());
        for (label, extra) in [
            ("plain", "subprotocols: [chat.v0, chat.v1]"),
            ("deflate", "compression: deflate\nsubprotocols: [chat.v1]"),
            (
                "deflate-no-takeover",
                "compression: { method: deflate, client_no_context_takeover: true, server_no_context_takeover: true }",
            ),
        ] {
            let out = dir.path().join(format!("{peer:?}-{label}"));
            let r = load(srv.port, extra, &out).await;
            let t = &r["totals"];
            let sent = t["messages"]["sent"].as_u64().unwrap();
            assert!(sent >= 1900, "{peer:?} {label}: {t}");
            assert_eq!(
                t["messages"]["received"].as_u64().unwrap(),
                sent,
                "{peer:?} {label}: {t}"
            );
            assert_eq!(errors(&r), 0, "{peer:?} {label}: {t}");
            let compressed = t["connections"]["compressed"].as_u64().unwrap();
            let b = &t["bytes"];
            let (msg, wire) = (
                b["received"].as_u64().unwrap(),
                b["wire_received"].as_u64().unwrap(),
            );
            let rtt = &r["metrics"]["rtt"];
            eprintln!(
                "interop {peer:?} {label}: message bytes sent {} received {msg}, wire bytes sent {} received {wire}, rtt p50 {}µs p99 {}µs",
                b["sent"], b["wire_sent"], rtt["p50_us"], rtt["p99_us"]
            );
            if label == "plain" {
                assert_eq!(compressed, 0);
                assert_eq!(t["connections"]["subprotocol"], 20, "{peer:?}: {t}");
                assert!(wire > msg, "{peer:?}: plain frames carry headers");
            } else {
                assert_eq!(compressed, 20, "{peer:?} {label}: {t}");
                assert!(
                    wire * 3 < msg,
                    "{peer:?} {label}: wire {wire} vs message {msg}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_server_pings_and_close_codes() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for peer in PEERS {
        // Fragmented sends, our pings timed, the server's pings answered.
        let srv = Server::start(peer, &["--ping-interval", "0.2", "--verbose"], dir.path());
        let out = dir.path().join(format!("{peer:?}-frag"));
        let r = load(srv.port, "fragment: 50\nping: { every: 250ms }", &out).await;
        let t = &r["totals"];
        assert_eq!(errors(&r), 0, "{peer:?}: {t}");
        assert_eq!(
            t["messages"]["received"], t["messages"]["sent"],
            "{peer:?}: {t}"
        );
        assert!(
            r["metrics"]["ping"]["count"].as_u64().unwrap() >= 20 * 6,
            "{peer:?}"
        );
        let log = srv.log().to_lowercase();
        let pongs = log.lines().filter(|l| l.contains("pong")).count();
        assert!(
            pongs >= 20 * 6,
            "{peer:?}: {pongs} pongs seen by the server:\n{log}"
        );
        drop(srv);

        // The server closes every connection after 5 messages with 4001.
        let args = [
            "--close-after",
            "5",
            "--close-code",
            "4001",
            "--close-reason",
            "enough",
        ];
        let srv = Server::start(peer, &args, dir.path());
        let out = dir.path().join(format!("{peer:?}-close"));
        let r = load(srv.port, "", &out).await;
        let t = &r["totals"];
        assert_eq!(t["close_codes"]["4001"], 20, "{peer:?}: {t}");
        assert_eq!(t["connections"]["closed_by_server"], 20, "{peer:?}: {t}");
        assert_eq!(t["messages"]["received"], 100, "{peer:?}: {t}");
    }
}

/// `barrage k8s` output against Kubernetes's own OpenAPI schemas
/// (kubernetes-validate, strict: unknown fields are errors) for the oldest
/// version the printed commands support (1.28) and a current one, for a
/// scenario with a feeder and one with roles and TLS settings.
#[test]
fn k8s_manifests_pass_the_kubernetes_schemas() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (scenario, target) in [
        ("scenarios/login-then-stream.yaml", "ws://10.0.0.5:9001/"),
        ("scenarios/chat-room.yaml", "wss://chat.example.com/ws"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_barrage"))
            .current_dir(root())
            .args(["k8s", scenario, "--workers", "8", "--namespace", "load"])
            .args(["--target", target, "--image", "registry.test/barrage:1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, &out.stdout).unwrap();
        for version in ["1.28.0", "1.37.0"] {
            let v = Command::new("python3")
                .env("PYTHONPATH", root().join(".peers/k8s-validate"))
                .args(["-m", "kubernetes_validate", "--strict", "-k", version])
                .arg(&file)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&v.stdout).into_owned()
                + &String::from_utf8_lossy(&v.stderr);
            assert!(v.status.success(), "{scenario} on {version}:\n{text}");
            // Every object was checked, not skipped: the ConfigMap (the
            // CSV), the Secret (the scenario) and the Job.
            assert_eq!(text.matches("passed for resource").count(), 3, "{text}");
        }
    }
}
