//! `barrage search` against a server with a known capacity: the Python
//! `websockets` peer answering at most K messages a second and queuing the
//! rest, so past K its latency grows without bound.

mod common;

use common::*;

const K: f64 = 1500.0;

/// The searches take the machine's cores: one at a time, so no search is
/// judged tester-bound because another ran beside it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// 20 connections at 200/s: 10 messages a second each.
fn search(port: u16, dir: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Output {
    let f = write_scenario(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\ntarget: ws://127.0.0.1:{port}/\nconnections: {{ count: 20, rate: 1000/s }}\n\
             phases: [ {{ name: p, duration: 1s, rate: 200/s }} ]\n"
        ),
    );
    let out = dir.join(name);
    barrage()
        .arg("search")
        .arg(&f)
        .args([
            "--slo",
            "rtt.p99 < 50ms",
            "--step",
            "2s",
            "--cooldown",
            "2s",
        ])
        .args(["--precision", "10%", "--no-tui", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn finds_the_capacity_of_a_server_with_a_known_limit() {
    if !needs_peers() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let peer = PythonPeer::start(&["--max-rate", &K.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    // --min above what the server can do: found, but exit 1.
    let o = search(
        peer.port,
        dir.path(),
        "found",
        &["--from", "500/s", "--to", "4000/s", "--min", "5000/s", "-q"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = dir.path().join("found");
    check_report(&out, Some(1));
    let r = read_report(&out);
    let s = &r["search"];
    let capacity = s["capacity"].as_f64().unwrap();
    assert!(
        (capacity - K).abs() <= K * 0.1,
        "capacity {capacity}, limit {K}: {stdout}"
    );
    assert_eq!(s["tester_bound"], false);
    // Up ×2 until one breaks, then halving the gap.
    let offered: Vec<f64> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["offered"].as_f64().unwrap())
        .collect();
    assert_eq!(&offered[..3], &[500.0, 1000.0, 2000.0], "{offered:?}");
    for step in s["steps"].as_array().unwrap() {
        let (offered, pass) = (
            step["offered"].as_f64().unwrap(),
            step["pass"].as_bool().unwrap(),
        );
        // Well below the limit passes, well above fails.
        if offered <= K * 0.9 {
            assert!(pass, "{step}");
        }
        if offered >= K * 1.2 {
            assert!(!pass, "{step}");
        }
    }
    // -q: one line, the verdict with the answer.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("FAIL: found")
            && stdout.contains(&format!(
                "capacity: {} msg/s under rtt.p99 < 50ms, below --min 5,000",
                barrage::report::search::thousands(capacity)
            )),
        "{stdout}"
    );
    // Even the first step over the limit: no capacity, exit 3.
    let o = search(
        peer.port,
        dir.path(),
        "none",
        &["--from", "4000/s", "--to", "8000/s"],
    );
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    // Its plan first: the bounds and the most steps it could take.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "search: 4,000 msg/s to 8,000 msg/s, doubling then bisecting to 10%: at most 7 steps"
        ),
        "{err}"
    );
    let out = dir.path().join("none");
    check_report(&out, Some(3));
    let r = read_report(&out);
    assert!(r["search"]["capacity"].is_null());
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("no capacity: even the first step (4,000 msg/s)"),
        "{}",
        r["error"]
    );
}

/// The steps' rates, the achieved rates and the answer of a search's
/// report.
fn steps(r: &serde_json::Value) -> Vec<(f64, f64, bool)> {
    r["search"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["offered"].as_f64().unwrap(),
                s["achieved"].as_f64().unwrap(),
                s["pass"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_answer_is_the_same_over_two_processes() {
    if !needs_peers() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let peer = PythonPeer::start(&["--max-rate", &K.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let o = search(
        peer.port,
        dir.path(),
        "two",
        &["--from", "500/s", "--to", "4000/s", "--processes", "2"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = dir.path().join("two");
    check_report(&out, Some(0));
    let r = read_report(&out);
    let capacity = r["search"]["capacity"].as_f64().unwrap();
    assert!(
        (capacity - K).abs() <= K * 0.1,
        "capacity {capacity}, limit {K}: {stdout}"
    );
    let taken = steps(&r);
    // The parent decided every step from both shards' data: the same
    // doublings as one process, each sent at its whole rate.
    assert_eq!(
        taken.iter().take(3).map(|s| s.0).collect::<Vec<_>>(),
        [500.0, 1000.0, 2000.0]
    );
    for (offered, achieved, _) in &taken {
        assert!(
            (achieved - offered).abs() <= offered * 0.02 + 2.0,
            "{offered} offered, {achieved} achieved: {stdout}"
        );
    }
    // The merged steps are the shards' added: each shard sent about half.
    let shard = |i: usize| read_report(&out.join("shards").join(format!("shard-{i}")));
    let (a, b) = (shard(0), shard(1));
    for (i, p) in r["phases"].as_array().unwrap().iter().enumerate() {
        let sent = |phase: &serde_json::Value| phase["messages"]["sent"].as_u64().unwrap();
        assert_eq!(
            sent(p),
            sent(&a["phases"][i]) + sent(&b["phases"][i]),
            "{}",
            p["name"]
        );
        if p["name"].as_str().unwrap().ends_with("warmup") {
            continue;
        }
        let half = sent(p) as f64 / 2.0;
        assert!((sent(&a["phases"][i]) as f64 - half).abs() <= half * 0.1 + 2.0);
    }
    // A shard is steered by its parent, never searches alone.
    let o = barrage()
        .args([
            "search",
            "scenarios/quickstart.yaml",
            "--slo",
            "rtt.p99 < 5ms",
        ])
        .args(["--shard", "0/2", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--processes N"));
}

#[test]
fn searches_the_connection_count() {
    if !needs_peers() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let peer = PythonPeer::start(&["--max-rate", &K.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    // 10 messages a second each: the server holds K / 10 connections.
    let n = K / 10.0;
    let o = search(
        peer.port,
        dir.path(),
        "conns",
        &["--vary", "connections", "--from", "40", "--to", "400"],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr.contains("search: 40 connections to 400 connections at 10/s each"),
        "{stderr}"
    );
    let out = dir.path().join("conns");
    check_report(&out, Some(0));
    let r = read_report(&out);
    let s = &r["search"];
    assert_eq!(s["plan"]["vary"], "connections");
    let capacity = s["capacity"].as_f64().unwrap();
    assert!(
        (capacity - n).abs() <= n * 0.1,
        "capacity {capacity} connections, limit {n}: {stdout}"
    );
    for step in s["steps"].as_array().unwrap() {
        let count = step["connections"].as_f64().unwrap();
        // Each step opened (or closed) to its count, at 10/s each.
        assert_eq!(step["offered"].as_f64().unwrap(), count * 10.0, "{step}");
        let open = step["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["expr"] == "connections open")
            .unwrap();
        assert_eq!(open["observed"].as_f64().unwrap(), count, "{step}");
        if count <= n * 0.9 {
            assert_eq!(step["pass"], true, "{step}");
        }
        if count >= n * 1.2 {
            assert_eq!(step["pass"], false, "{step}");
        }
    }
    let counts: Vec<f64> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["connections"].as_f64().unwrap())
        .collect();
    assert_eq!(&counts[..3], &[40.0, 80.0, 160.0], "{counts:?}");
    assert!(
        stdout.contains(&format!(
            "capacity: {} connections ({} msg/s) under rtt.p99 < 50ms",
            capacity,
            barrage::report::search::thousands(capacity * 10.0)
        )),
        "{stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Latency against connections"));
}

#[test]
fn search_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (args, why) in [
        (&["--slo", "rtt.p99 <"][..], "--slo"),
        (
            &["--slo", "steady: rtt.p99 < 5ms"][..],
            "leave out the phase",
        ),
        (
            &["--slo", "rtt.p99 < 5ms", "--from", "10/s", "--to", "5/s"][..],
            "--from",
        ),
        (
            &["--slo", "rtt.p99 < 5ms", "--warmup", "1s"][..],
            "at least 2s",
        ),
        (
            &["--slo", "rtt.p99 < 5ms", "--precision", "90%"][..],
            "between 0.1% and 50%",
        ),
        (
            &[
                "--slo",
                "rtt.p99 < 5ms",
                "--vary",
                "connections",
                "--from",
                "10/s",
            ][..],
            "not a connection count",
        ),
    ] {
        let o = barrage()
            .args(["search", "scenarios/quickstart.yaml", "--out"])
            .arg(dir.path().join("x"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!dir.path().join("x").exists());
    }
}
