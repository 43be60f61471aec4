//! Hostile servers whose risk is the client's memory: each test measures
//! this process's peak RSS (VmHWM) around one run, so this file holds only
//! such tests and runs them one after another.

mod common;

use std::time::Duration;

use common::{frame, run_yaml};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Peak resident memory of this process, in KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A server that upgrades, then for `secs` writes pings as fast as the
/// socket takes them and never reads a byte.
async fn ping_flood_server(secs: u64) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !common::accept_upgrade(&mut s).await {
                    return;
                }
                let batch: Vec<u8> = (0..4096).flat_map(|_| frame(0x89, b"p")).collect();
                let end = tokio::time::Instant::now() + Duration::from_secs(secs);
                while tokio::time::Instant::now() < end {
                    if s.write_all(&batch).await.is_err() {
                        return;
                    }
                }
                let _ = s.set_zero_linger();
            });
        }
    });
    addr
}

/// High 1: a server that pings and never reads must not grow the client's
/// memory: pongs obey the write-queue bound (the latest one is owed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Held across the run on purpose: it keeps the other memory test out.
#[allow(clippy::await_holding_lock)]
async fn pings_from_a_server_that_never_reads_keep_client_memory_bounded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let addr = ping_flood_server(4).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: pings\ntarget: ws://{addr}/\nconnections: {{ count: 2 }}\n\
         phases:\n  - {{ name: p, duration: 3s, rate: 10/s }}\n"
    );
    let before = peak_rss_kib();
    let out = dir.path().join("out");
    run_yaml(&yaml, &out).await;
    let grown = peak_rss_kib().saturating_sub(before);
    // Unbounded pongs grew it by about 80 MiB a connection in 3 s here.
    assert!(grown < 32 * 1024, "peak RSS grew by {grown} KiB");
}

/// Memory tests measure this process's peak: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Low 15: a CSV feeder holds about its file's size, not ~24× (a 20 MB
/// file took 480 MB as one `String` per cell).
#[test]
fn a_csv_feeder_holds_about_its_file_size() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    let mut text = String::from("user,token,room\n");
    let mut i = 0u64;
    while text.len() < 20 << 20 {
        text.push_str(&format!("user{i},tok{i:08},r{}\n", i % 100));
        i += 1;
    }
    std::fs::write(&path, &text).unwrap();
    let size_kib = text.len() as u64 / 1024;
    drop(text);
    let before = peak_rss_kib();
    let f = barrage::scenario::Feeder::load(
        &path,
        "users.csv",
        barrage::scenario::DataMode::Sequential,
    )
    .unwrap();
    assert_eq!(f.rows() as u64, i);
    let grown = peak_rss_kib().saturating_sub(before);
    // The file is read whole (1×) and its cells kept (about 1.3×).
    assert!(
        grown < size_kib * 3,
        "{grown} KiB for a {size_kib} KiB file"
    );
    let mut rng = fastrand::Rng::with_seed(1);
    assert_eq!(
        f.row_for(7, &mut rng).unwrap(),
        ["user7", "tok00000007", "r7"]
    );
}
