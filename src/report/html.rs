//! `report.html`: one self-contained page (inline CSS and SVG, no scripts,
//! no network) with the verdict, thresholds, a capacity search's answer and
//! steps (`search_chart`), the charts over time (`html_time`: throughput,
//! every latency metric, connections and errors, with the phases and live
//! rate changes marked), the percentile distribution of every latency
//! metric on log axes, the numbers and the scenario.

use hdrhistogram::Histogram;

use super::model::{Report, Verdict};
use super::svg::{Axis, Series, line_chart};
use super::table::{Detail, tables, verdict_line};
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
svg .band-label { font: 10px system-ui, sans-serif; fill: #5b6475; }
svg .marker-label { font: 600 10px system-ui, sans-serif; }
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

/// A latency in µs with the unit that reads best: `500ns`, `100µs`,
/// `2.5ms`, `1s`.
pub(super) fn micros(us: f64) -> String {
    // Slack so that 1000 computed as 10^3 reads 1ms, not 1000µs.
    let at_least = |v: f64| us >= v * (1.0 - 1e-9);
    if us == 0.0 {
        "0".to_string()
    } else if at_least(1e6) {
        format!("{}s", num(us / 1e6))
    } else if at_least(1e3) {
        format!("{}ms", num(us / 1e3))
    } else if at_least(1.0) {
        format!("{}µs", num(us))
    } else {
        format!("{}ns", num(us * 1e3))
    }
}

/// A rate with `k` and `M` for thousands and millions.
pub(super) fn rate_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", num(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", num(v / 1e3))
    } else {
        num(v)
    }
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
        pts.push((nines(q), v.value_iterated_to() as f64 / 1e3));
    }
    pts.push((nines(0.99999), h.value_at_quantile(0.99999) as f64 / 1e3));
    let positive = || pts.iter().map(|p| p.1).filter(|v| *v > 0.0);
    let lo = positive().fold(f64::INFINITY, f64::min);
    let hi = positive().fold(0.0, f64::max);
    let x = Axis {
        title: "percentile".into(),
        min: 0.0,
        max: 5.0,
        ticks: ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
        log: false,
        zero: false,
    };
    let mut y = Axis::log(&format!("{name}, log scale"), lo, hi, micros);
    // Samples of 0 (a send_lag on time) at a 0 of their own.
    if pts.iter().any(|p| p.1 <= 0.0) {
        y = y.with_zero("0");
    }
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
    body.push_str("<h2>Over time</h2>\n");
    let charts = super::html_time::charts(r);
    if charts.is_empty() {
        body.push_str("<div class=\"sub\">No second of the run was recorded.</div>\n");
    } else {
        body.push_str("<div class=\"grid2\">\n");
        for chart in charts {
            body.push_str(&format!("<div class=\"card\">{chart}</div>\n"));
        }
        body.push_str("</div>\n");
    }
    body.push_str("<h2>Latency distribution</h2>\n");
    let distributions: Vec<String> = LatencyMetric::ALL
        .iter()
        .filter_map(|m| {
            let h = r
                .metrics
                .get(m.name())
                .and_then(|s| decode_histogram(&s.histogram).ok())?;
            (!h.is_empty()).then(|| distribution(m.name(), &h))
        })
        .collect();
    if distributions.is_empty() {
        body.push_str("<div class=\"sub\">No latency was measured.</div>\n");
    } else {
        body.push_str("<div class=\"grid2\">\n");
        for chart in distributions {
            body.push_str(&format!("<div class=\"card\">{chart}</div>\n"));
        }
        body.push_str("</div>\n");
    }
    body.push_str("<h2>Numbers</h2><div>\n");
    for t in tables(r, Detail::All) {
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

    #[test]
    fn without_a_timeline_no_chart_is_drawn() {
        let plan = ScenarioInfo {
            name: "nothing".into(),
            file: None,
            target: "ws://127.0.0.1:9/".into(),
            connections: 10,
            connection_rate: 10.0,
            phases: Vec::new(),
            source: None,
            thresholds: Vec::new(),
            search: None,
        };
        let html = render(&crate::report::build(&plan, &RunData::default()));
        assert!(!html.contains("<svg"), "{html}");
        assert!(html.contains("<h2>Over time</h2>"));
        assert!(html.contains("No second of the run was recorded."));
        assert!(html.contains("No latency was measured."));
    }

    #[test]
    fn micros_reads_with_the_best_unit() {
        for (us, text) in [
            (0.0, "0"),
            (0.001, "1ns"),
            (0.5, "500ns"),
            (1.0, "1µs"),
            (200.0, "200µs"),
            (1000.0, "1ms"),
            (999.999_999_999, "1ms"),
            (2500.0, "2.5ms"),
            (50_000.0, "50ms"),
            (1e6, "1s"),
            (2e7, "20s"),
        ] {
            assert_eq!(micros(us), text, "{us}");
        }
    }

    #[test]
    fn distribution_is_on_a_log_axis() {
        let mut h = crate::metrics::new_histogram();
        for us in [120u64, 150, 200, 300, 900, 4_000, 35_000] {
            h.record(us * 1000).unwrap();
        }
        let svg = distribution("rtt", &h);
        assert!(svg.contains("rtt, log scale"), "{svg}");
        for label in [">100µs<", ">1ms<", ">10ms<", ">50ms<"] {
            assert!(svg.contains(label), "no {label} in {svg}");
        }
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
    }
}
