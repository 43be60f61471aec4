//! `barrage search` against a server with a known capacity: the Python
//! `websockets` peer answering at most K messages a second and queuing the
//! rest, so past K its latency grows without bound.

mod common;

use common::*;

const K: f64 = 1500.0;

fn search(port: u16, dir: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Output {
    let f = write_scenario(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\ntarget: ws://127.0.0.1:{port}/\nconnections: {{ count: 20, rate: 1000/s }}\n\
             phases: [ {{ name: p, duration: 1s, rate: 100/s }} ]\n"
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
            "1s",
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
    assert!(
        stdout.contains("Capacity search")
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
        err.contains("search: 4000/s to 8000/s, doubling then bisecting to 10%: at most 7 steps"),
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
