//! Load shapes against `barrage serve`'s server on loopback: rate ramps,
//! connections per phase, churn.

mod common;

use barrage::server::{self, Mode};
use common::*;

/// A 0 → 4,000/s ramp over 6 s: every whole second of the phase sends what
/// the line says for that second, within 2%, and the report's schedule is
/// the ramp's (its mean as the target rate, both ends kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_ramp_follows_its_line_second_by_second() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = format!(
        "name: ramp\ntarget: ws://{}/\nconnections: {{ count: 20, rate: 1000/s }}\n\
         phases: [ {{ name: ramp, duration: 6s, rate: 0/s..4000/s }} ]\n",
        srv.local_addr
    );
    let o = run_yaml(&yaml, &out).await;
    let r = &o.report;
    let phase = &r.phases[0];
    assert_eq!(phase.target_rate, Some(2000.0));
    assert_eq!(r.scenario.phases[0].ramp, Some([0.0, 4000.0]));
    // 12,000 due; the tester kept up.
    assert_eq!(phase.messages.not_sent, 0, "{phase:?}");
    assert!(phase.messages.sent.abs_diff(12_000) <= 20, "{phase:?}");
    let tl = &r.timeline;
    let inside: Vec<_> = (1..tl.len().saturating_sub(1))
        .filter(|&i| (i - 1..=i + 1).all(|j| tl[j].phase.as_deref() == Some("ramp")))
        .collect();
    assert!(inside.len() >= 4, "{tl:?}");
    for i in inside {
        let p = &tl[i];
        let want = p.target_rate.unwrap();
        assert!(
            (p.sent as f64 - want).abs() <= want * 0.02 + 2.0,
            "second ending {:.1}s: sent {}, the line says {want:.0}",
            p.t_s,
            p.sent
        );
    }
    srv.shutdown().await;
}

/// A phase going 100 → 1,000 → 200 connections: the timeline shows those
/// counts, every open is timed as `connect` (in the phase where it began),
/// and the 800 closed by barrage are counted as closed, not as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_grow_and_shrink_the_connection_count_while_messages_flow() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = format!(
        "name: grow-shrink\ntarget: ws://{}/\nconnections: {{ count: 100, rate: 2000/s }}\n\
         phases:\n\
         \x20 - {{ name: base, duration: 2s, rate: 300/s }}\n\
         \x20 - {{ name: grow, duration: 3s, rate: 300/s, connections: {{ count: 1000, rate: 1000/s }} }}\n\
         \x20 - {{ name: shrink, duration: 3s, rate: 300/s, connections: 200 }}\n",
        srv.local_addr
    );
    let o = run_yaml(&yaml, &out).await;
    let r = &o.report;
    let c = &r.totals.connections;
    assert_eq!((c.attempted, c.opened, c.failed), (1000, 1000, 0), "{c:?}");
    assert_eq!(c.closed, 800, "{c:?}");
    assert_eq!(c.peak_open, 1000, "{c:?}");
    assert_eq!(r.metrics["connect"].count, 1000);
    assert!(
        r.totals.errors.values().all(|n| *n == 0),
        "{:?}",
        r.totals.errors
    );
    // Opened during the phases: counted in them.
    let grow = r.phases.iter().find(|p| p.name == "grow").unwrap();
    assert_eq!(grow.metrics["connect"].count, 900);
    let open_at_end = |name: &str| {
        r.timeline
            .iter()
            .filter(|p| p.phase.as_deref() == Some(name))
            .map(|p| p.open)
            .next_back()
            .unwrap()
    };
    assert_eq!(open_at_end("base"), 100);
    assert_eq!(open_at_end("grow"), 1000);
    assert_eq!(open_at_end("shrink"), 200);
    let opened: u64 = r.timeline.iter().map(|p| p.opened).sum();
    assert_eq!(opened, 1000);
    // The message rate kept up over whatever was open.
    for p in &r.phases {
        assert_eq!(p.messages.not_sent, 0, "{}: {:?}", p.name, p.messages);
    }
    assert_eq!(
        srv.stats
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1000
    );
    srv.shutdown().await;
}

/// Churn: each connection lives 1 s to 2 s, then a replacement opens and
/// runs the flow again; the count holds within 5% and the replacements
/// follow the lifetimes (≈ 285 in 5 s, see below), none of them an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_replaces_connections_and_keeps_the_count() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = format!(
        "name: churn\ntarget: ws://{}/\n\
         connections: {{ count: 100, rate: 1000/s, lifetime: 1s..2s }}\n\
         phases: [ {{ name: churn, duration: 5s, rate: 500/s }} ]\n",
        srv.local_addr
    );
    let o = run_yaml(&yaml, &out).await;
    let r = &o.report;
    let c = &r.totals.connections;
    let replacements = c.opened - 100;
    // 100 × 5 s / 1.5 s ≈ 333 is the long-run rate; in the first 5 s a
    // uniform 1–2 s lifetime renews t/μ + σ²/2μ² − 1/2 ≈ 2.85 times per
    // connection (no replacement in the first second), so about 285, less
    // the time each close and reopen takes. Broken churn gives 0, or one
    // replacement per connection (100), or a storm.
    assert!(
        (240..=340).contains(&replacements),
        "{replacements} replacements: {c:?}"
    );
    assert_eq!(c.closed, replacements, "{c:?}");
    assert_eq!(c.failed, 0);
    assert!(
        r.totals.errors.values().all(|n| *n == 0),
        "{:?}",
        r.totals.errors
    );
    for p in r
        .timeline
        .iter()
        .filter(|p| p.phase.as_deref() == Some("churn"))
    {
        assert!(p.open >= 95, "second ending {:.1}s: {} open", p.t_s, p.open);
    }
    let m = &r.phases[0].messages;
    assert!(m.sent.abs_diff(2500) <= 25, "{m:?}");
    srv.shutdown().await;
}

/// A ramp and a growing phase split over `run --processes 2`: the merged
/// report counts what one process counts (every scheduled message, every
/// open, every close), and each shard did its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shapes_over_two_processes_count_as_one_process() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "shapes.yaml",
        &format!(
            "name: shapes\ntarget: ws://{}/\nconnections: {{ count: 40, rate: 1000/s }}\n\
             phases:\n\
             \x20 - {{ name: ramp, duration: 4s, rate: 0/s..2000/s }}\n\
             \x20 - {{ name: grow, duration: 3s, rate: 500/s, connections: {{ count: 200, rate: 400/s }} }}\n\
             \x20 - {{ name: shrink, duration: 2s, rate: 500/s, connections: 60 }}\n",
            srv.local_addr
        ),
    );
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let o = barrage()
            .arg("run")
            .arg(&f)
            .args(["--no-tui", "--seed", "7", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {o:?}");
        check_report(&out, Some(0));
        read_report(&out)
    };
    let one = run("one", &[]);
    let two = run("two", &["--processes", "2"]);
    for r in [&one, &two] {
        let c = &r["totals"]["connections"];
        assert_eq!(c["attempted"], 200, "{c}");
        assert_eq!(c["opened"], 200, "{c}");
        assert_eq!(c["closed"], 140, "{c}");
        assert_eq!(r["metrics"]["connect"]["count"], 200);
        let phases = r["phases"].as_array().unwrap();
        // Every scheduled message sent: 4,000 in the ramp, 1,500 and 1,000.
        for (p, want) in phases.iter().zip([4000u64, 1500, 1000]) {
            let m = &p["messages"];
            assert_eq!(m["not_sent"], 0, "{}: {m}", p["name"]);
            let sent = m["sent"].as_u64().unwrap();
            assert!(sent.abs_diff(want) <= want / 100 + 2, "{}: {m}", p["name"]);
        }
        assert_eq!(
            r["scenario"]["phases"][0]["ramp"],
            serde_json::json!([0.0, 2000.0])
        );
        assert_eq!(r["scenario"]["phases"][1]["connections"], 200);
    }
    // Each shard ran half the connections and half the ramp.
    for i in 0..2 {
        let shard = read_report(&dir.path().join(format!("two/shards/shard-{i}")));
        assert_eq!(shard["totals"]["connections"]["opened"], 100);
        assert_eq!(
            shard["scenario"]["phases"][0]["ramp"],
            serde_json::json!([0.0, 1000.0])
        );
        let sent = shard["phases"][0]["messages"]["sent"].as_u64().unwrap();
        assert!(sent.abs_diff(2000) <= 22, "shard {i}: {sent}");
    }
    srv.shutdown().await;
}
