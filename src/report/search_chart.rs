//! The "Capacity search" section of `report.html`: the answer, latency and
//! achieved rate against the offered rate of every step (where the knee
//! shows), and the steps in the order taken.

use std::fmt::Write;

use super::html::{esc, num, rate_label};
use super::model::Report;
use super::search::{SearchReport, StepResult, Vary, thousands, tried};
use super::svg::{Axis, Series, line_chart};

/// Marker colour of a step that broke an SLO.
const FAIL: &str = "#c0392b";
/// Marker colour of a step where barrage fell behind.
const TESTER_BOUND: &str = "#e67e22";

const P50: &str = "#10ac84";
const P99: &str = "#ee5253";
const ACHIEVED: &str = "#2e86de";
const OFFERED: &str = "#8395a7";

/// How a step came out, for its marker and its result cell.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Pass,
    Fail,
    TesterBound,
}

impl Outcome {
    fn of(s: &StepResult) -> Outcome {
        if s.tester_bound {
            Outcome::TesterBound
        } else if s.pass {
            Outcome::Pass
        } else {
            Outcome::Fail
        }
    }

    /// The CSS class and the word of the result cell.
    fn cell(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Pass => ("pass-text", "pass"),
            Outcome::Fail => ("fail-text", "FAIL"),
            Outcome::TesterBound => ("warn-text", "TESTER-BOUND"),
        }
    }
}

/// The section, empty when the report has no search.
pub fn section(r: &Report) -> String {
    let Some(s) = &r.search else {
        return String::new();
    };
    let class = match (s.capacity, s.tester_bound) {
        (Some(_), false) => "pass-text",
        (_, true) => "warn-text",
        (None, false) => "fail-text",
    };
    let mut out = format!(
        "<h2>Capacity search</h2>\n<div class=\"card\" style=\"margin-bottom:16px\"><div class=\"{class}\">{}</div><div class=\"sub\" style=\"margin:4px 0 0\">SLOs {} · from {} to {} · precision {}%</div></div>\n",
        esc(&s.answer),
        esc(&s.plan.slos.join(", ")),
        s.plan.vary.show(s.plan.from),
        s.plan.vary.show(s.plan.to),
        num(s.plan.precision * 100.0)
    );
    if !s.steps.is_empty() {
        out.push_str("<div class=\"grid2\">\n");
        for chart in [knee_chart(r, s), rate_chart(s)] {
            let _ = writeln!(out, "<div class=\"card\">{chart}</div>");
        }
        out.push_str("</div>\n");
        out.push_str(&marker_key(s));
    }
    out.push_str(&steps_table(s));
    out
}

/// The steps sorted by the value they tried, as the charts draw them.
fn by_value(s: &SearchReport) -> Vec<&StepResult> {
    let mut steps: Vec<&StepResult> = s.steps.iter().collect();
    steps.sort_by(|a, b| tried(s.plan.vary, a).total_cmp(&tried(s.plan.vary, b)));
    steps
}

/// The x axis of both charts: the offered rate, from 0 to the highest
/// rate in `s` (offered or achieved, so the diagonal stays a diagonal),
/// or the connection count.
fn x_axis(s: &SearchReport) -> Axis {
    match s.plan.vary {
        Vary::Rate => rate_axis("offered, msg/s", s),
        Vary::Connections => {
            let max = s
                .steps
                .iter()
                .map(|st| tried(s.plan.vary, st))
                .fold(1.0, f64::max);
            Axis::linear("connections", 0.0, max, rate_label)
        }
    }
}

/// A rate axis from 0 to the highest rate in `s`.
fn rate_axis(title: &str, s: &SearchReport) -> Axis {
    let max = s
        .steps
        .iter()
        .flat_map(|st| [st.offered, st.achieved])
        .fold(1.0, f64::max);
    Axis::linear(title, 0.0, max, rate_label)
}

/// What the markers on the lines mean, under the charts: the SVG legend
/// has room for the lines only.
fn marker_key(s: &SearchReport) -> String {
    let ring = |color: &str| {
        format!(
            r#"<svg width="12" height="12" viewBox="0 0 12 12" style="vertical-align:-1px"><circle cx="6" cy="6" r="4.5" fill="white" stroke="{color}" stroke-width="2"/></svg>"#
        )
    };
    let mut key = vec![format!(
        r#"<svg width="12" height="12" viewBox="0 0 12 12" style="vertical-align:-1px"><circle cx="6" cy="6" r="3" fill="{OFFERED}"/></svg> step passed"#
    )];
    if s.steps.iter().any(|st| Outcome::of(st) == Outcome::Fail) {
        key.push(format!("{} failed step (an SLO broke)", ring(FAIL)));
    }
    if s.steps.iter().any(|st| st.tester_bound) {
        key.push(format!(
            "{} tester-bound step (barrage fell behind its schedule)",
            ring(TESTER_BOUND)
        ));
    }
    format!(
        "<div class=\"sub\" style=\"margin:8px 0 0\">{}</div>\n",
        key.join(" · ")
    )
}

/// The latency metric the knee is drawn for: the first one an SLO names
/// that the steps have samples of, else `rtt`.
fn knee_metric<'a>(r: &Report, s: &'a SearchReport) -> &'a str {
    s.plan
        .slos
        .iter()
        .filter_map(|e| e.split('.').next())
        .find(|m| {
            r.phases
                .iter()
                .any(|p| p.metrics.get(*m).is_some_and(|x| x.count > 0))
        })
        .unwrap_or("rtt")
}

/// p50 and p99 (ms) of the knee metric for every step against its value.
fn knee_chart(r: &Report, s: &SearchReport) -> String {
    let metric = knee_metric(r, s);
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut outcomes = Vec::new();
    for st in by_value(s) {
        let Some(m) = r
            .phases
            .iter()
            .find(|p| p.name == st.phase)
            .and_then(|p| p.metrics.get(metric))
            .filter(|m| m.count > 0)
        else {
            continue;
        };
        let x = tried(s.plan.vary, st);
        p50.push((x, m.p50_us / 1000.0));
        p99.push((x, m.p99_us / 1000.0));
        outcomes.push(Outcome::of(st));
    }
    let top = p99.iter().chain(&p50).map(|p| p.1).fold(0.001, f64::max);
    let y = Axis::linear(&format!("{metric}, ms"), 0.0, top, num);
    let series = [
        Series {
            name: format!("{metric} p50"),
            color: P50,
            points: p50,
            dashed: false,
        },
        Series {
            name: format!("{metric} p99"),
            color: P99,
            points: p99,
            dashed: false,
        },
    ];
    let against = match s.plan.vary {
        Vary::Rate => "offered rate",
        Vary::Connections => "connections",
    };
    let svg = line_chart(
        &format!("Latency against {against} (the knee)"),
        &series,
        &x_axis(s),
        &y,
    );
    let svg = mark(svg, P50, &outcomes);
    mark(svg, P99, &outcomes)
}

/// Achieved rate of every step against its offered rate, and the diagonal
/// where the two are equal.
fn rate_chart(s: &SearchReport) -> String {
    let steps = by_value(s);
    let y = rate_axis("achieved, msg/s", s);
    let outcomes: Vec<Outcome> = steps.iter().map(|st| Outcome::of(st)).collect();
    if s.plan.vary == Vary::Connections {
        let n = |st: &&StepResult| tried(s.plan.vary, st);
        let series = [
            Series {
                name: "achieved".into(),
                color: ACHIEVED,
                points: steps.iter().map(|st| (n(st), st.achieved)).collect(),
                dashed: false,
            },
            Series {
                name: "offered".into(),
                color: OFFERED,
                points: steps
                    .iter()
                    .filter(|st| st.offered > 0.0)
                    .map(|st| (n(st), st.offered))
                    .collect(),
                dashed: true,
            },
        ];
        return mark(
            line_chart("Message rate against connections", &series, &x_axis(s), &y),
            ACHIEVED,
            &outcomes,
        );
    }
    let x = rate_axis("offered, msg/s", s);
    let series = [
        Series {
            name: "achieved".into(),
            color: ACHIEVED,
            points: steps.iter().map(|st| (st.offered, st.achieved)).collect(),
            dashed: false,
        },
        Series {
            name: "offered = achieved".into(),
            color: OFFERED,
            points: vec![(x.min, x.min), (x.max, x.max)],
            dashed: true,
        },
    ];
    mark(
        line_chart("Achieved against offered rate", &series, &x, &y),
        ACHIEVED,
        &outcomes,
    )
}

/// Draws a marker on every point of the line of colour `color` in `svg`:
/// a dot for a passing step, a ring for a failed or tester-bound one. The
/// points are read back from the line, so they sit where it was drawn.
fn mark(svg: String, color: &str, outcomes: &[Outcome]) -> String {
    let stroke = format!("stroke=\"{color}\"");
    let Some(points) = svg
        .lines()
        .find(|l| l.starts_with("<polyline") && l.contains(&stroke))
        .and_then(|l| l.split("points=\"").nth(1))
        .and_then(|p| p.split('"').next())
    else {
        return svg;
    };
    let mut marks = String::new();
    for (xy, o) in points.split(' ').zip(outcomes) {
        let Some((x, y)) = xy.split_once(',') else {
            continue;
        };
        let _ = match o {
            Outcome::Pass => writeln!(
                marks,
                r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}" class="step-pass"/>"#
            ),
            Outcome::Fail => writeln!(
                marks,
                r#"<circle cx="{x}" cy="{y}" r="5" fill="white" stroke="{FAIL}" stroke-width="2.2" class="step-fail"/>"#
            ),
            Outcome::TesterBound => writeln!(
                marks,
                r#"<circle cx="{x}" cy="{y}" r="5" fill="white" stroke="{TESTER_BOUND}" stroke-width="2.2" class="step-tester-bound"/>"#
            ),
        };
    }
    match svg.rfind("</svg>") {
        Some(end) => format!("{}{marks}{}", &svg[..end], &svg[end..]),
        None => svg,
    }
}

/// The steps in the order taken, with each SLO as the step showed it.
fn steps_table(s: &SearchReport) -> String {
    let slos: Vec<&str> = match s.steps.iter().find(|st| !st.slos.is_empty()) {
        Some(st) => st.slos.iter().map(|v| v.expr.as_str()).collect(),
        None => s.plan.slos.iter().map(String::as_str).collect(),
    };
    let by_count = s.plan.vary == Vary::Connections;
    let mut out =
        String::from("<div class=\"card\" style=\"margin-top:16px\"><table><tr><th>step</th>");
    if by_count {
        out.push_str("<th>connections</th>");
    }
    out.push_str("<th>offered</th><th>achieved</th>");
    for slo in &slos {
        let _ = write!(out, "<th>{}</th>", esc(slo));
    }
    out.push_str("<th>result</th></tr>\n");
    for st in &s.steps {
        let _ = write!(out, "<tr><td>{}</td>", esc(&st.phase));
        if by_count {
            let _ = write!(out, "<td>{}</td>", thousands(tried(s.plan.vary, st)));
        }
        let _ = write!(
            out,
            "<td>{}/s</td><td>{}/s</td>",
            thousands(st.offered),
            thousands(st.achieved)
        );
        for i in 0..slos.len() {
            match st.slos.get(i) {
                Some(v) => {
                    let class = if v.pass { "" } else { " class=\"fail-text\"" };
                    let _ = write!(out, "<td{class}>{}</td>", esc(&v.observed_text));
                }
                None => out.push_str("<td>–</td>"),
            }
        }
        let (class, word) = Outcome::of(st).cell();
        let _ = writeln!(out, "<td class=\"{class}\">{word}</td></tr>");
    }
    out.push_str("</table></div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::html::render;
    use super::super::model::{MetricSummary, PhaseReport};
    use super::super::search::{SearchPlan, SloResult, conclude};
    use super::*;
    use crate::metrics::RunData;
    use crate::report::model::ScenarioInfo;

    fn base() -> Report {
        let plan = ScenarioInfo {
            name: "cap".into(),
            file: None,
            target: "ws://127.0.0.1:9/".into(),
            connections: 10,
            connection_rate: 10.0,
            phases: Vec::new(),
            source: None,
            thresholds: Vec::new(),
            search: None,
        };
        crate::report::build(&plan, &RunData::default())
    }

    fn phase(name: &str, p50_ms: f64, p99_ms: f64) -> PhaseReport {
        let mut metrics = std::collections::BTreeMap::new();
        metrics.insert(
            "rtt".to_string(),
            MetricSummary {
                count: 100,
                p50_us: p50_ms * 1000.0,
                p99_us: p99_ms * 1000.0,
                ..Default::default()
            },
        );
        PhaseReport {
            name: name.into(),
            duration_s: 5.0,
            target_rate: None,
            achieved_rate: 0.0,
            scheduled: 0,
            record: true,
            messages: Default::default(),
            errors: 0,
            errors_by_kind: Default::default(),
            saturated: false,
            metrics,
        }
    }

    /// Steps taken 1k, 2k, 4k (fails), 3k, 3.5k (tester-bound).
    fn report() -> Report {
        let taken = [
            (1, 1000.0, 1000.0, 2.0, 8.0, true, false),
            (2, 2000.0, 1990.0, 3.0, 12.0, true, false),
            (3, 4000.0, 3100.0, 40.0, 90.0, false, false),
            (4, 3000.0, 2980.0, 5.0, 30.0, true, false),
            (5, 3500.0, 3000.0, 9.0, 45.0, false, true),
        ];
        let mut r = base();
        let mut steps = Vec::new();
        for (i, offered, achieved, p50, p99, pass, tb) in taken {
            let name = format!("step-{i}");
            r.phases.push(phase(&name, p50, p99));
            steps.push(StepResult {
                phase: name,
                offered,
                connections: None,
                achieved,
                slos: vec![SloResult {
                    expr: "rtt.p99 < 50ms".into(),
                    observed: p99 * 1000.0,
                    observed_text: format!("{p99}ms"),
                    pass: p99 < 50.0,
                }],
                pass,
                tester_bound: tb,
            });
        }
        let plan = SearchPlan {
            slos: vec!["rtt.p99 < 50ms".into()],
            vary: Vary::Rate,
            from: 1000.0,
            to: 64_000.0,
            precision: 0.05,
            min: None,
        };
        r.search = Some(conclude(&plan, steps));
        r
    }

    fn chart<'a>(html: &'a str, title: &str) -> &'a str {
        html.split("<svg")
            .find(|c| c.contains(title))
            .unwrap_or_else(|| panic!("no chart {title:?}"))
    }

    #[test]
    fn search_section_has_the_answer_charts_and_steps() {
        let r = report();
        let html = render(&r);
        assert!(html.contains("<h2>Capacity search</h2>"), "{html}");
        let answer = &r.search.as_ref().unwrap().answer;
        assert!(answer.contains('<'), "{answer}");
        assert!(html.contains(&esc(answer)), "{html}");
        assert!(!html.contains(answer.as_str()), "answer not escaped");
        // Near the top: before the charts over time.
        assert!(html.find("Capacity search").unwrap() < html.find("Over time").unwrap());

        let knee = chart(&html, "Latency against offered rate (the knee)");
        for series in ["rtt p50", "rtt p99"] {
            assert!(
                knee.contains(&format!(r#"class="legend">{series}</text>"#)),
                "no {series} legend in {knee}"
            );
        }
        assert_eq!(knee.matches("<polyline").count(), 2, "{knee}");
        assert!(html.contains("failed step (an SLO broke)"), "{html}");
        assert!(html.contains("tester-bound step (barrage fell behind"));
        // Two lines of five steps: one failed and one tester-bound ring on each.
        assert_eq!(knee.matches("<circle").count(), 10, "{knee}");
        assert_eq!(knee.matches("step-fail").count(), 2, "{knee}");
        assert_eq!(knee.matches("step-tester-bound").count(), 2, "{knee}");
        // Sorted by offered rate: x grows along the p99 line, and p99 at
        // 4k (90 ms) is the top of the chart (SVG y grows downwards).
        let line = knee
            .lines()
            .find(|l| l.starts_with("<polyline") && l.contains(P99))
            .unwrap();
        let pts: Vec<(f64, f64)> = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"/>")
            .split(' ')
            .map(|xy| {
                let (x, y) = xy.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(pts.len(), 5);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0), "{pts:?}");
        let highest = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min);
        assert_eq!(pts[4].1, highest, "{pts:?}");

        let rate = chart(&html, "Achieved against offered rate");
        for series in ["achieved", "offered = achieved"] {
            assert!(
                rate.contains(&format!(r#"class="legend">{series}</text>"#)),
                "no {series} legend in {rate}"
            );
        }
        assert_eq!(rate.matches("<polyline").count(), 2, "{rate}");
        assert!(rate.contains("stroke-dasharray"), "{rate}");
        assert_eq!(rate.matches("<circle").count(), 5, "{rate}");

        // The table: steps in the order taken, SLO values and results.
        let table = html
            .split("<th>step</th>")
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap();
        assert!(table.contains("<th>rtt.p99 &lt; 50ms</th>"), "{table}");
        let order: Vec<usize> = (1..=5)
            .map(|i| table.find(&format!("<td>step-{i}</td>")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{table}");
        assert!(
            table.contains("<td>4,000/s</td><td>3,100/s</td>"),
            "{table}"
        );
        assert!(
            table.contains(r#"<td class="fail-text">90ms</td>"#),
            "{table}"
        );
        assert_eq!(table.matches(">pass</td>").count(), 3, "{table}");
        assert_eq!(table.matches(">FAIL</td>").count(), 1, "{table}");
        assert_eq!(table.matches(">TESTER-BOUND</td>").count(), 1, "{table}");
        // Not a second time among the numbers.
        assert_eq!(html.matches("Capacity search").count(), 1);
    }

    #[test]
    fn a_step_without_rtt_is_left_out_of_the_knee_only() {
        let mut r = report();
        r.phases.retain(|p| p.name != "step-2");
        let html = render(&r);
        let knee = chart(&html, "the knee");
        assert_eq!(knee.matches("<circle").count(), 8, "{knee}");
        let rate = chart(&html, "Achieved against offered rate");
        assert_eq!(rate.matches("<circle").count(), 5, "{rate}");
        assert!(html.contains("<td>step-2</td>"));
    }

    #[test]
    fn no_search_no_section() {
        let html = render(&base());
        assert!(!html.contains("Capacity search"));
        assert!(!html.contains("the knee"));
        assert!(!html.contains("Achieved against offered rate"));
        assert_eq!(section(&base()), "");
    }
}
