//! Small inline-SVG line charts for the HTML report: no scripts, no fonts to
//! load, no network.

use std::fmt::Write;

/// One line of a chart.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Points in data space (x, y), already transformed for log axes.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (targets, limits).
    pub dashed: bool,
}

/// An axis: its range in data space and its labelled ticks.
pub struct Axis {
    /// Axis title.
    pub title: String,
    /// Smallest value shown.
    pub min: f64,
    /// Largest value shown.
    pub max: f64,
    /// Tick positions (data space) and labels.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A linear axis from 0 (or `min`) to a rounded-up maximum, with about
    /// five ticks labelled by `label`.
    pub fn linear(title: &str, min: f64, max: f64, label: impl Fn(f64) -> String) -> Axis {
        let span = (max - min).max(1e-9);
        let raw = span / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let top = (max / step).ceil() * step;
        let mut ticks = Vec::new();
        let mut v = (min / step).floor() * step;
        while v <= top + step * 0.001 {
            ticks.push((v, label(v)));
            v += step;
        }
        Axis {
            title: title.to_string(),
            min: (min / step).floor() * step,
            max: top.max(min + step),
            ticks,
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line chart as an `<svg>` element.
pub fn line_chart(title: &str, series: &[Series], x: &Axis, y: &Axis) -> String {
    let (w, h) = (720.0, 280.0);
    let (left, right, top, bottom) = (72.0, 30.0, 34.0, 44.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let sx = |v: f64| left + (v - x.min) / (x.max - x.min).max(1e-12) * pw;
    let sy = |v: f64| top + ph - (v.clamp(y.min, y.max) - y.min) / (y.max - y.min).max(1e-12) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}">
<text x="{left}" y="20" class="title">{t}</text>
"#,
        t = esc(title)
    );
    for (v, label) in &y.ticks {
        let py = sy(*v);
        let _ = writeln!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            left + pw,
            left - 6.0,
            py + 4.0,
            esc(label)
        );
    }
    for (v, label) in &x.ticks {
        let px = sx(*v);
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{}" class="grid"/><text x="{px:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            top + ph,
            top + ph + 16.0,
            esc(label)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text><text x="14" y="{}" class="axis" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        left + pw / 2.0,
        h - 6.0,
        esc(&x.title),
        top + ph / 2.0,
        top + ph / 2.0,
        esc(&y.title)
    );
    let mut legend_x = left + pw;
    for series in series.iter().rev() {
        legend_x -= 12.0 + 7.0 * series.name.len() as f64 + 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{legend_x:.1}" y="12" width="12" height="4" fill="{c}"/><text x="{:.1}" y="18" class="legend">{}</text>"#,
            legend_x + 16.0,
            esc(&series.name),
            c = series.color
        );
    }
    for series in series {
        if series.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = series
            .points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", sx(*a), sy(*b)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.8"{} points="{}"/>"#,
            series.color,
            if series.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            },
            pts.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axis_has_round_ticks_covering_the_data() {
        let a = Axis::linear("x", 0.0, 93.0, |v| format!("{v}"));
        assert_eq!(a.ticks.first().unwrap().0, 0.0);
        assert!(a.max >= 93.0 && a.max <= 100.0, "{}", a.max);
        assert!(a.ticks.len() >= 4 && a.ticks.len() <= 7);
    }

    #[test]
    fn chart_has_one_polyline_per_series() {
        let x = Axis::linear("t", 0.0, 10.0, |v| format!("{v}"));
        let y = Axis::linear("v", 0.0, 5.0, |v| format!("{v}"));
        let series = vec![
            Series {
                name: "a".into(),
                color: "red",
                points: vec![(0.0, 1.0), (10.0, 5.0)],
                dashed: false,
            },
            Series {
                name: "b".into(),
                color: "blue",
                points: vec![(0.0, 2.0)],
                dashed: true,
            },
        ];
        let svg = line_chart("T <1>", &series, &x, &y);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("T &lt;1&gt;"));
        assert!(svg.contains("stroke-dasharray"));
    }
}
