//! The threshold language on a real run, and every kind of written report
//! checked against docs/report.schema.json.

use crate::common;

use barrage::runner::{RunOptions, run};
use barrage::scenario::parse;
use common::*;

fn validate(path: &std::path::Path) {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/report.schema.json").unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid JSON Schema");
    let report = read_report_file(path);
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{} breaks the schema: {errors:#?}",
        path.display()
    );
}

fn read_report_file(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_ratios_and_phase_scopes_are_evaluated_and_reports_match_the_schema() {
    let yaml = r#"
name: gates
target: builtin
connections: { count: 5, rate: 1000/s }
phases:
  - { name: warmup, duration: 500ms, rate: 200/s, record: false }
  - { name: steady, duration: 1s, rate: 400/s }
thresholds:
  - steady: rtt.p99 < 5s
  - "steady: messages.sent >= 390"
  - messages.received >= 390
  - errors.count < 1
  - errors.timeout < 1
  - connections.opened >= 5
  - rtt.count > 0
  - throughput.ratio >= 95%
  - warmup: messages.sent > 100000
  - "steady: rtt.rate >= 380"
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, &dir.path().join("run")).await;
    let th = &o.report.thresholds;
    let verdicts: Vec<(&str, bool)> = th.iter().map(|t| (t.expr.as_str(), t.pass)).collect();
    assert!(th[..8].iter().all(|t| t.pass), "{verdicts:?}");
    assert!(
        !th[8].pass,
        "warmup sent about 100, not 100000: {:?}",
        th[8]
    );
    assert_eq!(th[5].observed, 5.0);
    assert!(
        th[7].observed > 0.95 && th[7].observed < 1.05,
        "{:?}",
        th[7]
    );
    assert_eq!(o.exit_code(), 1);

    // Every report this run and its tools write matches the schema.
    validate(&o.report_path);
    let merged = dir.path().join("merged.json");
    let out = run_bin(&[
        "merge",
        o.report_path.to_str().unwrap(),
        o.report_path.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the failing threshold fails the merge too"
    );
    check_report(&merged, out.status.code());
    validate(&merged);
    // A report of a run that opened nothing, too.
    let f = write_scenario(
        dir.path(),
        "down.yaml",
        "name: down\ntarget: builtin\nconnections: { count: 2 }\nphases: [ { name: a, duration: 1s, rate: 1/s } ]\n",
    );
    let down = dir.path().join("down");
    let target = format!("ws://127.0.0.1:{}/", closed_port());
    let out = run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--target",
        &target,
        "--out",
        down.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(3));
    check_report(&down, out.status.code());
    validate(&down.join("report.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_a_clearly_broken_run_after_its_grace() {
    let yaml = r#"
name: abort
target: builtin
connections: { count: 5, rate: 1000/s }
phases:
  - { name: steady, duration: 60s, rate: 200/s }
thresholds:
  - rtt.p99 < 5s
  - { threshold: "rtt.p50 < 1ns", abort_on_fail: true, grace: 1s }
"#;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RunOptions::new(parse("abort.yaml", yaml).unwrap());
    opts.out = Some(dir.path().join("run"));
    let t0 = std::time::Instant::now();
    let o = run(opts).await.unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    check_report(&o.report_path, Some(i32::from(o.exit_code())));
    assert_eq!(o.exit_code(), 1);
    assert_eq!(o.exit_code(), 1);
    let r = &o.report;
    let a = r.aborted.as_ref().expect("aborted is reported");
    assert_eq!(a.threshold, "rtt.p50 < 1ns");
    assert!(a.t_s >= 1.0 && a.t_s < 5.0, "{}", a.t_s);
    assert!(!r.interrupted);
    assert!(
        barrage::ui::summary::render(r, barrage::report::table::Detail::All)
            .contains("stopped early")
    );
    validate(&o.report_path);

    // The object form is checked like everything else.
    let bad = yaml.replace("grace: 1s", "grace: 1s, abort: true");
    let e = parse("abort.yaml", &bad).unwrap_err().to_string();
    assert!(
        e.contains("abort.yaml:9:") && e.contains("unknown field `abort`"),
        "{e}"
    );
}
