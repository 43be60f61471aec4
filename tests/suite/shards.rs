//! Runs split into shards: `--shard I/N --start-at` processes merged with
//! `barrage merge`, `run --processes N`, and `serve --processes N`, all as
//! real processes on loopback.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{barrage, check_report, read_report, write_scenario};
use serde_json::Value;

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `barrage serve` on `port` with `extra` flags; waits until it accepts.
fn serve(port: u16, extra: &[&str]) -> Child {
    let child = barrage()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "serve did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for `child` to exit within `limit`, killing it otherwise.
fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `barrage run FILE --processes N --no-tui --out OUT`.
fn run_processes(file: &Path, n: u32, out: &Path) -> Command {
    let mut c = barrage();
    c.arg("run")
        .arg(file)
        .args(["--processes", &n.to_string(), "--no-tui", "--out"])
        .arg(out);
    c
}

fn scenario(dir: &Path, port: u16, secs: u32) -> std::path::PathBuf {
    write_scenario(
        dir,
        "s.yaml",
        &format!(
            "name: sharded\ntarget: ws://127.0.0.1:{port}/\n\
             connections: {{ count: 30, rate: 300/s }}\n\
             phases: [{{ name: steady, duration: {secs}s, rate: 300/s }}]\n\
             message: {{ text: '{{{{shard}}}}:{{{{conn}}}}:{{{{seq}}}}' }}\n\
             thresholds: [errors.rate < 1%]\n"
        ),
    )
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn shards_started_together_add_up_when_merged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve(port, &["--workers", "1"]);
    let file = scenario(dir.path(), port, 2);
    let start = std::time::SystemTime::now() + Duration::from_millis(1500);
    let at = humantime::format_rfc3339_millis(start).to_string();
    let children: Vec<Child> = (0..3)
        .map(|i| {
            let log = std::fs::File::create(dir.path().join(format!("shard-{i}.jsonl"))).unwrap();
            barrage()
                .arg("run")
                .arg(&file)
                .args(["--shard", &format!("{i}/3"), "--start-at", &at])
                .args(["--json-lines", "--format", "json", "--out"])
                .arg(dir.path().join(format!("out-{i}")))
                .stdout(log)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(wait_for(&mut c, Duration::from_secs(30)).success());
    }
    signal(&server, "-INT");
    wait_for(&mut server, Duration::from_secs(10));

    let mut sent = 0;
    let mut starts = Vec::new();
    for i in 0..3u64 {
        let text = std::fs::read_to_string(dir.path().join(format!("shard-{i}.jsonl"))).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // A run data delta every second, then the report as the last line.
        assert!(lines.len() >= 3, "{text}");
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.get("tick").is_some())
        );
        let r = &lines.last().unwrap()["report"];
        assert_eq!(u(r, "/shard/index"), i);
        assert_eq!(u(r, "/shard/count"), 3);
        // 30 connections as ids i, i+3, …: 10 each, a third of each rate.
        assert_eq!(u(r, "/totals/connections/opened"), 10);
        let rate = r
            .pointer("/phases/0/target_rate")
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((rate - 100.0).abs() < 1e-6, "{rate}");
        assert_eq!(
            u(r, "/totals/messages/sent"),
            u(r, "/totals/messages/received")
        );
        sent += u(r, "/totals/messages/sent");
        let began = humantime::parse_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
        starts.push(began);
        // Nobody started before the agreed instant.
        assert!(began + Duration::from_millis(5) >= start, "{r:?}");
    }
    let spread = starts
        .iter()
        .max()
        .unwrap()
        .duration_since(*starts.iter().min().unwrap())
        .unwrap();
    assert!(spread < Duration::from_millis(500), "{spread:?}");
    // 300/s over 2 s in all, on an open model.
    assert!((500..=600).contains(&sent), "{sent}");

    let logs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}.jsonl")))
        .collect();
    let merged = dir.path().join("merged.json");
    let out = barrage()
        .arg("merge")
        .args(&logs)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    check_report(&merged, out.status.code());
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(u(&m, "/totals/messages/sent"), sent);
    assert_eq!(u(&m, "/totals/connections/opened"), 30);
    assert_eq!(u(&m, "/scenario/connections"), 30);
    assert_eq!(m["merged"]["shards"], serde_json::json!([0, 1, 2]));
    assert_eq!(m["merged"]["missing"], serde_json::json!([]));
    assert!(m.get("shard").is_none());
    let rtt = u(&m, "/metrics/rtt/count");
    assert_eq!(rtt, sent, "every merged message is timed once");

    // A shard given twice is refused; a missing one is named.
    let out = barrage()
        .arg("merge")
        .args([&logs[0], &logs[0]])
        .arg("--out")
        .arg(dir.path().join("twice.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 0/3 is given twice"));
    // A missing shard makes the merged run an error (exit 3), said in
    // every file: its numbers cover part of the run.
    let part = dir.path().join("part/report.json");
    let out = barrage()
        .arg("merge")
        .args(&logs[..2])
        .arg("--out")
        .arg(&part)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shards [2] of 3 gave no report"), "{err}");
    assert_eq!(out.status.code(), Some(3), "{err}");
    check_report(&part, out.status.code());
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&part).unwrap()).unwrap();
    assert_eq!(m["verdict"], "error");
    assert_eq!(m["merged"]["missing"], serde_json::json!([2]));
}

#[test]
fn processes_run_as_one_and_write_one_merged_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(
        dir.path(),
        "s.yaml",
        "name: fleet\ntarget: builtin\nconnections: { count: 30, rate: 300/s }\n\
         phases: [{ name: steady, duration: 3s, rate: 300/s }]\n",
    );
    let out_dir = dir.path().join("out");
    let out = run_processes(&file, 3, &out_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    check_report(&out_dir, out.status.code());
    let r = read_report(&out_dir);
    assert_eq!(r["merged"]["shards"], serde_json::json!([0, 1, 2]));
    assert_eq!(u(&r, "/totals/connections/opened"), 30);
    let mut sent = 0;
    for i in 0..3 {
        let s = read_report(&out_dir.join(format!("shards/shard-{i}")));
        assert_eq!(u(&s, "/shard/index"), i);
        sent += u(&s, "/totals/messages/sent");
    }
    assert_eq!(u(&r, "/totals/messages/sent"), sent);
    assert!(sent >= 600, "{sent}");
    for f in ["summary.md", "junit.xml", "report.html", "rtt.hlog"] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    // One combined progress line a second, not one per shard.
    let lines = stderr.lines().filter(|l| l.starts_with("[")).count();
    assert!(
        (2..=7).contains(&lines),
        "{lines} progress lines:\n{stderr}"
    );
    let last = stderr.lines().rfind(|l| l.starts_with("[")).unwrap();
    assert!(last.contains("/30"), "{last}");
}

#[test]
fn processes_stop_on_ctrl_c_and_still_write_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(
        dir.path(),
        "s.yaml",
        "name: fleet-stop\ntarget: builtin\nconnections: { count: 20, rate: 200/s }\n\
         phases: [{ name: steady, duration: 60s, rate: 100/s }]\n",
    );
    let out_dir = dir.path().join("out");
    let mut child = run_processes(&file, 2, &out_dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    signal(&child, "-INT");
    let st = wait_for(&mut child, Duration::from_secs(15));
    assert_eq!(st.code(), Some(130));
    check_report(&out_dir, st.code());
    let r = read_report(&out_dir);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["merged"]["missing"], serde_json::json!([]));
    assert!(u(&r, "/totals/messages/sent") > 0);
    // The shards stopped with it: nothing runs with this out folder.
    let left = Command::new("pgrep")
        .args(["-f", &out_dir.display().to_string()])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "{left:?}");
}

#[test]
fn processes_stop_together_when_one_shard_aborts_or_on_an_early_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    // A threshold no run can hold, checked after 1 s of a 60 s run.
    let file = write_scenario(
        dir.path(),
        "s.yaml",
        "name: fleet-abort\ntarget: builtin\nconnections: { count: 20, rate: 200/s }\n\
         phases: [{ name: steady, duration: 60s, rate: 100/s }]\n\
         thresholds:\n  - { threshold: \"rtt.p50 < 1ns\", abort_on_fail: true, grace: 1s }\n",
    );
    let out_dir = dir.path().join("out");
    let began = Instant::now();
    let out = run_processes(&file, 2, &out_dir)
        .arg("-q")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
    let r = read_report(&out_dir);
    assert!(
        r["aborted"]["threshold"]
            .as_str()
            .unwrap()
            .contains("rtt.p50")
    );
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["merged"]["missing"], serde_json::json!([]));

    // Ctrl-C while the shards are still starting: they still stop and
    // report (a stop line waits in their stdin until they read it).
    let early = dir.path().join("early");
    let mut child = run_processes(&file, 2, &early)
        .arg("-q")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-INT");
    let st = wait_for(&mut child, Duration::from_secs(15));
    assert_eq!(st.code(), Some(130));
    assert_eq!(read_report(&early)["interrupted"], true);
}

#[test]
fn serve_processes_share_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve(port, &["--processes", "2", "--workers", "1"]);
    let file = write_scenario(
        dir.path(),
        "s.yaml",
        &format!(
            "name: two-servers\ntarget: ws://127.0.0.1:{port}/\n\
             connections: {{ count: 40, rate: 400/s }}\n\
             phases: [{{ name: steady, duration: 1s, rate: 200/s }}]\n"
        ),
    );
    let out = barrage()
        .arg("run")
        .arg(&file)
        .args(["--no-tui", "-q", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    signal(&server, "-INT");
    let st = wait_for(&mut server, Duration::from_secs(10));
    assert!(st.success());
    let mut text = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut text).unwrap();
    let counts: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("stopped after ").nth(1))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{text}");
    assert_eq!(counts.iter().sum::<u64>(), 40, "{text}");
    assert!(
        counts.iter().all(|c| *c > 0),
        "one process took them all: {text}"
    );

    // Port 0 cannot be shared by separate processes.
    let out = barrage()
        .args(["serve", "--processes", "2", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The pids of running processes whose command line holds every one of
/// `needles`.
fn pids_with(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie =
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        if !zombie && needles.iter().all(|n| cmd.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// A `barrage serve`, and `run --processes 2` of a `secs`-long scenario
/// against it, once the shards whose command lines hold `needles` (and the
/// out folder) run: (server, parent, out folder, those shards' pids).
fn start_fleet(
    dir: &Path,
    secs: u32,
    needles: &[&str],
) -> (Child, Child, std::path::PathBuf, Vec<u32>) {
    let port = free_port();
    let server = serve(port, &[]);
    let file = scenario(dir, port, secs);
    let out_dir = dir.join("out");
    let parent = run_processes(&file, 2, &out_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = out_dir.to_str().unwrap().to_string();
    let mut all: Vec<&str> = needles.to_vec();
    all.push(&out);
    let until = Instant::now() + Duration::from_secs(15);
    let want = if needles.iter().any(|n| n.contains('/')) {
        1
    } else {
        2
    };
    let pids = loop {
        let p = pids_with(&all);
        if p.len() == want {
            break p;
        }
        assert!(Instant::now() < until, "shards did not start: {p:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    (server, parent, out_dir, pids)
}

/// Hardening 6: SIGKILL of the `run --processes` parent leaves no time for
/// a stop line; each shard notices its parent is gone (stdin EOF, parent
/// pid), stops within seconds and still writes its report.
#[test]
fn shards_stop_and_write_their_reports_when_the_parent_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut parent, out_dir, shards) = start_fleet(dir.path(), 60, &["--shard"]);
    // Let the load start, then kill the parent outright.
    std::thread::sleep(Duration::from_secs(3));
    signal(&parent, "-KILL");
    wait_for(&mut parent, Duration::from_secs(5));
    let until = Instant::now() + Duration::from_secs(15);
    while shards.iter().any(|p| {
        std::path::Path::new(&format!("/proc/{p}")).exists()
            && !std::fs::read_to_string(format!("/proc/{p}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }) {
        assert!(
            Instant::now() < until,
            "shards still running 15 s after the parent died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..2 {
        let shard_out = out_dir.join(format!("shards/shard-{i}"));
        check_report(&shard_out, None);
        let r = read_report(&shard_out);
        assert_eq!(r["interrupted"], true);
        assert!(u(&r, "/totals/messages/sent") > 0);
    }
    signal(&server, "-INT");
    wait_for(&mut server, Duration::from_secs(10));
}

/// Hardening 17: one shard of `run --processes` killed with SIGKILL: the
/// merged run covers part of the load, so its verdict is `error` in every
/// file and the exit code is 3.
#[test]
fn a_killed_shard_makes_the_merged_run_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut parent, out_dir, shards) = start_fleet(dir.path(), 4, &["--shard", "1/2"]);
    let victim = shards[0];
    std::thread::sleep(Duration::from_millis(2500));
    let ok = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let st = wait_for(&mut parent, Duration::from_secs(30));
    assert_eq!(st.code(), Some(3));
    check_report(&out_dir, st.code());
    let r = read_report(&out_dir);
    assert_eq!(r["verdict"], "error");
    assert_eq!(r["merged"]["missing"], serde_json::json!([1]));
    signal(&server, "-INT");
    wait_for(&mut server, Duration::from_secs(10));
}
