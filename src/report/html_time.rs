//! The charts over time of `report.html`: messages per second (sent, every
//! message received, the open-model target); one chart per latency metric
//! with samples in the timeline, its p50, p90, p99 and max of each second
//! on a log axis; open connections; connection attempts, openings and
//! closes per second; errors per interval. Every one shades the phases
//! (alternating bands with their names) and marks pauses, rate changes and
//! an abort (vertical lines with a short label). A chart with nothing to
//! draw is left out.

use super::build::{durations_ms, second_histogram};
use super::html::{micros, rate_label};
use super::model::{Report, TimelinePoint};
use super::svg::{Axis, Band, Marker, Overlay, Series, chart};
use crate::scenario::LatencyMetric;

/// Every chart over time, in page order; none without a timeline.
pub(super) fn charts(r: &Report) -> Vec<String> {
    if r.timeline.is_empty() {
        return Vec::new();
    }
    let x = time_axis(r);
    let o = overlay(r);
    let mut out = Vec::new();
    out.extend(throughput_chart(r, &x, &o));
    out.extend(
        LatencyMetric::ALL
            .iter()
            .filter_map(|m| latency_chart(r, *m, &x, &o)),
    );
    out.push(count_chart(
        r,
        ("Open connections", "connections", "#2e86de"),
        |p| p.open as f64,
        &x,
        &o,
    ));
    out.push(connections_chart(r, &x, &o));
    out.push(count_chart(
        r,
        ("Errors per interval", "errors", "#ee5253"),
        |p| p.errors as f64,
        &x,
        &o,
    ));
    out.extend(completeness_chart(r, &x, &o));
    out
}

/// Lost, duplicate and reordered stream messages per interval, when
/// streams were tracked (`sequence:`).
fn completeness_chart(r: &Report, x: &Axis, o: &Overlay) -> Option<String> {
    if r.timeline.iter().all(|p| p.sequenced == 0) {
        return None;
    }
    let line = |name: &str, color: &'static str, f: fn(&TimelinePoint) -> u64| Series {
        name: name.into(),
        color,
        points: r.timeline.iter().map(|p| (p.t_s, f(p) as f64)).collect(),
        dashed: false,
    };
    let series = [
        line("lost", "#ee5253", |p| p.lost),
        line("duplicate", "#e67e22", |p| p.duplicate),
        line("reordered", "#8e44ad", |p| p.reordered),
    ];
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let y = Axis::linear("messages", 0.0, max, rate_label);
    Some(chart("Stream completeness per interval", &series, x, &y, o))
}

fn time_axis(r: &Report) -> Axis {
    let end = r.timeline.last().map_or(1.0, |p| p.t_s).max(1.0);
    Axis::linear("seconds since start", 0.0, end, |v| format!("{v:.0}s"))
}

/// The phases as they ran, each from its planned start to its end or the
/// stop, and the live changes (pause, resume, rate factor) and an abort.
fn overlay(r: &Report) -> Overlay {
    let mut o = Overlay::default();
    let f = &r.run_data.facts;
    if let Some(load) = f.load_started_ms {
        let durations = durations_ms(&r.scenario);
        let mut begin = load;
        for (i, p) in r.scenario.phases.iter().enumerate() {
            let ms = r.run_data.phase_ms(&durations, i);
            if ms > 0 {
                o.bands.push(Band {
                    from: begin as f64 / 1000.0,
                    to: begin.saturating_add(ms) as f64 / 1000.0,
                    label: p.name.clone(),
                });
            }
            begin = begin.saturating_add(durations[i]);
        }
    }
    let mut paused = false;
    for c in &r.rate_changes {
        let factor = format!("×{:.2}", c.factor);
        let label = if c.paused {
            "paused".to_string()
        } else if paused && c.factor == 1.0 {
            "resumed".to_string()
        } else if paused {
            format!("resumed {factor}")
        } else {
            factor
        };
        paused = c.paused;
        o.markers.push(Marker { at: c.t_s, label });
    }
    if let Some(a) = &r.aborted {
        o.markers.push(Marker {
            at: a.t_s,
            label: "aborted".to_string(),
        });
    }
    o
}

/// Seconds each timeline point covers (the first from the run start).
fn spans(r: &Report) -> Vec<f64> {
    let mut prev = 0.0;
    r.timeline
        .iter()
        .map(|p| {
            let d = (p.t_s - prev).max(1e-3);
            prev = p.t_s;
            d
        })
        .collect()
}

/// `f` of every timeline point divided by the seconds the point covers.
fn per_second(r: &Report, f: fn(&TimelinePoint) -> u64) -> Vec<(f64, f64)> {
    r.timeline
        .iter()
        .zip(spans(r))
        .map(|(p, d)| (p.t_s, f(p) as f64 / d))
        .collect()
}

/// Every message received in the point: replies and `expect` matches,
/// deliveries and unmatched messages.
fn all_received(p: &TimelinePoint) -> u64 {
    p.received
        .saturating_add(p.delivered)
        .saturating_add(p.unmatched)
}

/// Messages sent and received per second and the open-model target; none
/// when nothing was sent, received or targeted.
fn throughput_chart(r: &Report, x: &Axis, o: &Overlay) -> Option<String> {
    let sent = per_second(r, |p| p.sent);
    let recv = per_second(r, all_received);
    let target: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter_map(|p| Some((p.t_s, p.target_rate?)))
        .collect();
    let values = || sent.iter().chain(&recv).chain(&target).map(|p| p.1);
    if values().all(|v| v == 0.0) && target.is_empty() {
        return None;
    }
    let max = values().fold(1.0, f64::max);
    let y = Axis::linear("messages/s", 0.0, max, rate_label);
    let series = [
        Series {
            name: "sent".into(),
            color: "#2e86de",
            points: sent,
            dashed: false,
        },
        Series {
            name: "received".into(),
            color: "#10ac84",
            points: recv,
            dashed: false,
        },
        Series {
            name: "target".into(),
            color: "#8395a7",
            points: target,
            dashed: true,
        },
    ];
    Some(chart("Messages per second", &series, x, &y, o))
}

/// The percentiles drawn over time: name, quantile (1 for the max), colour,
/// dashed.
const PERCENTILES: [(&str, f64, &str, bool); 4] = [
    ("p50", 0.5, "#10ac84", false),
    ("p90", 0.9, "#2e86de", false),
    ("p99", 0.99, "#ee5253", false),
    ("max", 1.0, "#8395a7", true),
];

/// p50, p90, p99 and max of `m` in every second (µs) on a log axis, a
/// break in the lines where a second has no sample; none when no second
/// has one.
fn latency_chart(r: &Report, m: LatencyMetric, x: &Axis, o: &Overlay) -> Option<String> {
    let mut lines: [Vec<(f64, f64)>; 4] = Default::default();
    let mut any = false;
    for s in &r.run_data.timeline {
        let t_s = s.t_ms as f64 / 1000.0;
        let h = second_histogram(s, m);
        any |= !h.is_empty();
        for (line, (_, q, _, _)) in lines.iter_mut().zip(PERCENTILES) {
            let v = match (h.is_empty(), q >= 1.0) {
                (true, _) => f64::NAN,
                (false, true) => h.max() as f64 / 1000.0,
                (false, false) => h.value_at_quantile(q) as f64 / 1000.0,
            };
            line.push((t_s, v));
        }
    }
    if !any {
        return None;
    }
    let values = || {
        lines
            .iter()
            .flatten()
            .map(|p| p.1)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);
    let mut y = Axis::log(&format!("{}, log scale", m.name()), lo, hi, micros);
    // Seconds whose p50 is 0 (a send_lag on time) at a 0 of their own.
    if lines.iter().flatten().any(|p| p.1 <= 0.0) {
        y = y.with_zero("0");
    }
    let series: Vec<Series> = lines
        .into_iter()
        .zip(PERCENTILES)
        .map(|(points, (name, _, color, dashed))| Series {
            name: name.into(),
            color,
            points,
            dashed,
        })
        .collect();
    Some(chart(&format!("{} over time", m.name()), &series, x, &y, o))
}

/// Connection attempts, openings and closes per second: churn, a phase
/// changing the count and reconnect storms show here.
fn connections_chart(r: &Report, x: &Axis, o: &Overlay) -> String {
    let attempts = per_second(r, |p| p.attempts);
    let opened = per_second(r, |p| p.opened);
    let closed = per_second(r, |p| p.closed);
    let max = attempts
        .iter()
        .chain(&opened)
        .chain(&closed)
        .map(|p| p.1)
        .fold(1.0, f64::max);
    let y = Axis::linear("connections/s", 0.0, max, rate_label);
    let series = [
        Series {
            name: "attempts".into(),
            color: "#8395a7",
            points: attempts,
            dashed: true,
        },
        Series {
            name: "opened".into(),
            color: "#10ac84",
            points: opened,
            dashed: false,
        },
        Series {
            name: "closed".into(),
            color: "#ff9f43",
            points: closed,
            dashed: false,
        },
    ];
    chart("Connections per second", &series, x, &y, o)
}

/// One value of every timeline point as one line: `(title, axis title,
/// colour)`.
fn count_chart(
    r: &Report,
    (title, axis, color): (&str, &str, &'static str),
    f: fn(&TimelinePoint) -> f64,
    x: &Axis,
    o: &Overlay,
) -> String {
    let pts: Vec<(f64, f64)> = r.timeline.iter().map(|p| (p.t_s, f(p))).collect();
    let max = pts.iter().map(|p| p.1).fold(1.0, f64::max);
    let y = Axis::linear(axis, 0.0, max, rate_label);
    let series = [Series {
        name: axis.into(),
        color,
        points: pts,
        dashed: false,
    }];
    chart(title, &series, x, &y, o)
}

#[cfg(test)]
mod tests;
