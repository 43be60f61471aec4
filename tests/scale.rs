//! Functional checks of scale features (speed is measured in bench/, not here).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use barrage::runner::{RunOptions, run};
use barrage::scenario::parse;
use barrage::server::{self, Mode};
use common::*;

async fn run_against(addr: SocketAddr, body: &str) -> barrage::RunOutcome {
    let yaml = format!("name: scale-test\ntarget: ws://{addr}/\n{body}");
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(parse("scale.yaml", &yaml).unwrap());
    opts.out = Some(dir.path().to_path_buf());
    let o = run(opts).await.unwrap();
    check_report(dir.path(), Some(i32::from(o.exit_code())));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_2000_connections_against_the_built_in_server() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 2)
        .await
        .unwrap();
    let o = run_against(
        srv.local_addr,
        "connections: { count: 2000, rate: 10000/s, timeout: 10s }\n\
         phases: [ { name: hold, duration: 1s, rate: 2000/s } ]\n",
    )
    .await;
    let t = &o.report.totals;
    assert_eq!(o.exit_code(), 0);
    assert_eq!(t.connections.attempted, 2000);
    assert_eq!(t.connections.opened, 2000);
    assert_eq!(t.connections.peak_open, 2000);
    assert_eq!(t.connections.failed, 0);
    assert_eq!(srv.stats.connections.load(Relaxed), 2000);
    assert_eq!(t.messages.sent, t.messages.received);
    assert_eq!(srv.stats.messages.load(Relaxed), t.messages.sent);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ips_spread_connections_over_addresses() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let o = run_against(
        srv.local_addr,
        "source_ips: 127.0.0.1-127.0.0.4\n\
         connections: { count: 20, rate: 1000/s }\n\
         phases: [ { name: a, duration: 500ms, rate: 100/s } ]\n",
    )
    .await;
    assert_eq!(o.report.totals.connections.opened, 20);
    let mut peers: Vec<String> = srv
        .stats
        .peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    peers.sort();
    assert_eq!(peers, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    srv.shutdown().await;
}

#[test]
fn preflight_refuses_a_run_that_cannot_fit() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in server in the same process needs a descriptor per
    // connection too: 30,000 connections need ~60,000.
    let f = write_scenario(
        dir.path(),
        "big.yaml",
        "name: big\ntarget: builtin\nconnections: { count: 30000 }\n\
         phases: [ { name: a, duration: 1s, rate: 1/s } ]\n",
    );
    let out = dir.path().join("out");
    let o = run_bin(&["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("file descriptors"), "{err}");
    assert!(err.contains("barrage serve"), "{err}");
    assert!(!out.exists(), "nothing may run");
    // Source addresses of the wrong family are refused before connecting.
    let f = write_scenario(
        dir.path(),
        "v6.yaml",
        "name: v6\ntarget: builtin\nsource_ips: ['::1']\nconnections: { count: 1 }\n\
         phases: [ { name: a, duration: 1s, rate: 1/s } ]\n",
    );
    let o = run_bin(&["run", f.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("IPv4 and IPv6 mixed"));
    assert!(!out.exists(), "nothing may run");
}

/// Connections × `max_message_size` over this machine's memory is refused
/// before anything runs (also split over `--processes`), unless the user
/// says `--allow-memory-overcommit`; `check` states the worst case.
#[test]
fn preflight_refuses_more_message_memory_than_the_machine_unless_told() {
    let gib = 1u64 << 30;
    let memory = barrage::engine::preflight::memory_limit().expect("Linux has /proc/meminfo");
    let count = memory / gib + 1;
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "mem.yaml",
        &format!(
            "name: mem\ntarget: builtin\nmax_message_size: 1GiB\n\
             connections: {{ count: {count}, rate: 1000/s }}\n\
             phases: [ {{ name: a, duration: 300ms, rate: 100/s }} ]\n"
        ),
    );
    let file = f.to_str().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    for extra in [&[][..], &["--processes", "2"][..]] {
        let mut args = vec!["run", file, "--no-tui", "--out", out_s];
        args.extend_from_slice(extra);
        let o = run_bin(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "{count} connections × max_message_size 1 GiB = {count} GiB"
            )),
            "{err}"
        );
        assert!(err.contains("--allow-memory-overcommit"), "{err}");
        assert!(!out.exists(), "nothing may run");
    }
    let o = run_bin(&["check", file]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("up to {count} GiB of messages being received"))
            && text.contains("refuses it without --allow-memory-overcommit"),
        "{text}"
    );
    // Told: it runs (the echoes are small, so memory stays small).
    let o = run_bin(&[
        "run",
        file,
        "--no-tui",
        "-q",
        "--out",
        out_s,
        "--allow-memory-overcommit",
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let report = read_report(&out);
    assert_eq!(report["totals"]["connections"]["opened"], count);
}
