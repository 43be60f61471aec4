//! Which panels the dashboard shows at a terminal size, and how text is
//! fitted into them: whole items are left out by priority, never cut
//! mid-word by ratatui. Pure arithmetic, so sizes are tested without a
//! terminal.
//!
//! Priority, most important first, as a load-test user reads the screen:
//! the header (phase, time left, pause and rate factor), thresholds (the
//! verdict), message rates, errors, the latency percentiles (the charted
//! metric and those thresholds name first), connections, the key line;
//! the charts go first of all, as they repeat what the figures say.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::scenario::LatencyMetric;

/// Below this width or height only a short summary is shown.
pub const MIN_WIDTH: u16 = 60;
/// See [`MIN_WIDTH`]: header, two lines of figures, one latency metric and
/// one line of errors and thresholds.
pub const MIN_HEIGHT: u16 = 15;
/// From this width (and [`FULL_HEIGHT`]) the full layout with its charts.
pub const FULL_WIDTH: u16 = 100;
/// See [`FULL_WIDTH`].
pub const FULL_HEIGHT: u16 = 24;

/// The layout for a terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every panel with the throughput and latency charts.
    Full,
    /// No charts: the figures as text, the latency table across the width,
    /// rows given out by priority.
    Compact,
    /// Too small for panels: a few lines of the figures that matter most.
    TooSmall,
}

/// The layout used in `area`.
pub fn mode(area: Rect) -> Mode {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        Mode::TooSmall
    } else if area.width >= FULL_WIDTH && area.height >= FULL_HEIGHT {
        Mode::Full
    } else {
        Mode::Compact
    }
}

/// Heights of the compact layout's bands, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    /// Title, phase and progress gauge.
    pub header: u16,
    /// Connections beside message rates.
    pub figures: u16,
    /// The latency table.
    pub latency: u16,
    /// Errors beside thresholds.
    pub verdict: u16,
    /// The key line (0 or 1).
    pub footer: u16,
}

/// Gives out `height` rows (at least [`MIN_HEIGHT`]) to the compact bands:
/// each starts at its least, then rows go by priority; `metrics` latency
/// metrics have samples and `verdict_lines` lines would show every
/// threshold and error kind. Rows left over go to the latency table.
pub fn compact_rows(height: u16, metrics: usize, verdict_lines: usize) -> Rows {
    // Borders take 2 rows a band; the latency table's header one more.
    let mut r = Rows {
        header: 3,
        figures: 2 + 2,
        latency: 3 + 2,
        verdict: 2 + 1,
        footer: 0,
    };
    let mut left = height.saturating_sub(r.header + r.figures + r.latency + r.verdict);
    let pairs = |r: &Rows| (r.latency - 3) as usize / 2;
    let verdict_want = verdict_lines.max(2) as u16 + 2;
    // (band, rows it grows by, whether it still wants them)
    type Step = (
        fn(&mut Rows) -> &mut u16,
        u16,
        fn(&Rows, usize, u16) -> bool,
    );
    let steps: [Step; 9] = [
        (|r| &mut r.verdict, 1, |r, _, w| r.verdict < w),
        (|r| &mut r.figures, 2, |_, _, _| true),
        (|r| &mut r.footer, 1, |_, _, _| true),
        (
            |r| &mut r.latency,
            2,
            |r, m, _| (r.latency - 3) as usize / 2 < m,
        ),
        (|r| &mut r.verdict, 1, |r, _, w| r.verdict < w),
        (
            |r| &mut r.latency,
            2,
            |r, m, _| (r.latency - 3) as usize / 2 < m,
        ),
        (|r| &mut r.figures, 1, |_, _, _| true),
        (|r| &mut r.verdict, 1, |r, _, w| r.verdict < w),
        (
            |r| &mut r.latency,
            2,
            |r, m, _| (r.latency - 3) as usize / 2 < m,
        ),
    ];
    for (band, by, wants) in steps {
        if left >= by && wants(&r, metrics, verdict_want) {
            *band(&mut r) += by;
            left -= by;
        }
    }
    // Every threshold and the rest of the latency metrics, then blank rows.
    while left >= 1 && r.verdict < verdict_want {
        r.verdict += 1;
        left -= 1;
    }
    while left >= 2 && pairs(&r) < metrics {
        r.latency += 2;
        left -= 2;
    }
    r.latency += left;
    r
}

/// How many metrics (two rows each) a latency table `height` rows high
/// (borders and header row included) shows whole.
pub fn latency_pairs(height: u16) -> usize {
    height.saturating_sub(3) as usize / 2
}

/// A short name for `m`, for narrow latency tables (explained in the
/// table's legend where it differs from the name).
pub fn short_name(m: LatencyMetric) -> &'static str {
    match m {
        LatencyMetric::Rtt => "rtt",
        LatencyMetric::Service => "svc",
        LatencyMetric::Connect => "conn",
        LatencyMetric::Tls => "tls",
        LatencyMetric::Handshake => "hs",
        LatencyMetric::SendLag => "lag",
        LatencyMetric::Ping => "ping",
        LatencyMetric::Delivery => "deliv",
        LatencyMetric::FirstMessage => "first",
    }
}

/// Order in which latency metrics keep their rows when not all fit, after
/// the charted one and those thresholds name: what the target does to
/// messages, then whether barrage kept its schedule, then how the server
/// accepts connections; `service` (rtt without the wait for a late send)
/// and the rest of connection setup last.
pub const METRIC_PRIORITY: [LatencyMetric; 9] = [
    LatencyMetric::Rtt,
    LatencyMetric::Delivery,
    LatencyMetric::SendLag,
    LatencyMetric::Ping,
    LatencyMetric::FirstMessage,
    LatencyMetric::Handshake,
    LatencyMetric::Service,
    LatencyMetric::Connect,
    LatencyMetric::Tls,
];

/// One piece of text that is shown whole or not at all.
pub type Item = Vec<Span<'static>>;

/// A one-span [`Item`].
pub fn item(text: String, style: Style) -> Item {
    vec![Span::styled(text, style)]
}

fn width(i: &Item) -> usize {
    i.iter().map(Span::width).sum()
}

/// Lays `items` (most important first) into at most `lines` lines of
/// `width` columns, two spaces apart: each goes on the first line with
/// room for it, and those with room nowhere are left out whole.
pub fn pack(items: Vec<Item>, width_cols: u16, lines: u16) -> Vec<Line<'static>> {
    let w = width_cols as usize;
    let mut out: Vec<(usize, Item)> = Vec::new();
    for it in items {
        let n = width(&it);
        if n > w {
            continue;
        }
        if let Some((used, line)) = out.iter_mut().find(|(used, _)| used + 2 + n <= w) {
            *used += 2 + n;
            line.push(Span::raw("  "));
            line.extend(it);
        } else if out.len() < lines as usize {
            out.push((n, it));
        }
    }
    out.into_iter().map(|(_, l)| Line::from(l)).collect()
}

/// `parts` joined by two spaces, leaving out (from the end) those that
/// would take the text past `width` columns; the first is always kept,
/// shortened with `…` if it must be.
pub fn fit_parts(parts: &[String], width_cols: u16) -> String {
    let w = width_cols as usize;
    let mut out = ellipsize(parts.first().map_or("", |s| s.as_str()), w);
    for p in parts.iter().skip(1) {
        if Span::raw(out.as_str()).width() + 2 + Span::raw(p.as_str()).width() <= w {
            out.push_str("  ");
            out.push_str(p);
        }
    }
    out
}

/// `s` cut to `width` columns, ending in `…` when it was cut.
pub fn ellipsize(s: &str, width_cols: usize) -> String {
    if Span::raw(s).width() <= width_cols {
        return s.to_string();
    }
    let mut out = String::new();
    for c in s.chars() {
        if Span::raw(format!("{out}{c}…")).width() > width_cols {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(r: &Rows) -> u16 {
        r.header + r.figures + r.latency + r.verdict + r.footer
    }

    #[test]
    fn modes_by_size() {
        assert_eq!(mode(Rect::new(0, 0, 160, 48)), Mode::Full);
        assert_eq!(mode(Rect::new(0, 0, 100, 24)), Mode::Full);
        assert_eq!(mode(Rect::new(0, 0, 80, 24)), Mode::Compact);
        assert_eq!(mode(Rect::new(0, 0, 120, 20)), Mode::Compact);
        assert_eq!(mode(Rect::new(0, 0, 60, 15)), Mode::Compact);
        assert_eq!(mode(Rect::new(0, 0, 59, 24)), Mode::TooSmall);
        assert_eq!(mode(Rect::new(0, 0, 80, 14)), Mode::TooSmall);
    }

    #[test]
    fn compact_rows_fill_the_height_by_priority() {
        for h in MIN_HEIGHT..60 {
            for m in 1..6 {
                let r = compact_rows(h, m, 3);
                assert_eq!(total(&r), h, "{h} rows, {m} metrics: {r:?}");
                assert!(latency_pairs(r.latency) >= 1);
            }
        }
        // 80×24 with five metrics: four lines of figures, three metrics,
        // three lines of errors and thresholds, the key line.
        let r = compact_rows(24, 5, 3);
        assert_eq!((r.figures, r.verdict, r.footer), (6, 5, 1), "{r:?}");
        assert_eq!(latency_pairs(r.latency), 3, "{r:?}");
        // The smallest: one metric, one line below it, no key line.
        let r = compact_rows(MIN_HEIGHT, 5, 3);
        assert_eq!((r.latency, r.verdict, r.footer), (5, 3, 0), "{r:?}");
    }

    #[test]
    fn packing_leaves_out_whole_items() {
        let items = ["open 10 / 10", "failed 0", "a very long item indeed"]
            .map(|s| item(s.into(), Style::new()))
            .to_vec();
        let lines = pack(items, 22, 2);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["open 10 / 10  failed 0"]);
        assert_eq!(fit_parts(&["sent 5".into(), "recv 5".into()], 10), "sent 5");
        assert_eq!(ellipsize("barrage · long", 8), "barrage…");
    }
}
