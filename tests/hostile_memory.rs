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
async fn pings_from_a_server_that_never_reads_keep_client_memory_bounded() {
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
