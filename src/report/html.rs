//! `report.html`: one self-contained page (inline CSS and SVG, no scripts,
//! no network) with the verdict, thresholds, throughput and latency over
//! time, the percentile distribution of every latency metric, connections
//! (open, and attempted, opened and closed per second) and errors over
//! time, the scenario, and a capacity search's answer and steps
//! (`search_chart`).

use hdrhistogram::Histogram;

use super::model::{Report, TimelinePoint, Verdict};
use super::svg::{Axis, Series, line_chart};
use super::table::{tables, verdict_line};
use crate::metrics::decode_histogram;
use crate::scenario::LatencyMetric;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 0; background: #f4f6f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.verdict { display: inline-block; padding: 3px 12px; border-radius: 12px; font-weight: 600; color: white; }
.pass { background: #1f8a4c; } .fail { background: #c0392b; }
.sub { color: #5b6475; margin-bottom: 18px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.card { background: white; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 12px 14px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e9ef; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { color: #5b6475; font-weight: 600; }
svg.chart { width: 100%; height: auto; }
svg .title { font: 600 13px system-ui, sans-serif; fill: #1d2330; }
svg .tick, svg .legend { font: 11px system-ui, sans-serif; fill: #5b6475; }
svg .axis { font: 11px system-ui, sans-serif; fill: #5b6475; }
svg .grid { stroke: #e6e9ef; stroke-width: 1; }
pre { background: #1d2330; color: #e8ecf3; padding: 12px; border-radius: 8px; overflow-x: auto; }
.fail-text { color: #c0392b; font-weight: 600; } .pass-text { color: #1f8a4c; font-weight: 600; }
.warn-text { color: #d35400; font-weight: 600; }
"#;

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn time_axis(r: &Report) -> Axis {
    let end = r.timeline.last().map_or(1.0, |p| p.t_s).max(1.0);
    Axis::linear("seconds since start", 0.0, end, |v| format!("{v:.0}s"))
}

/// A number with at most three decimals and no trailing zeros.
pub(super) fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

pub(super) fn rate_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", num(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", num(v / 1e3))
    } else {
        num(v)
    }
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

fn throughput_chart(r: &Report) -> String {
    let sent = per_second(r, |p| p.sent);
    let recv = per_second(r, |p| p.received);
    let target: Vec<(f64, f64)> = r
        .timeline
        .iter()
        .filter_map(|p| Some((p.t_s, p.target_rate?)))
        .collect();
    let max = sent
        .iter()
        .chain(&recv)
        .chain(&target)
        .map(|p| p.1)
        .fold(1.0, f64::max);
    let y = Axis::linear("messages/s", 0.0, max, rate_label);
    line_chart(
        "Messages per second",
        &[
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
        ],
        &time_axis(r),
        &y,
    )
}

fn latency_over_time(r: &Report) -> String {
    let mut p50 = Vec::new();
    let mut p90 = Vec::new();
    let mut p99 = Vec::new();
    let mut max = Vec::new();
    for p in &r.run_data.timeline {
        let Some(h) = p
            .histograms
            .get("rtt")
            .or_else(|| p.unrecorded_histograms.get("rtt"))
            .and_then(|b| decode_histogram(b).ok())
        else {
            continue;
        };
        let t_s = p.t_ms as f64 / 1000.0;
        let ms = |ns: u64| ns as f64 / 1e6;
        p50.push((t_s, ms(h.value_at_quantile(0.5))));
        p90.push((t_s, ms(h.value_at_quantile(0.9))));
        p99.push((t_s, ms(h.value_at_quantile(0.99))));
        max.push((t_s, ms(h.max())));
    }
    let top = max.iter().map(|p| p.1).fold(0.001, f64::max);
    let y = Axis::linear("rtt, ms", 0.0, top, num);
    line_chart(
        "rtt over time",
        &[
            Series {
                name: "p50".into(),
                color: "#10ac84",
                points: p50,
                dashed: false,
            },
            Series {
                name: "p90".into(),
                color: "#2e86de",
                points: p90,
                dashed: false,
            },
            Series {
                name: "p99".into(),
                color: "#ee5253",
                points: p99,
                dashed: false,
            },
            Series {
                name: "max".into(),
                color: "#8395a7",
                points: max,
                dashed: true,
            },
        ],
        &time_axis(r),
        &y,
    )
}

/// Connection attempts, openings and closes per second: churn, a phase
/// changing the count and reconnect storms show here.
fn connections_chart(r: &Report) -> String {
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
    line_chart(
        "Connections per second",
        &[
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
        ],
        &time_axis(r),
        &y,
    )
}

/// Position of quantile `q` on the HdrHistogram percentile axis:
/// log10(1 / (1 - q)), so 90% is 1, 99% is 2, 99.9% is 3.
fn nines(q: f64) -> f64 {
    (1.0 / (1.0 - q.min(0.999_999))).log10()
}

fn distribution(name: &str, h: &Histogram<u64>) -> String {
    let mut pts = Vec::new();
    for v in h.iter_quantiles(4) {
        let q = v.quantile_iterated_to();
        if q > 0.99999 {
            break;
        }
        pts.push((nines(q), v.value_iterated_to() as f64 / 1e6));
    }
    pts.push((nines(0.99999), h.value_at_quantile(0.99999) as f64 / 1e6));
    let top = pts.iter().map(|p| p.1).fold(0.001, f64::max);
    let x = Axis {
        title: "percentile".into(),
        min: 0.0,
        max: 5.0,
        ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
    };
    let y = Axis::linear(&format!("{name}, ms"), 0.0, top, num);
    line_chart(
        &format!("{name}: latency by percentile ({} samples)", h.len()),
        &[Series {
            name: name.into(),
            color: "#5f27cd",
            points: pts,
            dashed: false,
        }],
        &x,
        &y,
    )
}

fn count_chart(
    r: &Report,
    title: &str,
    axis: &str,
    color: &'static str,
    f: fn(&TimelinePoint) -> f64,
) -> String {
    let pts: Vec<(f64, f64)> = r.timeline.iter().map(|p| (p.t_s, f(p))).collect();
    let max = pts.iter().map(|p| p.1).fold(1.0, f64::max);
    let y = Axis::linear(axis, 0.0, max, rate_label);
    line_chart(
        title,
        &[Series {
            name: axis.into(),
            color,
            points: pts,
            dashed: false,
        }],
        &time_axis(r),
        &y,
    )
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut body = String::new();
    let (class, word) = match r.verdict {
        Verdict::Pass => ("pass", "PASS"),
        Verdict::Fail => ("fail", "FAIL"),
        Verdict::Error => ("fail", "ERROR"),
    };
    body.push_str(&format!(
        "<h1>barrage · {} <span class=\"verdict {class}\">{word}</span></h1>\n<div class=\"sub\">{}<br>started {} · barrage {}</div>\n",
        esc(&r.scenario.name),
        esc(&verdict_line(r)),
        esc(&r.started_at),
        esc(&r.barrage_version)
    ));
    if !r.thresholds.is_empty() {
        body.push_str("<h2>Thresholds</h2><div class=\"card\"><table><tr><th>threshold</th><th>observed</th><th>result</th></tr>\n");
        for t in &r.thresholds {
            let (c, w) = if t.pass {
                ("pass-text", "pass")
            } else {
                ("fail-text", "FAIL")
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{c}\">{w}</td></tr>\n",
                esc(&t.expr),
                esc(&t.observed_text)
            ));
        }
        body.push_str("</table></div>\n");
    }
    body.push_str(&super::search_chart::section(r));
    body.push_str("<h2>Over time</h2><div class=\"grid2\">\n");
    let mut charts = vec![
        throughput_chart(r),
        latency_over_time(r),
        count_chart(r, "Open connections", "connections", "#2e86de", |p| {
            p.open as f64
        }),
    ];
    // Next to the open connections; only when there is a timeline.
    if !r.timeline.is_empty() {
        charts.push(connections_chart(r));
    }
    charts.push(count_chart(
        r,
        "Errors per interval",
        "errors",
        "#ee5253",
        |p| p.errors as f64,
    ));
    for chart in charts {
        body.push_str(&format!("<div class=\"card\">{chart}</div>\n"));
    }
    body.push_str("</div>\n<h2>Latency distribution</h2><div class=\"grid2\">\n");
    for m in LatencyMetric::ALL {
        let Some(h) = r
            .metrics
            .get(m.name())
            .and_then(|s| decode_histogram(&s.histogram).ok())
        else {
            continue;
        };
        if h.is_empty() {
            continue;
        }
        body.push_str(&format!(
            "<div class=\"card\">{}</div>\n",
            distribution(m.name(), &h)
        ));
    }
    body.push_str("</div>\n<h2>Numbers</h2><div>\n");
    for t in tables(r) {
        // Both are shown above, with their results coloured.
        if t.title == "Thresholds" || t.title == "Capacity search" {
            continue;
        }
        body.push_str(&format!(
            "<div class=\"card\" style=\"margin-bottom:16px\">{}</div>\n",
            t.to_html()
        ));
    }
    body.push_str("</div>\n<h2>Scenario</h2>\n");
    let mut plan = format!(
        "target {}\nconnections {} opened at {}/s\n",
        r.scenario.target, r.scenario.connections, r.scenario.connection_rate
    );
    for p in &r.scenario.phases {
        plan.push_str(&format!(
            "phase {:<12} {:>6.1}s  rate {}{}\n",
            p.name,
            p.duration_s,
            p.rate
                .map_or(format!("max, {} in flight", p.inflight), |v| format!(
                    "{v}/s"
                )),
            if p.record { "" } else { "  (not recorded)" }
        ));
    }
    body.push_str(&format!("<pre>{}</pre>\n", esc(&plan)));
    if let Some(src) = &r.scenario.source {
        body.push_str(&format!("<pre>{}</pre>\n", esc(src)));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>barrage · {}</title>\n<style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        esc(&r.scenario.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RunData;
    use crate::report::model::ScenarioInfo;

    fn report(timeline: Vec<TimelinePoint>) -> Report {
        let plan = ScenarioInfo {
            name: "churn".into(),
            file: None,
            target: "ws://127.0.0.1:9/".into(),
            connections: 10,
            connection_rate: 10.0,
            phases: Vec::new(),
            source: None,
            thresholds: Vec::new(),
            search: None,
        };
        let mut r = crate::report::build(&plan, &RunData::default());
        r.timeline = timeline;
        r
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
            errors: 0,
            rtt_p50_us: 0.0,
            rtt_p99_us: 0.0,
            target_rate: None,
        }
    }

    #[test]
    fn connections_chart_has_attempts_opened_and_closed_per_second() {
        let html = render(&report(vec![
            point(1.0, 12, 10, 0),
            point(2.0, 5, 4, 3),
            point(3.0, 7, 6, 6),
        ]));
        assert!(html.contains("Connections per second"), "{html}");
        let chart = html
            .split("<svg")
            .find(|c| c.contains("Connections per second"))
            .unwrap();
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
        let ys = |color: &str| -> Vec<f64> {
            let line = chart
                .lines()
                .find(|l| l.starts_with("<polyline") && l.contains(color))
                .unwrap();
            let pts = line.split("points=\"").nth(1).unwrap();
            pts.trim_end_matches("\"/>")
                .split(' ')
                .map(|xy| xy.split(',').nth(1).unwrap().parse().unwrap())
                .collect()
        };
        let closed = ys("#ff9f43");
        assert_eq!(closed.len(), 3, "{chart}");
        assert!(closed[0] > closed[1] && closed[1] > closed[2], "{closed:?}");
        let opened = ys("#10ac84");
        assert!(closed[0] > opened[0], "closed 0 is below opened 10");
        assert_eq!(closed[2], opened[2], "6 closed and 6 opened at 3s");
    }

    #[test]
    fn connections_chart_is_left_out_without_a_timeline() {
        let html = render(&report(Vec::new()));
        assert!(!html.contains("Connections per second"));
        assert!(html.contains("Open connections"));
    }
}
