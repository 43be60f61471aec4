//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built `barrage` binary.
pub fn barrage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_barrage"))
}

/// Writes `yaml` to `dir/name` and returns its path.
pub fn write_scenario(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Runs the binary with `args`, returning its output.
pub fn run_bin(args: &[&str]) -> Output {
    barrage().args(args).output().expect("barrage binary runs")
}

/// Reads `report.json` of an out folder.
pub fn read_report(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether the test peers (Python `websockets`, Node `ws`,
/// kubernetes-validate, put into `.peers/` by scripts/install-peers.sh)
/// are here; missing, as for [`needs`], under the skip name `peers`.
#[must_use]
pub fn needs_peers() -> bool {
    if skipped("peers", ".peers/") {
        return false;
    }
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers");
    let here = ["python/websockets", "node/node_modules/ws", "k8s-validate"]
        .iter()
        .all(|p| peers.join(p).exists());
    assert!(
        here,
        "the test peers are missing from .peers/: install them with \
         `bash scripts/install-peers.sh`, or set BARRAGE_TEST_SKIP=peers to skip"
    );
    true
}

/// The Python `websockets` echo peer (tests/peers/ws_echo.py) with `args`
/// on a free port; killed on drop.
pub struct PythonPeer {
    pub child: std::process::Child,
    pub port: u16,
}

impl PythonPeer {
    /// The test calls [`needs_peers`] first.
    pub fn start(args: &[&str]) -> PythonPeer {
        Self::script("ws_echo.py", args)
    }

    /// Another Python peer of tests/peers/ (`ws_push.py`) with `args`.
    pub fn script(name: &str, args: &[&str]) -> PythonPeer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("python3")
            .arg(root.join("tests/peers").join(name))
            .env("PYTHONPATH", root.join(".peers/python"))
            .args(["--port", "0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 starts");
        let port = listening_port(&mut child);
        PythonPeer { child, port }
    }
}

/// The port a peer (tests/peers/) prints on its first stdout line,
/// `LISTENING <port>`, once it listens.
pub fn listening_port(child: &mut std::process::Child) -> u16 {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("the peer said {line:?}"))
        .parse()
        .unwrap()
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `BARRAGE_TEST_SKIP` (comma-separated) names `skip`; if so,
/// says on stderr that this test was skipped for lack of `what`, past the
/// test harness's capture (which hides `eprintln!` of tests that pass).
fn skipped(skip: &str, what: &str) -> bool {
    use std::io::Write;
    let named =
        std::env::var("BARRAGE_TEST_SKIP").is_ok_and(|v| v.split(',').any(|k| k.trim() == skip));
    if named {
        let name = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        let _ = writeln!(
            std::io::stderr(),
            "skipped {name}: BARRAGE_TEST_SKIP names {skip} (needs {what})"
        );
    }
    named
}

/// Whether a test that needs program `bin` runs: true when `bin` is
/// here. Tests never install software (`scripts/test-deps.sh` and
/// `.ci/run` do): a missing program fails the test with one line naming
/// it and how to install it, unless `BARRAGE_TEST_SKIP` (comma-separated)
/// names `skip` — then the test says it was skipped and returns early.
#[must_use]
pub fn needs(bin: &str, skip: &str) -> bool {
    if skipped(skip, bin) {
        return false;
    }
    let here = ["--version", "-V"].iter().any(|flag| {
        Command::new(bin)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        here,
        "{bin} is missing: install it with `sudo bash scripts/test-deps.sh` \
         (or your package manager), or set BARRAGE_TEST_SKIP={skip} to skip"
    );
    true
}

/// Runs scenario `yaml` in-process, writing its report set into `out`.
pub async fn run_yaml(yaml: &str, out: &Path) -> barrage::RunOutcome {
    let mut opts = barrage::RunOptions::new(barrage::scenario::parse("test.yaml", yaml).unwrap());
    opts.out = Some(out.to_path_buf());
    let o = barrage::run(opts).await.unwrap();
    check_report(out, Some(i32::from(o.exit_code())));
    o
}

/// docs/report.schema.json, compiled once per test binary.
fn report_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).expect("the schema is valid JSON Schema")
    })
}

/// Checks a report folder written by a run, `run --processes` or `merge`
/// for consistency (docs/report.md, "How the numbers fit together"), and
/// that the exit code `exit` (when known) agrees with it:
/// - the report is exactly what `report::build` derives from its run data;
/// - setup and the recorded phases add up to the totals, and so do the
///   timeline's recorded seconds;
/// - each `.hlog` file's untagged intervals hold exactly the report's count
///   of that metric;
/// - errors never exceed connection attempts plus sends;
/// - `awaited = replies + unanswered`, `sent >= paced`;
/// - report.json matches docs/report.schema.json;
/// - verdict and exit code agree in report.json, summary.md, junit.xml,
///   report.html and the exit code.
pub fn check_report(path: &Path, exit: Option<i32>) {
    use barrage::report::{Report, Verdict};
    // A folder of a report set, or one report file (`merge --out`).
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join("report.json"))
    } else {
        (path.parent().unwrap().to_path_buf(), path.to_path_buf())
    };
    let dir = dir.as_path();
    let text = std::fs::read_to_string(&file).expect("report.json written");
    let r: Report = serde_json::from_str(&text).expect("report.json is a report");
    let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = report_schema()
        .iter_errors(&saved)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} breaks docs/report.schema.json: {errors:#?}",
        file.display()
    );
    let fresh = serde_json::to_value(barrage::report::merge::rederive(&r)).unwrap();
    assert_eq!(
        saved,
        fresh,
        "{}: the saved report differs from its run data's derivation",
        dir.display()
    );
    let data = &r.run_data;
    let record = r.record_flags();
    let recorded = data.recorded(&record).counters;
    let mut sum = data.stage(0).counters;
    for (i, p) in r.phases.iter().enumerate() {
        if p.record {
            sum.add(&data.stage(i + 1).counters);
        }
    }
    assert_eq!(sum, recorded, "setup + recorded phases ≠ totals");
    let m = &r.totals.messages;
    let t = (
        m.sent,
        m.paced,
        m.received,
        m.replies,
        m.unmatched,
        m.not_sent,
    );
    assert_eq!(
        t,
        (
            sum.sent,
            sum.paced,
            sum.received,
            sum.replies,
            sum.unmatched,
            sum.not_sent
        ),
        "totals.messages ≠ setup + recorded phases"
    );
    let phase_sent: u64 = r
        .phases
        .iter()
        .filter(|p| p.record)
        .map(|p| p.messages.sent)
        .sum();
    assert_eq!(phase_sent + data.stage(0).counters.sent, m.sent);
    let mut seconds = barrage::metrics::Counters::default();
    for s in &data.timeline {
        seconds.add(&s.recorded);
    }
    assert_eq!(
        seconds, recorded,
        "the timeline's recorded seconds ≠ totals"
    );
    let errors: u64 = r.totals.errors.values().sum();
    assert_eq!(errors, recorded.error_total());
    assert!(
        errors <= r.totals.connections.attempted + m.sent + m.expects,
        "{errors} errors for {} attempts, {} sends and {} expects",
        r.totals.connections.attempted,
        m.sent,
        m.expects
    );
    assert_eq!(
        m.awaited,
        m.replies + m.unanswered,
        "awaited ≠ replies + unanswered"
    );
    assert!(m.sent >= m.paced && m.received >= m.replies);
    // Every .hlog holds, untagged, exactly the report's samples.
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(metric) = name.strip_suffix(".hlog") else {
            continue;
        };
        let bytes = std::fs::read(entry.path()).unwrap();
        let mut total = 0u64;
        for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes) {
            if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) = item
                && h.tag().is_none()
            {
                let mut d = hdrhistogram::serialization::Deserializer::new();
                let b64 = base64_decode(h.encoded_histogram());
                let hist: hdrhistogram::Histogram<u64> = d.deserialize(&mut &b64[..]).unwrap();
                total += hist.len();
            }
        }
        let count = r.metrics.get(metric).map_or(0, |s| s.count);
        assert_eq!(
            total, count,
            "{name}: {total} samples, the report counts {count}"
        );
    }
    // One verdict in every file and the exit code.
    let word = r.verdict.word();
    if let Ok(md) = std::fs::read_to_string(dir.join("summary.md")) {
        assert!(
            md.contains(&format!("{word}: ")),
            "summary.md does not say {word}"
        );
    }
    if let Ok(x) = std::fs::read_to_string(dir.join("junit.xml")) {
        let doc = roxmltree::Document::parse(&x).unwrap();
        let case = doc
            .descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("verdict"))
            .expect("junit.xml has a verdict test case");
        let failed = case.children().any(|c| c.has_tag_name("failure"));
        let errored = case.children().any(|c| c.has_tag_name("error"));
        assert_eq!(
            (failed, errored),
            (r.verdict == Verdict::Fail, r.verdict == Verdict::Error),
            "junit.xml's verdict ≠ {word}"
        );
    }
    if let Ok(h) = std::fs::read_to_string(dir.join("report.html")) {
        assert!(
            h.contains(&format!(">{word}</span>")),
            "report.html does not say {word}"
        );
    }
    if let Some(code) = exit {
        let want = if r.interrupted {
            vec![130, 143]
        } else {
            match r.verdict {
                Verdict::Pass => vec![0],
                Verdict::Fail => vec![1],
                Verdict::Error => vec![3],
            }
        };
        assert!(want.contains(&code), "exit {code} for verdict {word}");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barrage::ws::Decoder;
use barrage::ws::codec::Event;
use barrage::ws::deflate::Role;
use barrage::ws::handshake::accept_key;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Reads an upgrade request from `s` and answers 101 with its accept key;
/// false when the client went away first. For test servers that speak the
/// protocol by hand.
pub async fn accept_upgrade(s: &mut tokio::net::TcpStream) -> bool {
    let Some(head) = read_head(s).await else {
        return false;
    };
    answer_upgrade(s, &head).await
}

/// Reads an HTTP request head (up to the blank line).
async fn read_head(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(head)
}

/// Answers the upgrade request `head` with 101 and its accept key.
async fn answer_upgrade(s: &mut tokio::net::TcpStream, head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or("")
        .trim()
        .to_string();
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    s.write_all(resp.as_bytes()).await.is_ok()
}

/// A server that upgrades every connection by hand (or answers `status`
/// instead when given), then writes `bytes` and records the close code the
/// client answers with; `Some(hold)` instead stops reading after the upgrade
/// and holds the socket that long.
pub async fn bad_server(
    bytes: Vec<u8>,
    status: Option<&'static str>,
    hold: Option<Duration>,
) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let codes: Arc<Mutex<Vec<u16>>> = Arc::default();
    let seen = codes.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let bytes = bytes.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut s).await else {
                    return;
                };
                if let Some(status) = status {
                    let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                    let _ = s.write_all(resp.as_bytes()).await;
                    return;
                }
                if !answer_upgrade(&mut s, &head).await {
                    return;
                }
                let _ = s.write_all(&bytes).await;
                if let Some(hold) = hold {
                    tokio::time::sleep(hold).await;
                    if hold < Duration::from_secs(1) {
                        // A short hold ends in a reset: linger 0 sends RST.
                        let _ = s.set_zero_linger();
                    }
                    return;
                }
                // The client's answer: a masked close frame with its code.
                let mut dec = Decoder::with_role(Role::Server, 1 << 20, None, Vec::new());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                loop {
                    let read =
                        tokio::time::timeout_at(deadline, s.read_buf(dec.buffer_mut())).await;
                    if !matches!(read, Ok(Ok(n)) if n > 0) {
                        return;
                    }
                    while let Ok(Some(ev)) = dec.next_event() {
                        if let Event::Close { code } = ev {
                            seen.lock().unwrap().push(code);
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, codes)
}

/// An unmasked server frame header for `len` payload bytes.
pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![first];
    if payload.len() < 126 {
        v.push(payload.len() as u8);
    } else {
        v.push(126);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}
