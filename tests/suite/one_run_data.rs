//! The cases of "numbers and verdicts you can trust": each one a run whose
//! numbers or verdict used to disagree with each other, on real sockets.
//! Every report written here also passes `common::check_report`.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use barrage::control::Control;
use barrage::report::Verdict;
use barrage::runner::{RunOptions, run};
use barrage::scenario::parse;
use common::{bad_server, check_report, frame, run_yaml};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Runs `yaml` with `control` (its changes made by `drive` while it runs).
async fn run_controlled(
    yaml: &str,
    out: &std::path::Path,
    drive: impl FnOnce(Arc<Control>) -> tokio::task::JoinHandle<()>,
) -> barrage::RunOutcome {
    let mut opts = RunOptions::new(parse("t.yaml", yaml).unwrap());
    opts.out = Some(out.to_path_buf());
    let keys = drive(opts.control.clone());
    let o = run(opts).await.unwrap();
    keys.abort();
    check_report(out, Some(i32::from(o.exit_code())));
    o
}

const PACED: &str = "name: paced\ntarget: builtin\nconnections: { count: 10 }\n\
     phases:\n  - { name: steady, duration: 3s, rate: 200/s }\n\
     thresholds: [ \"throughput.ratio > 98%\" ]\n";

/// Case 1: pausing, `-` and a factor below 1 lower the schedule itself
/// (the integral of rate × factor, 0 while paused), so the phase is not
/// SATURATED and `throughput.ratio` holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_1_pause_and_lower_factor_are_not_saturation() {
    let dir = tempfile::tempdir().unwrap();
    let paused = run_controlled(PACED, &dir.path().join("pause"), |c| {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            c.toggle_pause();
            tokio::time::sleep(Duration::from_millis(1000)).await;
            c.toggle_pause();
        })
    })
    .await;
    let slower = run_controlled(PACED, &dir.path().join("slower"), |c| {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            // A shard's stdin `factor` line goes through the same call.
            c.set(false, 0.5);
        })
    })
    .await;
    for (o, what) in [(&paused, "pause"), (&slower, "factor 0.5")] {
        let r = &o.report;
        let p = &r.phases[0];
        assert!(!p.saturated && !r.saturated, "{what}: {p:?}");
        assert_eq!(r.verdict, Verdict::Pass, "{what}: {:?}", r.thresholds);
        assert!(!barrage::report::table::verdict_line(r).contains("fell behind"));
        // The schedule is what the live rate came to, far below 200/s × 3 s.
        assert!(p.scheduled < 500, "{what}: scheduled {}", p.scheduled);
        assert!(p.messages.paced as f64 >= p.scheduled as f64 * 0.99);
        assert!(!r.rate_changes.is_empty());
    }
    // Paused for about 1 s of 3: about 400 of 600 scheduled.
    let s = paused.report.phases[0].scheduled;
    assert!((300..=500).contains(&s), "paused schedule {s}");
}

/// Case 2: a listen-only phase (no paced loop) needs no rate, has no
/// schedule to miss, and is never SATURATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_2_a_listen_only_phase_needs_no_rate_and_is_not_saturated() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: listen\ntarget: builtin\nbuiltin: { mode: push, push_rate: 20/s }\n\
                delivery: { field: ts, unit: us }\nconnections: { count: 5 }\n\
                phases:\n  - { name: listen, duration: 2s }\n\
                flow:\n  - sleep: 1h\n\
                thresholds: [ \"delivery.count > 50\" ]\n";
    let out = dir.path().join("out");
    let o = run_yaml(yaml, &out).await;
    let p = &o.report.phases[0];
    assert_eq!(p.target_rate, None);
    assert_eq!(p.scheduled, 0);
    assert!(!p.saturated && !o.report.saturated);
    assert_eq!(o.report.verdict, Verdict::Pass, "{:?}", o.report.thresholds);
    // A paced loop without a rate is refused, naming the phase.
    let bad = "name: b\ntarget: builtin\nconnections: { count: 1 }\nphases:\n  - { name: quiet, duration: 1s }\n";
    let e = parse("b.yaml", bad).unwrap_err().to_string();
    assert!(e.contains("quiet") && e.contains("no rate"), "{e}");
}

/// Case 3: a run in which no connection opened says `error` in every file
/// and exits 3; so does a merge missing a shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_3_a_failed_run_has_verdict_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::closed_port();
    let yaml = format!(
        "name: down\ntarget: ws://127.0.0.1:{port}/\nconnections: {{ count: 3, timeout: 1s }}\n\
         phases:\n  - {{ name: p, duration: 1s, rate: 10/s }}\nthresholds: [ \"rtt.p99 < 1s\" ]\n"
    );
    let out = dir.path().join("down");
    let o = run_yaml(&yaml, &out).await;
    assert_eq!(o.report.verdict, Verdict::Error);
    assert_eq!(o.exit_code(), 3);
    // Why, first: the most common error kind and its latest message.
    let why = o.report.error.as_deref().unwrap();
    assert!(why.contains("no connection opened"), "{why}");
    assert!(
        why.contains("3 of 3 attempts failed with connect errors, e.g. connect:"),
        "{why}"
    );
    let line = barrage::report::table::verdict_line(&o.report);
    assert!(
        line.starts_with("ERROR: down — the run failed: no connection opened"),
        "{line}"
    );
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("ERROR: down"), "{md}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<error type=\"verdict\""), "{junit}");

    // Shard 0 of 2 alone, merged: the other half is missing.
    let mut s = parse("s.yaml", PACED).unwrap();
    s.apply_shard("0/2".parse().unwrap()).unwrap();
    let mut opts = RunOptions::new(s);
    opts.out = Some(dir.path().join("shard0"));
    let shard = run(opts).await.unwrap();
    let merged = barrage::report::merge::merge(&[shard.report]).unwrap();
    let to = barrage::runner::Destination::File(dir.path().join("merged/report.json"));
    let m = barrage::runner::finish(merged, &to).unwrap();
    assert_eq!(m.report.verdict, Verdict::Error);
    assert_eq!(m.exit_code(), 3);
    assert!(m.report.error.unwrap().contains("[1] of 2"));
}

/// Case 4: a protocol error before the phases start is one `protocol`
/// error, not also `closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_4_a_protocol_error_before_the_phases_is_one_error() {
    // Opcode 0x3 is reserved: a protocol error as soon as it is read.
    let (addr, _) = bad_server(frame(0x83, b"x"), None, None).await;
    let dir = tempfile::tempdir().unwrap();
    // The second connection opens 500 ms after the first, which meanwhile
    // reads the bad frame while waiting for the phases.
    let yaml = format!(
        "name: early\ntarget: ws://{addr}/\nconnections: {{ count: 2, rate: 2/s, timeout: 2s }}\n\
         phases:\n  - {{ name: p, duration: 500ms, rate: 10/s }}\n"
    );
    let out = dir.path().join("out");
    let o = run_yaml(&yaml, &out).await;
    let e = &o.report.totals.errors;
    assert_eq!(e["protocol"], 2, "{e:?}");
    assert_eq!(e["closed"], 0, "{e:?}");
    let total: u64 = e.values().sum();
    assert_eq!(total, 2, "{e:?}");
}

/// Case 5: setup sends (join, subscribe) are not paced: the achieved rate
/// compares paced sends with the paced schedule, and the others are counted
/// on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_5_achieved_rate_counts_paced_sends_only() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: join\ntarget: builtin\nconnections: { count: 40 }\n\
                phases:\n  - { name: steady, duration: 2s, rate: 20/s }\n\
                flow:\n  - send: { text: join, correlate: none }\n  - loop:\n      - send: { text: hi }\n";
    let out = dir.path().join("out");
    let o = run_yaml(yaml, &out).await;
    let p = &o.report.phases[0];
    assert_eq!(p.messages.sent - p.messages.paced, 40, "{:?}", p.messages);
    assert!(
        (18.0..=21.0).contains(&p.achieved_rate),
        "achieved {} for target 20/s",
        p.achieved_rate
    );
}

/// Case 6: a flow ending in `sleep: 1h` ends with its phases: no 2 s of
/// drain, and nothing is recorded after the last phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_6_the_run_ends_when_its_phases_end() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: tail\ntarget: builtin\nbuiltin: { mode: push, push_rate: 50/s }\n\
                delivery: { field: ts, unit: us }\nconnections: { count: 4 }\n\
                phases:\n  - { name: listen, duration: 2s }\nflow:\n  - sleep: 1h\n";
    let out = dir.path().join("out");
    let o = run_yaml(yaml, &out).await;
    let r = &o.report;
    assert!(r.duration_s < 2.8, "ran {} s for a 2 s phase", r.duration_s);
    // 4 connections × 50/s × 2 s, and not the ~2 s of pushes after it.
    let n = r.metrics["delivery"].count;
    assert!((300..=440).contains(&n), "{n} deliveries");
    let end_ms = r.run_data.facts.load_started_ms.unwrap() + 2000;
    for s in &r.run_data.timeline {
        if s.t_ms.saturating_sub(s.interval_ms) >= end_ms + 50 {
            assert_eq!(s.recorded.delivered + s.recorded.unmatched, 0, "{s:?}");
        }
    }
}

/// Case 7: unrecorded phases are tagged in the .hlog files, so every
/// untagged total equals the report's count (check_report asserts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_7_hlog_totals_equal_the_report_counts() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: warm\ntarget: builtin\nconnections: { count: 10 }\n\
                phases:\n  - { name: warmup, duration: 1s, rate: 200/s, record: false }\n\
                \x20 - { name: steady, duration: 1s, rate: 200/s }\n";
    let out = dir.path().join("out");
    let o = run_yaml(yaml, &out).await;
    let hlog = std::fs::read_to_string(out.join("rtt.hlog")).unwrap();
    assert!(hlog.contains("Tag=unrecorded"), "{hlog}");
    assert_eq!(
        o.report.metrics["rtt"].count,
        o.report.phases[1].metrics["rtt"].count
    );
}

/// A server that answers nothing and pushes a text message every 50 ms.
async fn push_only_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !common::accept_upgrade(&mut s).await {
                    return;
                }
                let (mut rd, mut wr) = s.into_split();
                // Reads and drops what the client sends (a close ends it).
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
                });
                for _ in 0..100 {
                    if wr.write_all(&frame(0x81, b"{\"push\":1}")).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    });
    addr
}

/// Case 8: with FIFO `echo`, a server push is not taken for the echo of a
/// message: against a server that only pushes, nothing is a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_8_echo_does_not_take_unrelated_pushes_for_replies() {
    let addr = push_only_server().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: pushes\ntarget: ws://{addr}/\nconnections: {{ count: 3 }}\n\
         phases:\n  - {{ name: p, duration: 1s, rate: 30/s }}\n"
    );
    let out = dir.path().join("out");
    let o = run_yaml(&yaml, &out).await;
    let m = &o.report.totals.messages;
    assert!(m.sent >= 25, "{m:?}");
    assert_eq!(m.replies, 0, "{m:?}");
    assert_eq!(m.unanswered, m.sent, "{m:?}");
    assert!(m.unmatched > 0, "{m:?}");
    assert_eq!(o.report.metrics["rtt"].count, 0);
}

/// Case 9: a stop during the `--start-at` wait attempts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_9_a_stop_during_the_start_wait_attempts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(parse("t.yaml", PACED).unwrap());
    let out = dir.path().join("out");
    opts.out = Some(out.clone());
    opts.start_at = Some(SystemTime::now() + Duration::from_secs(5));
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let o = run(opts).await.unwrap();
    check_report(&out, Some(i32::from(o.exit_code())));
    let c = &o.report.totals.connections;
    assert_eq!((c.attempted, c.opened, c.failed), (0, 0, 0));
    assert!(o.report.interrupted);
    assert_eq!(o.exit_code(), 130);
}

/// Case 11: the unknown-metric error names every metric, error kind and
/// counter there is, from the one table of each.
#[test]
fn case_11_unknown_metric_error_lists_every_metric() {
    let yaml = "name: t\ntarget: builtin\nphases:\n  - { name: p, duration: 1s, rate: 1/s }\n\
                thresholds: [ \"nope.p99 < 1ms\" ]\n";
    let e = parse("t.yaml", yaml).unwrap_err().to_string();
    for m in barrage::scenario::LatencyMetric::ALL {
        assert!(e.contains(m.name()), "{} missing: {e}", m.name());
    }
    for k in barrage::scenario::ErrorKind::ALL {
        assert!(e.contains(k.name()), "{} missing: {e}", k.name());
    }
    for (c, _) in barrage::scenario::COUNTERS {
        assert!(e.contains(c), "{c} missing: {e}");
    }
}
