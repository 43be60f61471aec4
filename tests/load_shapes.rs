//! Load shapes against `barrage serve`'s server on loopback: rate ramps,
//! connections per phase, churn.

mod common;

use barrage::server::{self, Mode};
use common::*;

/// A 0 → 4,000/s ramp over 6 s: every whole second of the phase sends what
/// the line says for that second, within 2%, and the report's schedule is
/// the ramp's (its mean as the target rate, both ends kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_ramp_follows_its_line_second_by_second() {
    let srv = server::start_workers("127.0.0.1:0".parse().unwrap(), Mode::Echo.into(), 1)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = format!(
        "name: ramp\ntarget: ws://{}/\nconnections: {{ count: 20, rate: 1000/s }}\n\
         phases: [ {{ name: ramp, duration: 6s, rate: 0/s..4000/s }} ]\n",
        srv.local_addr
    );
    let o = run_yaml(&yaml, &out).await;
    let r = &o.report;
    let phase = &r.phases[0];
    assert_eq!(phase.target_rate, Some(2000.0));
    assert_eq!(r.scenario.phases[0].ramp, Some([0.0, 4000.0]));
    // 12,000 due; the tester kept up.
    assert_eq!(phase.messages.not_sent, 0, "{phase:?}");
    assert!(phase.messages.sent.abs_diff(12_000) <= 20, "{phase:?}");
    let tl = &r.timeline;
    let inside: Vec<_> = (1..tl.len().saturating_sub(1))
        .filter(|&i| (i - 1..=i + 1).all(|j| tl[j].phase.as_deref() == Some("ramp")))
        .collect();
    assert!(inside.len() >= 4, "{tl:?}");
    for i in inside {
        let p = &tl[i];
        let want = p.target_rate.unwrap();
        assert!(
            (p.sent as f64 - want).abs() <= want * 0.02 + 2.0,
            "second ending {:.1}s: sent {}, the line says {want:.0}",
            p.t_s,
            p.sent
        );
    }
    srv.shutdown().await;
}
