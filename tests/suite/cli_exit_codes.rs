//! The binary's exit codes and error messages, end to end.

use crate::common;

use std::time::{Duration, Instant};

use common::*;

const PASSING: &str = r#"
name: exit-pass
target: builtin
connections: { count: 5, rate: 1000/s, timeout: 2s }
phases:
  - { name: steady, duration: 1s, rate: 200/s }
thresholds:
  - rtt.p99 < 5s
  - errors.rate < 1%
"#;

#[test]
fn passing_thresholds_exit_0_and_write_reports() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(dir.path(), "s.yaml", PASSING);
    let out = dir.path().join("out");
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-tui",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_report(&out, o.status.code());
    assert!(stdout.contains("PASS: exit-pass"), "{stdout}");
    let r = read_report(&out);
    assert_eq!(r["verdict"], "pass");
    assert!(out.join("summary.md").exists());
    // Progress lines went to stderr, without escape codes.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("| open 5/5"), "{stderr}");
    assert!(!stderr.contains('\x1b'));
}

#[test]
fn failing_threshold_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = PASSING.replace("rtt.p99 < 5s", "rtt.p99 < 1ns");
    let f = write_scenario(dir.path(), "s.yaml", &yaml);
    let out = dir.path().join("out");
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    check_report(&out, o.status.code());
    let r = read_report(&out);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["thresholds"][0]["pass"], false);
    assert_eq!(r["thresholds"][1]["pass"], true);
    // --quiet: no progress lines.
    assert!(!String::from_utf8_lossy(&o.stderr).contains("| open"));
}

#[test]
fn yaml_syntax_error_exits_2_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "bad.yaml",
        "name: x\ntarget: builtin\nconnections: { count: 5\nphases: []\n",
    );
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml:4:"), "{err}");
    assert!(
        !dir.path().join("o").exists(),
        "nothing may run on bad input"
    );
}

#[test]
fn unknown_key_exits_2_naming_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = PASSING.replace("timeout: 2s", "timeout: 2s, cuont: 3");
    let f = write_scenario(dir.path(), "bad.yaml", &yaml);
    for cmd in ["run", "check"] {
        let o = run_bin(&[cmd, f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("bad.yaml:4:"), "{err}");
        assert!(err.contains("connections.cuont"), "{err}");
        assert!(err.contains("unknown field `cuont`"), "{err}");
    }
}

#[test]
fn check_prints_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(dir.path(), "s.yaml", PASSING);
    let o = run_bin(&["check", f.to_str().unwrap(), "scenarios/quickstart.yaml"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("expected messages 200"), "{out}");
    // quickstart: 1 s at 1000/s + 5 s at 2000/s.
    assert!(out.contains("expected messages 11000"), "{out}");
}

#[test]
fn unreachable_target_exits_3_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(dir.path(), "s.yaml", PASSING);
    let target = format!("ws://127.0.0.1:{}/", closed_port());
    let out = dir.path().join("out");
    let t0 = Instant::now();
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--target",
        &target,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    check_report(&out, o.status.code());
    let r = read_report(&out);
    assert_eq!(r["totals"]["connections"]["opened"], 0);
    assert_eq!(r["totals"]["errors"]["connect"], 5);
    let recent = r["totals"]["recent_errors"].to_string();
    assert!(
        recent.contains("connect:") && recent.contains("refused"),
        "{recent}"
    );
}

#[test]
fn bad_flag_value_exits_2() {
    let o = run_bin(&["run", "scenarios/quickstart.yaml", "--rate", "10/x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run_bin(&[
        "run",
        "scenarios/quickstart.yaml",
        "--target",
        "http://127.0.0.1:1/",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--target"));
}

/// Starts the binary with `args`, its output discarded.
fn spawn_quiet(args: &[&str]) -> std::process::Child {
    barrage()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Sends SIGINT (Ctrl-C) to `child` and checks it exits 130 within 3 s.
fn interrupt_and_expect_130_within_3s(child: &mut std::process::Child) {
    signal_and_expect_within_3s(child, "INT", 130);
}

/// Sends `signal` to `child` and checks it exits with `code` within 3 s.
fn signal_and_expect_within_3s(child: &mut std::process::Child, signal: &str, code: i32) {
    let t0 = Instant::now();
    let kill = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "did not stop after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(code));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        t0.elapsed()
    );
}

/// Starts a 60 s run of the passing scenario in the real binary and lets it
/// run 1.5 s; returns it, its temp dir and its out folder.
fn long_run() -> (std::process::Child, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = PASSING.replace("duration: 1s", "duration: 60s");
    let f = write_scenario(dir.path(), "s.yaml", &yaml);
    let out = dir.path().join("out");
    let child = spawn_quiet(&[
        "run",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    (child, dir, out)
}

#[test]
fn ctrl_c_stops_gracefully_writes_report_and_exits_130() {
    let (mut child, _dir, out) = long_run();
    interrupt_and_expect_130_within_3s(&mut child);
    check_report(&out, Some(130));
    let r = read_report(&out);
    assert_eq!(r["interrupted"], true);
    assert!(r["totals"]["messages"]["sent"].as_u64().unwrap() > 0);
    // The phase's rate counts up to the interruption, not to the end of the
    // closes, so a cut-short phase is not mistaken for a saturated tester.
    let phase = &r["phases"][0];
    let achieved = phase["achieved_rate"].as_f64().unwrap();
    assert!(
        (achieved - 200.0).abs() < 200.0 * 0.05,
        "achieved {achieved}/s of 200/s"
    );
    assert_eq!(phase["saturated"], false);
}

#[test]
fn sigterm_stops_gracefully_writes_a_complete_report_and_exits_143() {
    let (mut child, _dir, out) = long_run();
    signal_and_expect_within_3s(&mut child, "TERM", 143);
    check_report(&out, Some(143));
    let r = read_report(&out);
    assert_eq!(r["interrupted"], true);
    let t = &r["totals"];
    let sent = t["messages"]["sent"].as_u64().unwrap();
    assert!(
        sent > 0 && t["messages"]["received"].as_u64().unwrap() == sent,
        "{t}"
    );
    // Every file of the set is there and complete (written by rename).
    for f in ["report.json", "summary.md", "junit.xml", "report.html"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(
        std::fs::read_dir(&out)
            .unwrap()
            .all(|e| { !e.unwrap().file_name().to_string_lossy().contains(".tmp") })
    );
}

#[test]
fn ctrl_c_does_not_wait_for_connections_stuck_in_the_handshake() {
    // A server that accepts TCP and never answers the upgrade.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
            if held.len() > 100 {
                return;
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let yaml = PASSING.replace("timeout: 2s", "timeout: 60s");
    let f = write_scenario(dir.path(), "s.yaml", &yaml);
    let out = dir.path().join("out");
    let target = format!("ws://127.0.0.1:{port}/");
    let mut child = spawn_quiet(&[
        "run",
        f.to_str().unwrap(),
        "--target",
        &target,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    interrupt_and_expect_130_within_3s(&mut child);
    check_report(&out, Some(130));
    assert_eq!(read_report(&out)["interrupted"], true);
}

/// A SIGTERM that comes after the report is written, while the process is
/// still finishing (here: blocked writing its JSON lines to a full pipe),
/// is not lost: the run exits 143 once its output is out, and the report it
/// wrote is whole (the run itself was not interrupted).
#[test]
fn sigterm_after_the_report_is_written_exits_143() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(dir.path(), "s.yaml", PASSING);
    let out = dir.path().join("out");
    let mut child = barrage()
        .args(["run", f.to_str().unwrap(), "--json-lines", "--out"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The smallest pipe (one page): a second's JSON line fills it, so the
    // child blocks on its output until this test reads it.
    // SAFETY: fcntl on a pipe descriptor this test owns.
    let set = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        set >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    let t0 = Instant::now();
    while !out.join("report.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no report written");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "blocked on stdout");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["report"]["interrupted"], false, "the run was whole");
    assert_eq!(read_report(&out)["interrupted"], false);
    assert_eq!(read_report(&out)["verdict"], "pass");
}

/// A scenario file that cannot be read is named without a made-up position
/// (no `:0:0`), exits 2, and nothing runs.
#[test]
fn a_missing_scenario_file_is_named_without_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexist.yaml");
    let out = dir.path().join("out");
    let o = run_bin(&[
        "run",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-tui",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let want = format!("{}: cannot read scenario file", missing.display());
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!stderr.contains(":0:0"), "{stderr}");
    assert!(!out.exists(), "nothing ran");
}

/// Units people type are taken in YAML and on the command line alike:
/// compound durations (`1m30s`), `k`/`M` on rates and counts.
#[test]
fn units_people_type_are_accepted_in_yaml_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "units.yaml",
        "name: units\ntarget: builtin\n\
         connections: { count: 1k, rate: 10k/s }\n\
         phases:\n\
         \x20 - { name: steady, duration: 1m30s, rate: 1.5k/s }\n\
         \x20 - { name: more, duration: 1h 2m, rate: max, inflight: 1k, connections: 2k }\n",
    );
    let o = run_bin(&["check", f.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("1000 opened at 10000/s"), "{stdout}");
    assert!(stdout.contains("90.0s  rate 1500/s"), "{stdout}");
    assert!(stdout.contains("3720.0s"), "{stdout}");
    assert!(stdout.contains("1000 in flight per connection"), "{stdout}");
    assert!(stdout.contains("toward 2000"), "{stdout}");

    // The flags, in a real (short) run: they replace the scenario's values.
    let f = write_scenario(
        dir.path(),
        "short.yaml",
        "name: short\ntarget: builtin\nconnections: { count: 2, rate: 1k/s }\n\
         phases:\n\x20 - { name: steady, duration: 1m, rate: 10/s }\n",
    );
    let out = dir.path().join("out");
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--duration",
        "1s500ms",
        "--rate",
        "0.2k/s",
        "--connections",
        "0.01k",
        "--no-tui",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = read_report(&out);
    let p = &r["scenario"]["phases"][0];
    assert_eq!(p["duration_s"], 1.5, "{p}");
    assert_eq!(p["rate"], 200.0, "{p}");
    assert_eq!(r["totals"]["connections"]["attempted"], 10);
    // A count must be whole: refused with exit 2, naming the flag.
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--connections",
        "1.5",
        "--no-tui",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--connections"));
}
