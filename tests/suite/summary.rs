//! The final summary on stdout: the verdict and thresholds first, zero
//! counters hidden unless `-v`, `--quiet` as one line, `--summary json`
//! for scripts with report.json's own numbers.

use crate::common;

use common::*;

const SCENARIO: &str = r#"
name: summary
target: builtin
connections: { count: 4, rate: 1000/s, timeout: 2s }
phases:
  - { name: warm, duration: 300ms, rate: 100/s, record: false }
  - { name: steady, duration: 700ms, rate: 200/s }
thresholds:
  - rtt.p99 < 5s
  - errors.rate < 1%
"#;

/// Runs the scenario (`thresholds` replaced by `threshold` when given)
/// with `extra` flags; returns (exit code, stdout, stderr, report.json).
fn run(
    dir: &std::path::Path,
    name: &str,
    threshold: Option<&str>,
    extra: &[&str],
) -> (Option<i32>, String, String, serde_json::Value) {
    let yaml = match threshold {
        Some(t) => SCENARIO.replace("rtt.p99 < 5s", t),
        None => SCENARIO.to_string(),
    };
    let f = write_scenario(dir, &format!("{name}.yaml"), &yaml);
    let out = dir.join(name);
    let o = barrage()
        .arg("run")
        .arg(&f)
        .args(["--no-tui", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    check_report(&out, o.status.code());
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        read_report(&out),
    )
}

/// The counter rows of the summary's Totals table.
fn totals(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| *l != "Totals")
        .skip(2)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_verdict_and_thresholds_come_first_and_zero_counters_only_with_v() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, r) = run(dir.path(), "plain", None, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("PASS: summary — 2/2 thresholds held"),
        "{stdout}"
    );
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "Thresholds");
    assert!(lines[4].starts_with("rtt.p99 < 5s") && lines[4].ends_with("pass"));
    assert!(lines[5].starts_with("errors.rate < 1%") && lines[5].ends_with("pass"));
    // Only counters that happened: every row's value is not 0, and the
    // ones that did happen agree with report.json.
    let rows = totals(&stdout);
    assert!(!rows.is_empty(), "{stdout}");
    assert!(rows.iter().all(|l| !l.ends_with(" 0")), "{rows:#?}");
    assert!(!stdout.contains("connections failed"), "{stdout}");
    let sent = r["totals"]["messages"]["sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert!(
        rows.iter()
            .any(|l| l.starts_with("messages sent ") && l.ends_with(&format!(" {sent}"))),
        "{rows:#?}"
    );
    assert!(!stdout.contains("Latency in phase"), "{stdout}");
    assert!(stderr.contains("report: "), "{stderr}");

    // -v: every counter, zero or not, and each phase's percentiles.
    let (code, stdout, _, _) = run(dir.path(), "verbose", None, &["-v"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("PASS: summary"), "{stdout}");
    let rows = totals(&stdout);
    assert!(
        rows.iter()
            .any(|l| l.starts_with("connections failed ") && l.ends_with(" 0")),
        "{rows:#?}"
    );
    assert!(stdout.contains("Latency in phase steady"), "{stdout}");
    // The files always hold every counter.
    let md = std::fs::read_to_string(dir.path().join("plain/summary.md")).unwrap();
    assert!(md.contains("connections failed"), "{md}");
}

#[test]
fn quiet_is_one_line_and_says_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, _) = run(dir.path(), "pass", None, &["--quiet"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("PASS: summary — 2/2 thresholds held"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("report: ") && !stderr.contains("| open"),
        "{stderr}"
    );
    let (code, stdout, _, _) = run(dir.path(), "fail", Some("rtt.p99 < 1ns"), &["-q"]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("FAIL: summary — 1/2 thresholds held"),
        "{stdout}"
    );
}

#[test]
fn summary_json_is_report_json_s_own_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, r) = run(
        dir.path(),
        "json",
        Some("rtt.p99 < 1ns"),
        &["--summary", "json", "-q"],
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let s: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    assert_eq!(s["verdict"], "fail");
    assert_eq!(s["verdict"], r["verdict"]);
    assert_eq!(s["thresholds"], r["thresholds"]);
    assert_eq!(s["totals"], r["totals"]);
    for (name, m) in r["metrics"].as_object().unwrap() {
        for k in ["count", "p50_us", "p99_us", "max_us"] {
            assert_eq!(s["metrics"][name][k], m[k], "{name}.{k}");
        }
    }
    assert!(s.get("timeline").is_none() && s.get("run_data").is_none());
    let path = std::path::PathBuf::from(s["report"].as_str().unwrap());
    assert!(path.ends_with("report.json") && path.exists(), "{path:?}");
    // Not with --json-lines, whose last line is the report itself.
    let f = dir.path().join("json.yaml");
    let o = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--json-lines",
        "--summary",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
}
