//! The report set written by real runs: hdrhistogram interval logs read back,
//! junit.xml parsed, the `latest` pointer, and `barrage report` re-rendering.

use crate::common;

use barrage::metrics::decode_histogram;
use barrage::runner::{RunOptions, run};
use barrage::scenario::parse;
use common::*;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

const SCENARIO: &str = r#"
name: report-files
target: builtin
connections: { count: 10, rate: 1000/s }
phases:
  - { name: a, duration: 1s, rate: 300/s }
  - { name: b, duration: 1500ms, rate: 500/s }
thresholds: [ "rtt.p99 < 5s", "rtt.max < 1ns", "errors.rate < 1%" ]
"#;

async fn run_into(base: &std::path::Path) -> barrage::RunOutcome {
    let mut opts = RunOptions::new(parse("report-files.yaml", SCENARIO).unwrap());
    opts.reports_base = base.to_path_buf();
    let o = run(opts).await.unwrap();
    check_report(&o.report_path, Some(i32::from(o.exit_code())));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_set_is_complete_and_readable_by_other_tools() {
    let base = tempfile::tempdir().unwrap();
    let o = run_into(base.path()).await;
    let dir = o.report_path.parent().unwrap().to_path_buf();
    let r = &o.report;

    // latest points at this run.
    let latest = base.path().join("report-files").join("latest");
    assert_eq!(
        std::fs::canonicalize(latest.join("report.json")).unwrap(),
        std::fs::canonicalize(&o.report_path).unwrap()
    );

    // rtt.hlog: one histogram per second, adding up to every rtt sample.
    let log = std::fs::read(dir.join("rtt.hlog")).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("#[StartTime: "), "{text}");
    let mut total = 0;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&log) {
        if let Ok(LogEntry::Interval(h)) = entry {
            let hist = decode_histogram(h.encoded_histogram()).unwrap();
            assert!(h.duration().as_secs_f64() <= 1.1, "{:?}", h.duration());
            total += hist.len();
            intervals += 1;
        }
    }
    let all_rtt: u64 = r.phases.iter().map(|p| p.metrics["rtt"].count).sum();
    assert_eq!(total, all_rtt);
    assert!(intervals >= 3, "{intervals} intervals");
    assert!(dir.join("connect.hlog").exists());
    assert!(dir.join("handshake.hlog").exists());

    // junit.xml: the verdict and a test case per threshold, the failing
    // ones with their reason.
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3 + 1);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("2"));
    let failed: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("failure")))
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].attribute("name"), Some("verdict"));
    assert_eq!(failed[1].attribute("name"), Some("rtt.max < 1ns"));
    let failure = failed[1]
        .children()
        .find(|x| x.has_tag_name("failure"))
        .unwrap();
    assert!(failure.attribute("message").unwrap().contains("observed"));

    // `barrage report` re-renders the same files from report.json alone.
    let originals: Vec<(String, Vec<u8>)> = ["summary.md", "junit.xml", "rtt.hlog"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    let again = base.path().join("again");
    let out = run_bin(&[
        "report",
        o.report_path.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The re-rendered set has no report.json of its own: checked against
    // the report it came from (its exit code is the command's, not a verdict).
    std::fs::copy(&o.report_path, again.join("report.json")).unwrap();
    check_report(&again, None);
    for (name, bytes) in originals {
        assert_eq!(
            std::fs::read(again.join(&name)).unwrap(),
            bytes,
            "{name} differs"
        );
    }
}

#[test]
fn report_command_rejects_a_broken_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_scenario(
        dir.path(),
        "report.json",
        "{\n  \"schema\": \"barrage/report/v2\",\n  \"oops\n",
    );
    let o = run_bin(&["report", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("report.json:"), "{err}");
    assert!(err.contains("not a barrage report"), "{err}");
}
