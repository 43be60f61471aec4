//! Tests of the charts over time, on reports built by `report::build` from
//! run data made here.

use super::super::html::render;
use super::*;
use crate::metrics::{ControlChange, RunData, Second, encode_histogram, new_histogram};
use crate::report::model::{PhasePlan, ScenarioInfo};

/// A plan of `warmup` (2 s, not recorded) and `steady` (3 s).
fn plan() -> ScenarioInfo {
    let phase = |name: &str, secs: f64, record: bool| PhasePlan {
        name: name.into(),
        duration_s: secs,
        rate: Some(100.0),
        ramp: None,
        max: false,
        inflight: 1,
        record,
        connections: None,
    };
    ScenarioInfo {
        name: "charts".into(),
        file: None,
        target: "ws://127.0.0.1:9/".into(),
        connections: 20,
        connection_rate: 1000.0,
        phases: vec![phase("warmup", 2.0, false), phase("steady", 3.0, true)],
        source: None,
        thresholds: Vec::new(),
        search: None,
    }
}

/// Encoded histograms of `samples` (µs) by metric.
fn histograms(samples: &[(LatencyMetric, &[u64])]) -> crate::metrics::data::EncodedHistograms {
    samples
        .iter()
        .map(|(m, us)| {
            let mut h = new_histogram();
            for v in *us {
                h.record(v * 1000).unwrap();
            }
            (m.name().to_string(), encode_histogram(&h))
        })
        .collect()
}

/// A 6 s run (load from 1 s: warmup 1-3 s, steady 3-6 s), one second
/// each from `seconds`, built as `report::build` builds every report.
fn report(seconds: Vec<Second>, control: Vec<ControlChange>) -> Report {
    let plan = plan();
    let mut data = RunData::new(&["default".to_string()], plan.phases.len(), 0);
    data.facts.load_started_ms = Some(1000);
    data.facts.elapsed_ms = 6000;
    data.timeline = seconds;
    data.control = control;
    crate::report::build(&plan, &data)
}

fn second(t: u64, f: impl FnOnce(&mut Second)) -> Second {
    let mut s = Second {
        t_ms: t * 1000,
        interval_ms: 1000,
        phase: match t {
            2..=3 => Some(0),
            4..=6 => Some(1),
            _ => None,
        },
        open: 20,
        peak_open: 20,
        ..Second::default()
    };
    f(&mut s);
    s
}

/// The chart titled `title` in `html`: from its `<svg` to its end.
fn chart<'a>(html: &'a str, title: &str) -> Option<&'a str> {
    html.split("<svg")
        .find(|c| c.contains(&format!(r#"class="title">{title}</text>"#)))
        .map(|c| c.split("</svg>").next().unwrap())
}

/// The y of each point of every polyline of `color` in `chart`.
fn ys(chart: &str, color: &str) -> Vec<Vec<f64>> {
    chart
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(&format!("stroke=\"{color}\"")))
        .map(|l| {
            l.split("points=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"/>")
                .split(' ')
                .map(|xy| xy.split(',').nth(1).unwrap().parse().unwrap())
                .collect()
        })
        .collect()
}

/// Every chart of the page draws something.
fn assert_no_empty_chart(html: &str) {
    for svg in html.split("<svg").skip(1) {
        assert!(
            svg.contains("<polyline") || svg.contains("<circle"),
            "empty chart: {svg}"
        );
    }
}

/// Bottom of the plot area in SVG coordinates (y grows downwards).
const BOTTOM: f64 = 236.0;

/// ticker-push: connections open in the first second, each sends one
/// subscribe answered by an `expect` match, then only deliveries arrive.
fn delivery_only() -> Report {
    let seconds = (1..=6)
        .map(|t| {
            second(t, |s| {
                if t == 1 {
                    s.recorded.attempted = 20;
                    s.recorded.opened = 20;
                    s.recorded.sent = 20;
                    s.recorded.received = 20;
                    s.histograms = histograms(&[
                        (LatencyMetric::Connect, &[90, 120, 300]),
                        (LatencyMetric::Handshake, &[400, 500]),
                    ]);
                } else {
                    let c = if t <= 3 {
                        &mut s.unrecorded
                    } else {
                        &mut s.recorded
                    };
                    c.delivered = 200;
                    let h = histograms(&[(LatencyMetric::Delivery, &[150, 200, 900, 4_000])]);
                    if t <= 3 {
                        s.unrecorded_histograms = h;
                    } else {
                        s.histograms = h;
                    }
                }
            })
        })
        .collect();
    report(seconds, Vec::new())
}

#[test]
fn a_delivery_only_run_has_a_delivery_chart_and_a_received_line() {
    let r = delivery_only();
    assert_eq!(r.timeline[4].received, 0);
    assert_eq!(r.timeline[4].delivered, 200);
    let html = render(&r);
    assert_no_empty_chart(&html);
    let delivery = chart(&html, "delivery over time").expect("a delivery chart");
    assert!(delivery.contains("delivery, log scale"), "{delivery}");
    // Warm-up seconds (unrecorded) are drawn too: 5 seconds of p50.
    assert_eq!(ys(delivery, "#10ac84")[0].len(), 5, "{delivery}");
    // Connections opened in the first second: a dot each.
    let connect = chart(&html, "connect over time").expect("a connect chart");
    assert_eq!(connect.matches("<circle").count(), 4, "{connect}");
    assert!(chart(&html, "handshake over time").is_some());
    for m in ["rtt", "service", "tls", "send_lag", "ping"] {
        assert!(
            chart(&html, &format!("{m} over time")).is_none(),
            "{m} has no sample but a chart"
        );
    }
    // Received counts the deliveries: 200/s from the second second on,
    // the 20 expect matches in the first.
    let messages = chart(&html, "Messages per second").unwrap();
    let received = &ys(messages, "#10ac84")[0];
    assert_eq!(received.len(), 6);
    assert!(received.iter().all(|y| *y < BOTTOM), "{received:?}");
    assert!(received[1] < received[0], "{received:?}");
}

#[test]
fn no_chart_for_a_metric_without_samples() {
    // p50 100µs, p90 1ms, p99 and max 40ms.
    let rtt: Vec<u64> = [(50, 100), (45, 1_000), (5, 40_000)]
        .iter()
        .flat_map(|(n, us)| std::iter::repeat_n(*us, *n))
        .collect();
    let seconds = (1..=6)
        .map(|t| {
            second(t, |s| {
                s.recorded.sent = 100;
                s.recorded.received = 100;
                s.recorded.replies = 100;
                // `service` is there but empty; `rtt` has samples
                // except in second 4.
                let rtt: &[u64] = if t == 4 { &[] } else { &rtt };
                s.histograms =
                    histograms(&[(LatencyMetric::Rtt, rtt), (LatencyMetric::Service, &[])]);
            })
        })
        .collect();
    let html = render(&report(seconds, Vec::new()));
    assert_no_empty_chart(&html);
    assert_eq!(html.matches(" over time</text>").count(), 1, "{html}");
    let rtt = chart(&html, "rtt over time").expect("an rtt chart");
    assert!(chart(&html, "service over time").is_none());
    // The second without samples breaks every line in two.
    for color in ["#10ac84", "#2e86de", "#ee5253", "#8395a7"] {
        let lines = ys(rtt, color);
        assert_eq!(lines.len(), 2, "{color}: {rtt}");
        assert_eq!(lines[0].len() + lines[1].len(), 5);
    }
    // The log axis: 1-2-5 ticks from 100µs to 50ms, p50 (100µs) at the
    // bottom, max (40ms) near the top.
    for label in [">100µs<", ">200µs<", ">1ms<", ">10ms<", ">50ms<"] {
        assert!(rtt.contains(label), "no {label} in {rtt}");
    }
    let p50 = ys(rtt, "#10ac84").concat();
    assert!(p50.iter().all(|y| *y > BOTTOM - 2.0), "{p50:?}");
    let max = ys(rtt, "#8395a7").concat();
    assert!(max.iter().all(|y| *y < 34.0 + 10.0), "{max:?}");
    // p90 (1ms) sits well between them, not squashed onto the bottom as
    // on a linear axis (where 1 of 50 ms is 2% of the height).
    let p90 = ys(rtt, "#2e86de").concat();
    assert!(
        p90.iter().all(|y| *y < BOTTOM - 60.0 && *y > 34.0 + 60.0),
        "{p90:?}"
    );
}

#[test]
fn phases_are_shaded_and_rate_changes_marked_on_every_chart() {
    let seconds = (1..=6)
        .map(|t| {
            second(t, |s| {
                s.recorded.sent = 100;
                s.recorded.received = 100;
                s.recorded.attempted = u64::from(t == 1) * 20;
                s.recorded.errors[0] = u64::from(t == 5);
                s.histograms = histograms(&[(LatencyMetric::Rtt, &[300, 400])]);
            })
        })
        .collect();
    let control = vec![
        ControlChange {
            at_ms: 3500,
            factor: 1.1,
            paused: false,
        },
        ControlChange {
            at_ms: 4200,
            factor: 1.1,
            paused: true,
        },
        ControlChange {
            at_ms: 4800,
            factor: 1.0,
            paused: false,
        },
    ];
    let html = render(&report(seconds, control));
    assert_no_empty_chart(&html);
    let titles = [
        "Messages per second",
        "rtt over time",
        "Open connections",
        "Connections per second",
        "Errors per interval",
    ];
    for title in titles {
        let c = chart(&html, title).unwrap_or_else(|| panic!("no {title}"));
        assert_eq!(c.matches(r#"class="band""#).count(), 2, "{title}: {c}");
        for phase in ["warmup", "steady"] {
            assert!(
                c.contains(&format!(r#"class="band-label">{phase}</text>"#)),
                "{title}: no {phase} band in {c}"
            );
        }
        assert_eq!(c.matches(r#"class="marker""#).count(), 3, "{title}: {c}");
        for label in [">×1.10</text>", ">paused</text>", ">resumed</text>"] {
            assert!(c.contains(label), "{title}: no {label} in {c}");
        }
    }
    assert_eq!(html.matches(r#"class="band""#).count(), 2 * titles.len());
}

#[test]
fn an_idle_timeline_has_no_message_chart() {
    let seconds = (1..=3).map(|t| second(t, |_| {})).collect();
    let html = render(&report(seconds, Vec::new()));
    assert_no_empty_chart(&html);
    // The target rate of the open-model phases is still a line.
    assert!(chart(&html, "Messages per second").is_some());
    let mut plan = plan();
    for p in &mut plan.phases {
        p.rate = None;
        p.max = true;
    }
    let mut data = RunData::new(&["default".to_string()], 2, 0);
    data.timeline = (1..=3).map(|t| second(t, |_| {})).collect();
    let html = render(&crate::report::build(&plan, &data));
    assert!(chart(&html, "Messages per second").is_none(), "{html}");
    assert!(chart(&html, "Open connections").is_some());
}

fn point(t_s: f64, attempts: u64, opened: u64, closed: u64) -> TimelinePoint {
    TimelinePoint {
        t_s,
        phase: None,
        open: 10,
        attempts,
        opened,
        closed,
        sent: 0,
        received: 0,
        delivered: 0,
        unmatched: 0,
        sequenced: 0,
        lost: 0,
        duplicate: 0,
        reordered: 0,
        errors: 0,
        rtt_p50_us: 0.0,
        rtt_p99_us: 0.0,
        target_rate: None,
    }
}

#[test]
fn connections_chart_has_attempts_opened_and_closed_per_second() {
    let mut r = report(Vec::new(), Vec::new());
    r.timeline = vec![
        point(1.0, 12, 10, 0),
        point(2.0, 5, 4, 3),
        point(3.0, 7, 6, 6),
    ];
    let html = render(&r);
    let chart = chart(&html, "Connections per second").expect("the chart");
    for series in ["attempts", "opened", "closed"] {
        assert!(
            chart.contains(&format!(r#"class="legend">{series}</text>"#)),
            "no {series} legend in {chart}"
        );
    }
    assert_eq!(chart.matches("<polyline").count(), 3, "{chart}");
    // The y axis reaches the largest rate (12 attempts in the first second).
    assert!(chart.contains(">12.5</text>"), "{chart}");
    // Closed: 0, 3, 6 per second, one point a second, rising from the
    // bottom of the chart (SVG y grows downwards).
    let closed = ys(chart, "#ff9f43").concat();
    assert_eq!(closed.len(), 3, "{chart}");
    assert!(closed[0] > closed[1] && closed[1] > closed[2], "{closed:?}");
    let opened = ys(chart, "#10ac84").concat();
    assert!(closed[0] > opened[0], "closed 0 is below opened 10");
    assert_eq!(closed[2], opened[2], "6 closed and 6 opened at 3s");
}

#[test]
fn a_latency_of_zero_is_drawn_at_a_zero_of_the_log_axis() {
    let seconds = (1..=3)
        .map(|t| {
            second(t, |s| {
                s.histograms = histograms(&[(LatencyMetric::SendLag, &[0, 0, 0, 0, 800])]);
            })
        })
        .collect();
    let html = render(&report(seconds, Vec::new()));
    let lag = chart(&html, "send_lag over time").expect("a send_lag chart");
    assert!(lag.contains(r#"text-anchor="end">0</text>"#), "{lag}");
    assert!(lag.contains(r#"text-anchor="end">1ms</text>"#), "{lag}");
    let p50 = ys(lag, "#10ac84").concat();
    assert_eq!(p50, [BOTTOM; 3], "{lag}");
    // The max (800µs) is above the 0, not on it.
    let max = ys(lag, "#8395a7").concat();
    assert!(max.iter().all(|y| *y < BOTTOM - 50.0), "{max:?}");
}

#[test]
fn an_abort_is_marked() {
    let seconds = (1..=6).map(|t| second(t, |_| {})).collect();
    let mut r = report(seconds, Vec::new());
    r.aborted = Some(crate::report::model::Aborted {
        threshold: "rtt.p99 < 1ms".into(),
        t_s: 4.5,
    });
    let html = render(&r);
    let open = chart(&html, "Open connections").unwrap();
    assert_eq!(open.matches(r#"class="marker""#).count(), 1, "{open}");
    assert!(open.contains(">aborted</text>"), "{open}");
}

#[test]
fn completeness_is_charted_only_when_streams_were_tracked() {
    let mut r = report(Vec::new(), Vec::new());
    r.timeline = vec![point(1.0, 0, 0, 0), point(2.0, 0, 0, 0)];
    assert!(chart(&render(&r), "Stream completeness per interval").is_none());
    r.timeline[0].sequenced = 500;
    r.timeline[1].sequenced = 500;
    r.timeline[1].lost = 3;
    let html = render(&r);
    let svg = chart(&html, "Stream completeness per interval").expect("charted");
    for name in ["lost", "duplicate", "reordered"] {
        assert!(svg.contains(name), "{svg}");
    }
}
