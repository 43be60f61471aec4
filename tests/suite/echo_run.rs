//! Whole runs in-process against the built-in echo server.

use crate::common;

use common::run_yaml;

use barrage::report::Verdict;
use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

fn decode(b64: &str) -> Histogram<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Deserializer::new().deserialize(&mut &bytes[..]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_echo_counts_match_and_histograms_round_trip() {
    let yaml = r#"
name: echo-test
target: builtin
connections: { count: 20, rate: 2000/s, timeout: 2s }
phases:
  - { name: warmup, duration: 500ms, rate: 400/s, record: false }
  - { name: steady, duration: 2s, rate: 1000/s }
message: { text: '{"conn":{{conn}},"seq":{{seq}},"pad":"{{random 32}}"}' }
thresholds: [ "rtt.p99 < 10s" ]
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, dir.path()).await;
    assert_eq!(o.exit_code(), 0);
    let r = &o.report;
    assert_eq!(r.verdict, Verdict::Pass);
    let t = &r.totals;
    assert_eq!(t.connections.attempted, 20);
    assert_eq!(t.connections.opened, 20);
    assert_eq!(t.connections.peak_open, 20);
    assert!(t.errors.values().all(|&e| e == 0), "{:?}", t.errors);
    // Totals cover the recorded phase only.
    let steady = &r.phases[1];
    assert_eq!(t.messages.sent, steady.messages.sent);
    assert_eq!(t.messages.sent, t.messages.received);
    assert_eq!(t.bytes.sent, t.bytes.received);
    assert_eq!(r.phases[0].messages.sent, r.phases[0].messages.received);
    // The open model keeps its schedule: 2 s at 1000/s, 500 ms at 400/s.
    let within = |got: u64, want: f64| (got as f64 - want).abs() <= want * 0.02;
    assert!(
        within(steady.messages.sent, 2000.0),
        "steady sent {}",
        steady.messages.sent
    );
    assert!(
        within(r.phases[0].messages.sent, 200.0),
        "warmup sent {}",
        r.phases[0].messages.sent
    );
    // One latency sample per reply, one connect/handshake per connection.
    assert_eq!(r.metrics["rtt"].count, t.messages.received);
    assert_eq!(r.metrics["service"].count, t.messages.received);
    assert_eq!(r.metrics["connect"].count, t.connections.opened);
    assert_eq!(r.metrics["handshake"].count, t.connections.opened);
    // rtt counts from the schedule, service from the write: rtt >= service.
    assert!(r.metrics["rtt"].p50_us >= r.metrics["service"].p50_us);
    // The timeline adds up to the per-phase counts.
    let timeline_sent: u64 = r.timeline.iter().map(|p| p.sent).sum();
    assert_eq!(
        timeline_sent,
        r.phases.iter().map(|p| p.messages.sent).sum::<u64>()
    );

    // report.json on disk: schema, and histograms that decode to the same numbers.
    let json = common::read_report(dir.path());
    assert_eq!(json["schema"], "barrage/report/v2");
    for name in ["rtt", "service", "connect", "handshake"] {
        let m = &json["metrics"][name];
        let b64 = m["histogram"].as_str().unwrap();
        assert!(b64.starts_with("HISTF"), "{name}: {}", &b64[..10]);
        let h = decode(b64);
        assert_eq!(h.len(), m["count"].as_u64().unwrap(), "{name}");
        for (q, field) in [(0.5, "p50_us"), (0.99, "p99_us"), (0.999, "p999_us")] {
            let want = m[field].as_f64().unwrap();
            assert_eq!(
                h.value_at_quantile(q) as f64 / 1000.0,
                want,
                "{name} {field}"
            );
        }
        assert_eq!(h.max() as f64 / 1000.0, m["max_us"].as_f64().unwrap());
    }
    assert!(dir.path().join("summary.md").exists());
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("| rtt.p99 < 10s |"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_keeps_inflight_and_gets_every_reply() {
    let yaml = r#"
name: closed-test
target: builtin
connections: { count: 10, rate: 1000/s, timeout: 2s }
phases:
  - { name: flood, duration: 1s, rate: max, inflight: 4 }
message: { binary: { size: 256 } }
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, dir.path()).await;
    let r = &o.report;
    assert_eq!(o.exit_code(), 0);
    assert!(
        r.totals.messages.sent > 1000,
        "sent {}",
        r.totals.messages.sent
    );
    assert_eq!(r.totals.messages.sent, r.totals.messages.received);
    assert_eq!(r.totals.bytes.received, 256 * r.totals.messages.received);
    assert_eq!(r.phases[0].target_rate, None);
    // The closed model has no schedule, so no send lag is recorded.
    assert_eq!(r.metrics["send_lag"].count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_open_model_is_flagged_saturated() {
    // Far more than two connections can send: the tester must say so rather
    // than quietly send less.
    let yaml = r#"
name: saturation-test
target: builtin
connections: { count: 2, rate: 1000/s }
phases:
  - { name: flood, duration: 1s, rate: 5000000/s }
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, dir.path()).await;
    let r = &o.report;
    assert!(r.phases[0].achieved_rate < 5_000_000.0 * 0.99);
    // What it could not send is counted: sent + not sent = the schedule.
    let scheduled = r.phases[0].messages.sent + r.phases[0].messages.not_sent;
    assert!(
        (scheduled as f64 - 5_000_000.0).abs() < 5_000_000.0 * 0.01,
        "{scheduled}"
    );
    assert!(r.phases[0].saturated);
    assert!(r.saturated);
    let summary = barrage::ui::summary::render(r, barrage::report::table::Detail::All);
    assert!(summary.contains("flood (SATURATED)"), "{summary}");
    assert!(
        summary.contains("WARNING: the tester fell behind"),
        "{summary}"
    );
}
