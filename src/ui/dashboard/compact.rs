//! The dashboard below 100×24 (80×24 is the common case), and the summary
//! shown when even that does not fit. No charts: their figures as text,
//! every band given rows by [`layout::compact_rows`] and every figure shown
//! whole or left out ([`layout::pack`]).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::latency::draw_latency_table;
use super::layout::{self, Item, item};
use super::state::DashboardState;
use super::view::{
    block, bytes, close_codes, draw_footer, draw_header, draw_thresholds, rate, status_parts,
};
use crate::report::table::fmt_ns;

/// Draws the compact layout into `area` (at least
/// [`layout::MIN_WIDTH`]×[`layout::MIN_HEIGHT`]).
pub fn draw(f: &mut Frame, area: Rect, s: &DashboardState) {
    let metrics = s.metrics_by_priority(&layout::METRIC_PRIORITY).len();
    let rows = layout::compact_rows(area.height, metrics.max(1), s.thresholds.len());
    let [header, figures, latency, verdict, footer] = Layout::vertical([
        Constraint::Length(rows.header),
        Constraint::Length(rows.figures),
        Constraint::Length(rows.latency),
        Constraint::Length(rows.verdict),
        Constraint::Length(rows.footer),
    ])
    .areas(area);
    draw_header(f, header, s);
    let halves = [Constraint::Percentage(50), Constraint::Percentage(50)];
    let [conns, msgs] = Layout::horizontal(halves).areas(figures);
    draw_connections(f, conns, s);
    draw_rates(f, msgs, s);
    draw_latency_table(f, latency, s);
    let [errors, thresholds] = Layout::horizontal(halves).areas(verdict);
    draw_errors(f, errors, s);
    draw_thresholds(f, thresholds, s);
    if rows.footer > 0 {
        draw_footer(f, footer);
    }
}

/// `items` packed inside a bordered panel titled `title`.
fn panel(f: &mut Frame, area: Rect, title: &'static str, items: Vec<Item>) {
    let lines = layout::pack(
        items,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    f.render_widget(Paragraph::new(lines).block(block(title)), area);
}

fn draw_connections(f: &mut Frame, area: Rect, s: &DashboardState) {
    let l = &s.now;
    let c = &s.recorded.counters;
    let plain = |t: String| item(t, Style::new());
    let failed = if c.failed > 0 {
        Style::new().fg(Color::Red)
    } else {
        Style::new()
    };
    panel(
        f,
        area,
        "Connections",
        vec![
            plain(format!("open {:>7} / {}", l.open, s.target_connections())),
            item(
                format!(
                    "failed {}  closed by server {}",
                    c.failed, c.closed_by_server
                ),
                failed,
            ),
            plain(format!(
                "opened {}/s  closed {}/s",
                rate(s.opening_rate),
                rate(s.closing_rate)
            )),
            plain(format!("closed by barrage {}", c.closed)),
            plain(format!("peak {}", l.peak_open)),
            plain(format!("fds {}/{}", s.fds_open, s.fd_limit)),
        ],
    );
}

fn draw_rates(f: &mut Frame, area: Rect, s: &DashboardState) {
    let last = s.history.last().cloned().unwrap_or_default();
    let plain = |t: String| item(t, Style::new());
    // Sent beside its target, then what came back.
    let mut items = vec![plain(format!("sent {}/s", rate(last.sent_per_s)))];
    if let Some(t) = last.target {
        items.push(plain(format!("target {}/s", rate(t))));
    }
    items.push(plain(format!("recv {}/s", rate(last.received_per_s))));
    if last.deliveries_per_s > 0.0 {
        let other = (last.received_per_s - last.replies_per_s - last.deliveries_per_s).max(0.0);
        items.push(plain(format!("replies {}/s", rate(last.replies_per_s))));
        items.push(plain(format!(
            "deliveries {}/s",
            rate(last.deliveries_per_s)
        )));
        items.push(plain(format!("other {}/s", rate(other))));
    }
    items.push(plain(format!("bytes {}/s", bytes(last.bytes_per_s))));
    panel(f, area, "Msgs/s", items);
}

/// The total first, then kinds that happened, then the rest, close codes
/// and the latest messages.
fn draw_errors(f: &mut Frame, area: Rect, s: &DashboardState) {
    let red = Style::new().fg(Color::Red);
    let errors = s.errors();
    let total: u64 = errors.iter().map(|e| e.1).sum();
    let mut items = vec![item(
        format!("total {total}"),
        if total > 0 { red } else { Style::new() },
    )];
    let (seen, zero): (Vec<_>, Vec<_>) = errors.iter().partition(|e| e.1 > 0);
    items.extend(seen.iter().map(|(k, n)| item(format!("{k} {n}"), red)));
    items.extend(
        zero.iter()
            .map(|(k, n)| item(format!("{k} {n}"), Style::new())),
    );
    if let Some(codes) = close_codes(s) {
        items.push(item(codes, Style::new()));
    }
    let inner = area.width.saturating_sub(2) as usize;
    for e in s.total.events.recent_errors.iter().rev() {
        items.push(item(
            layout::ellipsize(e, inner),
            Style::new().fg(Color::DarkGray),
        ));
    }
    panel(f, area, "Errors", items);
}

/// Below [`layout::MIN_WIDTH`]×[`layout::MIN_HEIGHT`]: what is too small,
/// then one line each of where the run is, the verdict, rates and errors,
/// the charted latency, and how to stop, as many as there are rows.
pub fn draw_too_small(f: &mut Frame, area: Rect, s: &DashboardState) {
    let w = area.width;
    let last = s.history.last().cloned().unwrap_or_default();
    let count = |m: &str| {
        s.thresholds
            .iter()
            .filter(|t| match m {
                "pending" => t.pending,
                "pass" => !t.pending && t.pass,
                _ => !t.pending && !t.pass,
            })
            .count()
    };
    let verdict: Vec<String> = ["FAIL", "pending", "pass"]
        .into_iter()
        .map(|m| (m, count(m)))
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{n} {m}"))
        .collect();
    let errors: u64 = s.errors().iter().map(|e| e.1).sum();
    let m = s.chart_metric();
    let p99 = s
        .latency_rows()
        .into_iter()
        .find(|r| r.0 == m)
        .and_then(|r| r.1[2])
        .map_or("-".into(), fmt_ns);
    let mut lines = vec![
        Line::styled(
            layout::fit_parts(
                &[
                    format!("terminal {}×{} too small", w, area.height),
                    format!("needs {}×{}", layout::MIN_WIDTH, layout::MIN_HEIGHT),
                ],
                w,
            ),
            Style::new().fg(Color::Yellow),
        ),
        Line::from(layout::fit_parts(&status_parts(s), w)),
    ];
    if !verdict.is_empty() {
        let text = format!("thresholds {}", verdict.join(" "));
        let style = if count("FAIL") > 0 {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        lines.push(Line::styled(layout::ellipsize(&text, w as usize), style));
    }
    let figures = [
        format!("sent {}/s", rate(last.sent_per_s)),
        format!("recv {}/s", rate(last.received_per_s)),
        format!("errors {errors}"),
    ];
    lines.push(Line::from(layout::fit_parts(&figures, w)));
    lines.push(Line::from(layout::ellipsize(
        &format!("{} p99 1s {p99}", m.name()),
        w as usize,
    )));
    lines.push(Line::from(layout::ellipsize("q stop  ? help", w as usize)));
    lines.truncate(area.height as usize);
    f.render_widget(Paragraph::new(lines), area);
}
