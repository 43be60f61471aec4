//! `barrage compare` and `barrage merge` on reports of real runs.

use crate::common;

use std::path::{Path, PathBuf};

use barrage::metrics::{decode_histogram, encode_histogram, new_histogram};
use barrage::runner::{RunOptions, run};
use barrage::scenario::parse;
use common::*;

const SCENARIO: &str = r#"
name: gate
target: builtin
connections: { count: 10, rate: 1000/s }
phases:
  - { name: steady, duration: 1s, rate: 400/s }
thresholds: [ "rtt.p99 < 5s" ]
"#;

async fn real_report(dir: &Path) -> PathBuf {
    let mut opts = RunOptions::new(parse("gate.yaml", SCENARIO).unwrap());
    opts.out = Some(dir.to_path_buf());
    run(opts).await.unwrap().report_path
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_passes_identical_reports_and_flags_a_doubled_p99() {
    let dir = tempfile::tempdir().unwrap();
    let base = real_report(&dir.path().join("base")).await;
    let o = run_bin(&["compare", base.to_str().unwrap(), base.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{table}");
    assert!(
        table.contains("| rtt.p99 |") && !table.contains("REGRESSION"),
        "{table}"
    );

    // Derived numbers edited by hand change nothing: compare derives the
    // report again from its run data.
    let mut edited = json(&base);
    edited["metrics"]["rtt"]["p99_us"] = 1e9.into();
    let edited_path = dir.path().join("edited.json");
    std::fs::write(&edited_path, serde_json::to_vec(&edited).unwrap()).unwrap();
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        edited_path.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // The same run with every rtt sample doubled, in its run data.
    let mut slow = json(&base);
    let cell = &mut slow["run_data"]["roles"][0]["stages"][1]["histograms"]["rtt"];
    let h = decode_histogram(cell.as_str().unwrap()).unwrap();
    let mut doubled = new_histogram();
    for v in h.iter_recorded() {
        doubled
            .record_n(v.value_iterated_to() * 2, v.count_at_value())
            .unwrap();
    }
    *cell = encode_histogram(&doubled).into();
    let slow_path = dir.path().join("slow.json");
    std::fs::write(&slow_path, serde_json::to_vec(&slow).unwrap()).unwrap();
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        slow_path.to_str().unwrap(),
        "--min-change",
        "0s",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{table}");
    let p99 = table
        .lines()
        .find(|l| l.starts_with("| rtt.p99 |"))
        .unwrap();
    assert!(p99.contains("REGRESSION") && p99.contains("+100"), "{p99}");
    // A tolerance that allows it passes.
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        slow_path.to_str().unwrap(),
        "--max-regression",
        "rtt.p50=150%,rtt.p99=150%,rtt.p99.9=150%",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The other way round, it is an improvement, not a failure.
    let o = run_bin(&[
        "compare",
        slow_path.to_str().unwrap(),
        base.to_str().unwrap(),
        "--min-change",
        "0s",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{table}");
    let p99 = table
        .lines()
        .find(|l| l.starts_with("| rtt.p99 |"))
        .unwrap();
    assert!(p99.contains("improvement"), "{p99}");
    assert!(table.contains("0 regressions, "), "{table}");
    // A bad tolerance is bad input.
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        base.to_str().unwrap(),
        "--max-regression",
        "rtt.p99=ten",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_adds_histograms_and_counters_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let a = real_report(&dir.path().join("a")).await;
    let b = real_report(&dir.path().join("b")).await;
    let (ja, jb) = (json(&a), json(&b));

    // A report merged with itself: every count doubles, every percentile stays.
    let twice = dir.path().join("twice.json");
    let o = run_bin(&[
        "merge",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "--out",
        twice.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_report(&twice, o.status.code());
    let jt = json(&twice);
    for path in [
        ["messages", "sent"],
        ["messages", "received"],
        ["connections", "opened"],
    ] {
        let one = ja["totals"][path[0]][path[1]].as_u64().unwrap();
        assert_eq!(
            jt["totals"][path[0]][path[1]].as_u64().unwrap(),
            2 * one,
            "{path:?}"
        );
    }
    for stat in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us", "min_us"] {
        assert_eq!(
            jt["metrics"]["rtt"][stat], ja["metrics"]["rtt"][stat],
            "{stat}"
        );
    }
    assert_eq!(
        jt["metrics"]["rtt"]["count"].as_u64().unwrap(),
        2 * ja["metrics"]["rtt"]["count"].as_u64().unwrap()
    );
    assert_eq!(jt["schema"], "barrage/report/v2");
    assert_eq!(jt["thresholds"][0]["pass"], true);

    // Two runs merged: counts add up, percentiles are those of the added histograms.
    let both = dir.path().join("both.json");
    let o = run_bin(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        both.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    check_report(&both, o.status.code());
    let jm = json(&both);
    let sum = |j: &serde_json::Value, k: &str| j["totals"]["messages"][k].as_u64().unwrap();
    assert_eq!(sum(&jm, "sent"), sum(&ja, "sent") + sum(&jb, "sent"));
    assert_eq!(
        sum(&jm, "received"),
        sum(&ja, "received") + sum(&jb, "received")
    );
    let mut added = decode_histogram(ja["metrics"]["rtt"]["histogram"].as_str().unwrap()).unwrap();
    added
        .add(decode_histogram(jb["metrics"]["rtt"]["histogram"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(jm["metrics"]["rtt"]["count"].as_u64().unwrap(), added.len());
    assert_eq!(
        jm["metrics"]["rtt"]["p99_us"].as_f64().unwrap(),
        added.value_at_quantile(0.99) as f64 / 1000.0
    );
    // The merged timeline still adds up to the merged sends.
    let timeline_sent: u64 = jm["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(timeline_sent, sum(&jm, "sent"));
}

/// Merge refuses reports of different scenarios (exit 2), naming the field
/// that differs: name, phases, roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_refuses_reports_of_different_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let a = real_report(&dir.path().join("a")).await;
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 4] = [
        ("scenario name", |j| j["scenario"]["name"] = "other".into()),
        ("phases", |j| {
            j["scenario"]["phases"][0]["name"] = "other".into()
        }),
        ("phases.steady.duration", |j| {
            j["scenario"]["phases"][0]["duration_s"] = 9.0.into()
        }),
        ("roles", |j| {
            j["run_data"]["roles"][0]["name"] = "publisher".into()
        }),
    ];
    for (field, edit) in edits {
        let mut j = json(&a);
        edit(&mut j);
        let other = dir.path().join("other.json");
        std::fs::write(&other, serde_json::to_vec(&j).unwrap()).unwrap();
        let out = dir.path().join("m.json");
        let o = run_bin(&[
            "merge",
            a.to_str().unwrap(),
            other.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{field}: {err}");
        assert!(err.contains(field), "{field} not named in: {err}");
        assert!(!out.exists());
    }
}

/// Every rtt sample of `report` moved by `shift_ns`, written to `to`.
fn shifted(report: &Path, shift_ns: u64, to: &Path) -> PathBuf {
    let mut r = json(report);
    let cell = &mut r["run_data"]["roles"][0]["stages"][1]["histograms"]["rtt"];
    let h = decode_histogram(cell.as_str().unwrap()).unwrap();
    let mut moved = new_histogram();
    for v in h.iter_recorded() {
        moved
            .record_n(v.value_iterated_to() + shift_ns, v.count_at_value())
            .unwrap();
    }
    *cell = encode_histogram(&moved).into();
    std::fs::write(to, serde_json::to_vec(&r).unwrap()).unwrap();
    to.to_path_buf()
}

/// A latency change under the noise floor (`--min-change`, 100 µs by
/// default) is not a regression whatever its percentage; the table ends
/// with how many regressions and improvements it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_ignores_changes_under_the_noise_floor() {
    let dir = tempfile::tempdir().unwrap();
    let base = real_report(&dir.path().join("base")).await;
    // +90 µs on every round trip: tens of percent on loopback.
    let slower = shifted(&base, 90_000, &dir.path().join("slower.json"));
    let o = run_bin(&["compare", base.to_str().unwrap(), slower.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{table}");
    assert!(!table.contains("REGRESSION"), "{table}");
    assert!(
        table.contains("0 regressions, 0 improvements (latency changes under 100µs"),
        "{table}"
    );
    // Without the floor (and with a 1% tolerance) the same change fails.
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        slower.to_str().unwrap(),
        "--min-change",
        "0s",
        "--max-regression",
        "rtt.p50=1%,rtt.p99=1%",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{table}");
    let line = table.lines().last().unwrap();
    assert!(
        line.starts_with("2 regressions") || line.starts_with("3 regressions"),
        "{table}"
    );
    // A floor of 50 µs: +90 µs counts again.
    let o = run_bin(&[
        "compare",
        base.to_str().unwrap(),
        slower.to_str().unwrap(),
        "--min-change",
        "50us",
        "--max-regression",
        "rtt.p50=1%,rtt.p99=1%",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
