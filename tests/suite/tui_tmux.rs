//! The real binary's dashboard in a real terminal (tmux): figures shown and
//! changing, `+` changes the target rate, `q` stops with exit 130 and a report.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn tmux(args: &[&str]) -> String {
    let o = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn capture(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

fn wait_for(session: &str, what: &str, within: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let screen = capture(session);
        if screen.contains(what) {
            return screen;
        }
        assert!(
            t0.elapsed() < within,
            "{what:?} never appeared; screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first number after `label` on the screen.
fn number_after(screen: &str, label: &str) -> f64 {
    let rest = &screen[screen
        .find(label)
        .unwrap_or_else(|| panic!("{label} in\n{screen}"))
        + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("number after {label} in\n{screen}"))
}

struct Session(String);

/// Runs `cmd` in a new detached 160×48 tmux session.
fn start(session: &Session, cmd: &str) {
    start_sized(session, cmd, 160, 48);
}

/// Runs `cmd` in a new detached tmux session whose pane is `w`×`h` (no
/// status line taking a row of it).
fn start_sized(session: &Session, cmd: &str, w: u16, h: u16) {
    let (w, h) = (w.to_string(), h.to_string());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        &w,
        "-y",
        &h,
        cmd,
        ";",
        "set-option",
        "-t",
        &session.0,
        "status",
        "off",
    ]);
}

/// The pane's size as tmux reports it, `80x24`.
fn pane_size(session: &str) -> String {
    tmux(&[
        "display-message",
        "-p",
        "-t",
        session,
        "#{pane_width}x#{pane_height}",
    ])
    .trim()
    .to_string()
}

/// Waits for the child of the session to write its exit code (after `q`).
fn wait_exit_code(session: &str, code_file: &Path, within: Duration) -> String {
    let t0 = Instant::now();
    while !code_file.exists() {
        assert!(t0.elapsed() < within, "did not stop:\n{}", capture(session));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    std::fs::read_to_string(code_file)
        .unwrap()
        .trim()
        .to_string()
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn dashboard_runs_in_a_terminal_and_stops_on_q() {
    if !needs("tmux", "tui") {
        return;
    }
    drive_dashboard(tempfile::tempdir().unwrap().path(), "");
}

/// The same dashboard over 2 shard processes: their snapshots added into
/// one screen, `+` reaching both shards, `q` stopping both.
#[test]
fn dashboard_of_shard_processes_acts_as_one() {
    if !needs("tmux", "tui") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = drive_dashboard(dir.path(), "--processes 2");
    for i in 0..2 {
        // Each shard process's own report (its exit code is not seen here).
        check_report(&out.join(format!("shards/shard-{i}")), None);
        let shard = read_report(&out.join(format!("shards/shard-{i}")));
        let change = &shard["rate_changes"][0];
        assert!(
            (change["factor"].as_f64().unwrap() - 1.1).abs() < 1e-9,
            "shard {i}: {change}"
        );
        assert_eq!(shard["interrupted"], true);
    }
}

/// Runs a 200-connection scenario in a tmux terminal with `flags`, checks
/// the screen, presses `+` and `q`; returns the report folder (in `dir`).
fn drive_dashboard(dir: &Path, flags: &str) -> std::path::PathBuf {
    let f = write_scenario(
        dir,
        "tui.yaml",
        "name: tui\ntarget: builtin\nconnections: { count: 200, rate: 2000/s }\n\
         phases: [ { name: steady, duration: 60s, rate: 2000/s } ]\n\
         thresholds: [ 'rtt.p99 < 5s' ]\n",
    );
    let out = dir.join("out");
    let code_file = dir.join("exit_code");
    let session = Session(format!(
        "barrage-test-{}-{}",
        std::process::id(),
        flags.len()
    ));
    let cmd = format!(
        "{} run {} {flags} --out {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_barrage"),
        f.display(),
        out.display(),
        code_file.display()
    );
    start(&session, &cmd);

    let first = wait_for(&session.0, "steady 1/1", Duration::from_secs(20));
    let first = if first.contains("sent 0/s") {
        wait_for(&session.0, "rtt all", Duration::from_secs(10))
    } else {
        first
    };
    for want in [
        "Connections",
        "open     200 / 200",
        "Msgs/s",
        "Latency",
        "p99",
        "Thresholds",
    ] {
        assert!(first.contains(want), "{want:?} in\n{first}");
    }
    std::thread::sleep(Duration::from_millis(2200));
    let second = capture(&session.0);
    assert_ne!(first, second, "the screen must change between captures");
    let sent = number_after(&second, "sent");
    assert!(sent > 1000.0, "sent {sent}/s in\n{second}");

    tmux(&["send-keys", "-t", &session.0, "+"]);
    let faster = wait_for(&session.0, "rate ×1.10", Duration::from_secs(5));
    // The target shown follows at the next snapshot: 2000/s × 1.1.
    let faster = if faster.contains("target 2200") {
        faster
    } else {
        wait_for(&session.0, "target 2200", Duration::from_secs(5))
    };
    assert!(faster.contains("target 2200"));

    tmux(&["send-keys", "-t", &session.0, "q"]);
    let code = wait_exit_code(&session.0, &code_file, Duration::from_secs(10));
    assert_eq!(code, "130");
    check_report(&out, code.parse().ok());
    let r = read_report(Path::new(&out));
    assert_eq!(r["interrupted"], true);
    let change = &r["rate_changes"][0];
    assert!(
        (change["factor"].as_f64().unwrap() - 1.1).abs() < 1e-9,
        "{change}"
    );
    // After the dashboard, the same final summary as non-TUI runs.
    let after = capture(&session.0);
    assert!(after.contains("(interrupted)"), "{after}");
    out
}

/// A capacity search over connections in a terminal: the dashboard shows
/// the step running, its connection count and its rate as the parent set
/// them, and the search ends by itself with its answer.
#[test]
fn dashboard_follows_a_search() {
    if !needs("tmux", "tui") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "search.yaml",
        "name: tui-search\ntarget: builtin\nconnections: { count: 10, rate: 2000/s }\n\
         phases: [ { name: p, duration: 1s, rate: 100/s } ]\n",
    );
    let out = dir.path().join("out");
    let code_file = dir.path().join("exit_code");
    let session = Session(format!("barrage-test-search-{}", std::process::id()));
    let cmd = format!(
        "{} search {} --vary connections --from 20 --to 80 --slo 'rtt.p99 < 5s' \
         --step 2s --cooldown 1s --out {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_barrage"),
        f.display(),
        out.display(),
        code_file.display()
    );
    start(&session, &cmd);
    // Step 2 holds 40 connections at 10/s each.
    let screen = wait_for(&session.0, "step-2 ", Duration::from_secs(30));
    let screen = if screen.contains("open      40 / 40") && screen.contains("target 400") {
        screen
    } else {
        wait_for(&session.0, "open      40 / 40", Duration::from_secs(5))
    };
    assert!(screen.contains("target 400"), "{screen}");
    let t0 = Instant::now();
    while !code_file.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "the search did not end:\n{}",
            capture(&session.0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(100));
    let code = std::fs::read_to_string(&code_file).unwrap();
    assert_eq!(code.trim(), "0", "{}", capture(&session.0));
    check_report(&out, Some(0));
    let r = read_report(&out);
    assert_eq!(r["search"]["capacity"], 80.0);
    let after = capture(&session.0);
    assert!(
        after.contains("capacity: at least 80 connections (800 msg/s)"),
        "{after}"
    );
}

/// scenarios/chat-room.yaml as a new user runs it: within 3 s of the first
/// phase the dashboard shows deliveries arriving (received per second,
/// split) and delivery percentiles, charted because a threshold names
/// delivery; `q` stops it. The progress line of a `--no-tui` run shows the
/// same.
#[test]
fn chat_room_shows_its_deliveries_live() {
    if !needs("tmux", "tui") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.path().join("out");
    let code_file = dir.path().join("exit_code");
    let session = Session(format!("barrage-test-chat-{}", std::process::id()));
    let cmd = format!(
        "{} run {} --out {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_barrage"),
        root.join("scenarios/chat-room.yaml").display(),
        out.display(),
        code_file.display()
    );
    start(&session, &cmd);
    wait_for(&session.0, "warmup 1/2", Duration::from_secs(20));
    let t0 = Instant::now();
    let screen = wait_for(&session.0, "delivery p50/p99", Duration::from_secs(3));
    let screen = if screen.contains("delivery 1s") {
        screen
    } else {
        wait_for(
            &session.0,
            "delivery 1s",
            Duration::from_secs(3).saturating_sub(t0.elapsed()),
        )
    };
    let recv = number_after(&screen, "recv");
    assert!(recv > 0.0, "recv {recv}/s in\n{screen}");
    assert!(screen.contains("deliveries"), "{screen}");
    tmux(&["send-keys", "-t", &session.0, "q"]);
    let t1 = Instant::now();
    while !code_file.exists() {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{}",
            capture(&session.0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let o = barrage()
        .args(["run"])
        .arg(root.join("scenarios/chat-room.yaml"))
        .args(["--no-tui", "--duration", "3s", "--out"])
        .arg(dir.path().join("lines"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("steady 1/1") && l.contains("delivery p50"))
        .unwrap_or_else(|| panic!("no progress line with deliveries in\n{err}"));
    let recv = line
        .split("recv ")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap();
    assert!(recv > 0.0, "{line}");
}

/// Issue 19: the real binary in an 80×24 terminal. The latency rows carry
/// whole, distinct labels (they read `send_la` and `handsha` before), no
/// line is wider than the terminal, and `q` still stops the run with its
/// report.
#[test]
fn dashboard_fits_an_80x24_terminal() {
    if !needs("tmux", "tui") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "small.yaml",
        "name: small\ntarget: builtin\nconnections: { count: 50, rate: 1000/s }\n\
         phases: [ { name: steady, duration: 60s, rate: 500/s } ]\n\
         thresholds: [ 'rtt.p99 < 5s', 'errors.rate < 1%' ]\n",
    );
    let out = dir.path().join("out");
    let code_file = dir.path().join("exit_code");
    let session = Session(format!("barrage-test-80x24-{}", std::process::id()));
    let cmd = format!(
        "{} run {} --out {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_barrage"),
        f.display(),
        out.display(),
        code_file.display()
    );
    start_sized(&session, &cmd, 80, 24);
    assert_eq!(pane_size(&session.0), "80x24");
    wait_for(&session.0, "steady 1/1", Duration::from_secs(20));
    // Once a second of sending is in: rtt and send_lag have samples.
    let screen = wait_for(&session.0, "send_lag all", Duration::from_secs(10));
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines.len() <= 24, "{} lines:\n{screen}", lines.len());
    for l in &lines {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    let row = |label: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!("│{label} ")))
            .unwrap_or_else(|| panic!("no whole {label:?} in\n{screen}"))
    };
    // rtt (named by a threshold) and send_lag, each with its last-second
    // and whole-run rows, told apart.
    let rows = ["rtt 1s", "rtt all", "send_lag 1s", "send_lag all"].map(row);
    let mut distinct = rows.to_vec();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{screen}");
    for cut in ["send_la ", "handsha "] {
        assert!(!screen.contains(cut), "{cut:?} in\n{screen}");
    }
    for want in [
        "Connections",
        "open      50 / 50",
        "Msgs/s",
        "target 500/s",
        "Latency (last second / whole run)",
        "p99.9",
        "Errors",
        "Thresholds",
        "pass rtt.p99 < 5s",
        "q stop",
    ] {
        assert!(screen.contains(want), "{want:?} in\n{screen}");
    }
    eprintln!("80x24 dashboard:\n{screen}");

    tmux(&["send-keys", "-t", &session.0, "q"]);
    let code = wait_exit_code(&session.0, &code_file, Duration::from_secs(10));
    assert_eq!(code, "130");
    check_report(&out, Some(130));
    let r = read_report(&out);
    assert_eq!(r["interrupted"], true);
}

/// `-vv` under the dashboard: no log line reaches the screen while it
/// runs; the latest 1,000 are printed after it, with how many were dropped.
#[test]
fn log_lines_wait_for_the_dashboard_to_end() {
    if !needs("tmux", "tui") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 600 opens and 600 closes: more lines than are held.
    let f = write_scenario(
        dir.path(),
        "logs.yaml",
        "name: tui-logs\ntarget: builtin\nconnections: { count: 600, rate: 5000/s }\n\
         phases: [ { name: steady, duration: 3s, rate: 100/s } ]\n",
    );
    let out = dir.path().join("out");
    let code_file = dir.path().join("exit_code");
    let session = Session(format!("barrage-test-logs-{}", std::process::id()));
    let cmd = format!(
        "env -u RUST_LOG {} run {} -vv --out {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_barrage"),
        f.display(),
        out.display(),
        code_file.display()
    );
    start(&session, &cmd);
    wait_for(&session.0, "steady 1/1", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let during = capture(&session.0);
    assert!(
        !during.contains("connection open") && !during.contains("DEBUG"),
        "a log line on the dashboard:\n{during}"
    );
    let code = wait_exit_code(&session.0, &code_file, Duration::from_secs(20));
    assert_eq!(code, "0");
    let after = tmux(&["capture-pane", "-p", "-J", "-S", "-5000", "-t", &session.0]);
    let held: Vec<&str> = after
        .lines()
        .filter(|l| l.contains("DEBUG") || l.contains(" INFO "))
        .collect();
    // The latest 1,000, and "run ended" when it came after the dashboard.
    assert!(
        (1000..=1001).contains(&held.len()),
        "{} log lines:\n{after}",
        held.len()
    );
    assert!(
        after.contains("log lines dropped while the dashboard ran (the last 1000 follow)"),
        "{after}"
    );
    assert!(
        held.iter().any(|l| l.contains("connection closed conn=")),
        "{after}"
    );
    assert!(held.last().unwrap().contains("run ended"), "{after}");
    // Then the summary.
    assert!(after.contains("PASS: tui-logs"), "{after}");
}
