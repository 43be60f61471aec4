//! The latency panels: the table of percentiles (last second and whole
//! run) and the log-scale chart of the charted metric's p50 and p99.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Cell, Chart, Dataset, GraphType, Row, Table};

use super::layout;
use super::state::{DashboardState, TABLE_STATS};
use super::view::block;
use crate::report::table::fmt_ns;
use crate::scenario::LatencyMetric;

/// The latency table: two rows a metric (last second, whole run), as many
/// metrics as fit whole (by [`DashboardState::metrics_by_priority`], the
/// rest counted in the title); names shortened (with a legend) and then
/// p99.9 and p90 left out when the width is short.
pub(super) fn draw_latency_table(f: &mut Frame, area: Rect, s: &DashboardState) {
    let cell = |v: Option<f64>| Cell::from(v.map_or("-".to_string(), fmt_ns));
    let order = s.metrics_by_priority(&layout::METRIC_PRIORITY);
    let pairs = layout::latency_pairs(area.height).max(1);
    let shown = &order[..order.len().min(pairs)];
    let hidden = order.len() - shown.len();
    let rows_of: Vec<_> = s
        .latency_rows()
        .into_iter()
        .filter(|r| shown.contains(&r.0))
        .collect();
    let inner = area.width.saturating_sub(2) as usize;
    // "{name} all" is the longest label; each stat column is 8 wide plus
    // the spacing of 1.
    let label_w = |name: fn(LatencyMetric) -> &'static str| {
        rows_of
            .iter()
            .map(|r| name(r.0).len() + 4)
            .fold("metric".len(), usize::max)
    };
    let full = label_w(LatencyMetric::name);
    let short = full + TABLE_STATS.len() * 9 > inner;
    let label = if short {
        label_w(layout::short_name)
    } else {
        full
    };
    // Stat columns, fewest first to leave out: p99.9, then p90.
    let mut cols: Vec<usize> = (0..TABLE_STATS.len()).collect();
    for drop in [3, 1] {
        if label + cols.len() * 9 > inner {
            cols.retain(|c| *c != drop);
        }
    }
    let name = |m: LatencyMetric| {
        if short {
            layout::short_name(m)
        } else {
            m.name()
        }
    };
    let mut header = vec![Cell::from("metric")];
    header.extend(cols.iter().map(|c| Cell::from(TABLE_STATS[*c].0)));
    let mut rows = Vec::new();
    for (m, interval, run) in &rows_of {
        let mut r = vec![Cell::from(format!("{} 1s", name(*m)))];
        r.extend(cols.iter().map(|c| cell(interval[*c])));
        rows.push(Row::new(r));
        let mut r = vec![Cell::from(format!("{} all", name(*m)))];
        r.extend(cols.iter().map(|c| cell(run[*c])));
        rows.push(Row::new(r).style(Style::new().add_modifier(Modifier::BOLD)));
    }
    let mut widths = vec![Constraint::Length(label as u16)];
    widths.extend(cols.iter().map(|_| Constraint::Length(8)));
    let mut title = vec!["Latency (last second / whole run)".to_string()];
    if hidden > 0 {
        title.push(format!("+{hidden} more (Tab)"));
    }
    let mut b = block(layout::fit_parts(&title, area.width.saturating_sub(2)));
    if short {
        let legend: Vec<String> = rows_of
            .iter()
            .filter(|r| layout::short_name(r.0) != r.0.name())
            .map(|r| format!("{}={}", layout::short_name(r.0), r.0.name()))
            .collect();
        if !legend.is_empty() {
            let text = legend.join(" ");
            if text.len() < inner {
                b = b.title_bottom(format!(" {text} "));
            }
        }
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().fg(Color::Yellow)))
        .block(b);
    f.render_widget(table, area);
}

/// Axis label for 10^e ns.
fn decade(e: i32) -> String {
    let units = ["ns", "µs", "ms", "s"];
    let e = e.max(0) as usize;
    match units.get(e / 3) {
        Some(u) => format!("{}{u}", 10u64.pow((e % 3) as u32)),
        None => format!("{}s", 10u64.pow((e - 9) as u32)),
    }
}

/// Log10 of a latency in ns, for the log-scale chart.
fn log_ns(ns: u64) -> f64 {
    (ns.max(1) as f64).log10()
}

pub(super) fn draw_latency_chart(f: &mut Frame, area: Rect, s: &DashboardState) {
    let m = s.chart_metric();
    let i = s.chart_index();
    let p50: Vec<(f64, f64)> = s
        .history
        .iter()
        .filter_map(|p| Some((p.t_s, log_ns(p.latency[i]?.0))))
        .collect();
    let p99: Vec<(f64, f64)> = s
        .history
        .iter()
        .filter_map(|p| Some((p.t_s, log_ns(p.latency[i]?.1))))
        .collect();
    let lo = p50.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = p99.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    } else {
        (3.0, 6.0)
    };
    let labels: Vec<String> = (lo as i32..=hi as i32).map(decade).collect();
    let x_max = s.history.last().map_or(1.0, |p| p.t_s.max(1.0));
    let chart = Chart::new(vec![
        Dataset::default()
            .name("p50")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Green))
            .data(&p50),
        Dataset::default()
            .name("p99")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Red))
            .data(&p99),
    ])
    .block(block(format!("{} p50/p99 (log, Tab)", m.name())))
    .x_axis(
        Axis::default()
            .bounds([0.0, x_max])
            .labels(["0s".to_string(), format!("{x_max:.0}s")]),
    )
    .y_axis(Axis::default().bounds([lo, hi]).labels(labels));
    f.render_widget(chart, area);
}
