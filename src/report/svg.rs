//! Small inline-SVG line charts for the HTML report: no scripts, no fonts to
//! load, no network. Axes are linear or logarithmic ([`Axis::log`]); a chart
//! over time can shade spans of its x axis (phases) and mark moments on it
//! (pauses, rate changes) with an [`Overlay`].

use std::fmt::Write;

/// One line of a chart.
pub struct Series {
    /// Legend label (left out of the legend when the series has no point).
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// Points in data space (x, y), in x order. A point whose y is not a
    /// finite number breaks the line (a second without samples); a point
    /// standing alone between breaks is drawn as a dot.
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
    /// Logarithmic: values are placed by their log10 (`min` > 0), and values
    /// ≤ 0 are drawn at the bottom of the axis.
    pub log: bool,
    /// Logarithmic with a 0 ([`Axis::with_zero`]): the bottom of the axis
    /// is 0, where values ≤ 0 are drawn, and the log range starts a small
    /// gap above it.
    pub zero: bool,
}

/// Share of a log axis with a 0 below its smallest tick.
const ZERO_GAP: f64 = 0.1;

/// The 1-2-5 value number `k`: 1, 2, 5 for k = 0, 1, 2; 10, 20, 50 for
/// 3, 4, 5; 0.5 for -1.
fn one_two_five(k: i64) -> f64 {
    scaled(
        [1.0, 2.0, 5.0][k.rem_euclid(3) as usize],
        k.div_euclid(3) as i32,
    )
}

/// `n` × 10^`e`, the double nearest the decimal for a whole `n` (0.3, not
/// 0.30000000000000004): negative powers divide by an exact power of ten.
fn scaled(n: f64, e: i32) -> f64 {
    if e >= 0 {
        n * 10f64.powi(e)
    } else {
        n / 10f64.powi(-e)
    }
}

/// Relative slack when comparing a value with a 1-2-5 tick, so that 0.001
/// computed as 10^-3 counts as equal to the tick 0.001.
const SLACK: f64 = 1e-9;

impl Axis {
    /// A linear axis from `min` rounded down to `max` rounded up, with about
    /// five ticks at round steps (1, 2, 2.5 or 5 times a power of ten),
    /// labelled by `label`. When two of `label`'s labels would read the
    /// same (a range finer than `label` shows, such as 0 to 0.001 with three
    /// decimals), every tick is labelled with as many decimals as the step
    /// needs instead, so labels are always distinct.
    pub fn linear(title: &str, min: f64, max: f64, label: impl Fn(f64) -> String) -> Axis {
        let (min, max) = if min.is_finite() && max.is_finite() {
            (min, max)
        } else {
            (0.0, 1.0)
        };
        let span = (max - min).max(1e-9);
        let raw = span / 5.0;
        let e = raw.log10().floor() as i32;
        let mult = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .find(|m| scaled(*m, e) >= raw * (1.0 - SLACK))
            .unwrap_or(10.0);
        let step = scaled(mult, e);
        let first = (min / step + SLACK).floor();
        let last = (max / step - SLACK).ceil().max(first + 1.0);
        let values: Vec<f64> = (0..=(last - first) as i64)
            .map(|i| scaled((first + i as f64) * mult, e))
            .collect();
        let mut labels: Vec<String> = values.iter().map(|v| label(*v)).collect();
        if labels.windows(2).any(|w| w[0] == w[1]) {
            // Decimals of the step: 0.0002 needs 4, 0.00025 needs 5.
            let decimals =
                (-(step.log10() + SLACK).floor()).max(0.0) as usize + usize::from(mult == 2.5);
            labels = values.iter().map(|v| fixed(*v, decimals)).collect();
        }
        Axis {
            title: title.to_string(),
            min: scaled(first * mult, e),
            max: scaled(last * mult, e),
            ticks: values.into_iter().zip(labels).collect(),
            log: false,
            zero: false,
        }
    }

    /// A logarithmic axis over `lo` ..= `hi` (the smallest and largest
    /// positive values to show), widened to 1-2-5 values (… 100, 200, 500,
    /// 1000 …) and ticked at them, each labelled by `label`. Over more than
    /// three decades only the powers of ten are ticked (every second or
    /// third one over more than eight). A `lo` that is not positive (no
    /// positive value) becomes a tenth of `hi`, a `hi` that is not
    /// positive 1.
    pub fn log(title: &str, lo: f64, hi: f64, label: impl Fn(f64) -> String) -> Axis {
        let hi = if hi.is_finite() && hi > 0.0 { hi } else { 1.0 };
        let lo = if lo.is_finite() && lo > 0.0 && lo <= hi {
            lo
        } else {
            hi / 10.0
        };
        // The largest 1-2-5 value at or below lo, the smallest at or above hi.
        let mut k_lo = (3.0 * lo.log10()).floor() as i64 - 1;
        while one_two_five(k_lo + 1) <= lo * (1.0 + SLACK) {
            k_lo += 1;
        }
        let mut k_hi = (3.0 * hi.log10()).floor() as i64 - 1;
        while one_two_five(k_hi) < hi * (1.0 - SLACK) {
            k_hi += 1;
        }
        let mut k_hi = k_hi.max(k_lo + 1);
        let decades = (k_hi - k_lo) as f64 / 3.0;
        let stride = if decades <= 3.0 {
            1
        } else {
            // Whole decades, so both ends are powers of ten.
            k_lo = k_lo.div_euclid(3) * 3;
            k_hi = (k_hi + 2).div_euclid(3) * 3;
            3 * (decades / 8.0).ceil() as i64
        };
        let ticks = (k_lo..=k_hi)
            .filter(|k| (k - k_lo) % stride == 0)
            .map(|k| {
                let v = one_two_five(k);
                (v, label(v))
            })
            .collect();
        Axis {
            title: title.to_string(),
            min: one_two_five(k_lo),
            max: one_two_five(k_hi),
            ticks,
            log: true,
            zero: false,
        }
    }

    /// This log axis with a 0 at its bottom, labelled `label`, a small gap
    /// below its smallest tick: for data with values ≤ 0 (a `send_lag` of
    /// 0), drawn there as 0 instead of on the smallest tick.
    pub fn with_zero(mut self, label: &str) -> Axis {
        self.zero = true;
        self.ticks.insert(0, (0.0, label.to_string()));
        self
    }

    /// Where `v` falls between `min` (0) and `max` (1); below 0 and above 1
    /// outside the range, -∞ for a value ≤ 0 on a log axis (0 on one with
    /// a 0, where `min` sits a small gap above it).
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            let lo = self.min.max(f64::MIN_POSITIVE).log10();
            let hi = self.max.max(f64::MIN_POSITIVE).log10();
            let f = if v > 0.0 {
                (v.log10() - lo) / (hi - lo).max(1e-12)
            } else {
                f64::NEG_INFINITY
            };
            match (self.zero, v > 0.0) {
                (false, _) => f,
                (true, true) => ZERO_GAP + (1.0 - ZERO_GAP) * f.max(0.0),
                (true, false) => 0.0,
            }
        } else {
            (v - self.min) / (self.max - self.min).max(1e-12)
        }
    }
}

/// `v` with `decimals` decimals, trailing zeros dropped.
fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A span of the x axis shaded behind the series (a phase), with its name.
pub struct Band {
    /// Where it starts, x data space.
    pub from: f64,
    /// Where it ends.
    pub to: f64,
    /// Its name, written at its top left when it fits (and as its tooltip).
    pub label: String,
}

/// A vertical line at a moment of the x axis (a pause, a rate change), with
/// a short label.
pub struct Marker {
    /// Where, x data space.
    pub at: f64,
    /// What happened (`paused`, `×1.10`).
    pub label: String,
}

/// What a chart over time draws besides its series: bands (shaded in
/// alternating tints, in order) and markers.
#[derive(Default)]
pub struct Overlay {
    /// Spans shaded behind the series.
    pub bands: Vec<Band>,
    /// Moments marked by vertical lines.
    pub markers: Vec<Marker>,
}

/// Colour of the marker lines and their labels.
const MARKER: &str = "#d35400";
/// The two alternating band tints.
const BAND_TINTS: [&str; 2] = ["#2e86de", "#8395a7"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line chart as an `<svg>` element.
pub fn line_chart(title: &str, series: &[Series], x: &Axis, y: &Axis) -> String {
    chart(title, series, x, y, &Overlay::default())
}

/// A line chart as an `<svg>` element, with `overlay`'s bands behind the
/// series and its markers over them.
pub fn chart(title: &str, series: &[Series], x: &Axis, y: &Axis, overlay: &Overlay) -> String {
    let (w, h) = (720.0, 280.0);
    let (left, right, top, bottom) = (72.0, 30.0, 34.0, 44.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let sx = |v: f64| left + x.frac(v) * pw;
    let sy = |v: f64| top + ph - y.frac(v).clamp(0.0, 1.0) * ph;
    // Inside the plot area, for bands and markers.
    let cx = |v: f64| left + x.frac(v).clamp(0.0, 1.0) * pw;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}">
<text x="{left}" y="20" class="title">{t}</text>
"#,
        t = esc(title)
    );
    for (i, b) in overlay.bands.iter().enumerate() {
        let (x0, x1) = (cx(b.from), cx(b.to));
        if (x1 - x0).is_nan() || x1 - x0 < 0.5 {
            continue;
        }
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{ph}" fill="{}" fill-opacity="0.08" class="band"><title>{}</title></rect>"#,
            x1 - x0,
            BAND_TINTS[i % 2],
            esc(&b.label)
        );
        // About 6 px a character at the band label's 10 px.
        if x1 - x0 >= 6.0 * b.label.chars().count() as f64 + 8.0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" class="band-label">{}</text>"#,
                x0 + 4.0,
                top + 12.0,
                esc(&b.label)
            );
        }
    }
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
    let drawn = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut legend_x = left + pw;
    for series in series.iter().rev() {
        if !series.points.iter().any(drawn) {
            continue;
        }
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
        for run in series.points.split(|p| !drawn(p)) {
            if run.is_empty() {
                continue;
            }
            let pts: Vec<String> = run
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
            if let [(a, b)] = run {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" class="dot"/>"#,
                    sx(*a),
                    sy(*b),
                    series.color
                );
            }
        }
    }
    // Labels in up to three rows, each in the first row where it does not
    // run into the previous label.
    let mut row_end = [f64::NEG_INFINITY; 3];
    for m in &overlay.markers {
        let px = sx(m.at);
        if !(left - 0.5..=left + pw + 0.5).contains(&px) {
            continue;
        }
        let width = 6.0 * m.label.chars().count() as f64 + 6.0;
        let row = (0..row_end.len()).find(|r| row_end[*r] <= px).unwrap_or(0);
        row_end[row] = px + width;
        // Near the right edge the label goes left of the line.
        let (lx, anchor) = if px + width > left + pw {
            (px - 3.0, "end")
        } else {
            (px + 3.0, "start")
        };
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{top}" y2="{}" stroke="{MARKER}" stroke-width="1.2" stroke-dasharray="3 3" class="marker"/><text x="{lx:.1}" y="{}" class="marker-label" fill="{MARKER}" text-anchor="{anchor}">{}</text>"#,
            top + ph,
            top + 26.0 + 12.0 * row as f64,
            esc(&m.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests;
