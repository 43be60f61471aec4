//! Draws a [`DashboardState`] into a ratatui frame. Pure: same state, same
//! screen, so layouts are tested with ratatui's `TestBackend`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Clear, Dataset, Gauge, GraphType, Paragraph, Wrap};

use super::latency::{draw_latency_chart, draw_latency_table};
use super::layout::{self, Mode};
use super::state::DashboardState;

/// Key help shown with `?`.
pub const HELP: [(&str, &str); 6] = [
    (
        "q / Ctrl-C",
        "stop: close connections, write the report (exit 130)",
    ),
    ("p", "pause / resume sending (connections stay open)"),
    ("+ / -", "message rate +10% / -10% (recorded in the report)"),
    ("Tab", "cycle the charted latency metric"),
    ("?", "show / hide this help"),
    ("", "the dashboard redraws 10 times a second"),
];

pub(super) fn block<'a>(title: impl Into<std::borrow::Cow<'a, str>>) -> Block<'a> {
    Block::bordered().title(Span::styled(
        title,
        Style::new().add_modifier(Modifier::BOLD),
    ))
}

pub(super) fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub(super) fn bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / 1024.0 / 1024.0)
    } else if v >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// Draws the whole dashboard, in the layout its size allows
/// ([`layout::mode`]).
pub fn draw(f: &mut Frame, s: &DashboardState) {
    let area = f.area();
    match layout::mode(area) {
        Mode::Full => draw_full(f, area, s),
        Mode::Compact => super::compact::draw(f, area, s),
        Mode::TooSmall => super::compact::draw_too_small(f, area, s),
    }
    if s.show_help {
        draw_help(f, area);
    }
}

/// The key line at the bottom, as much of it as fits.
pub(super) fn draw_footer(f: &mut Frame, area: Rect) {
    let keys = ["q stop", "p pause", "+/- rate", "Tab metric", "? help"].map(String::from);
    f.render_widget(
        Paragraph::new(format!(
            " {}",
            layout::fit_parts(&keys, area.width.saturating_sub(1))
        ))
        .style(Style::new().fg(Color::DarkGray)),
        area,
    );
}

/// Every panel with both charts, from 100×24 up.
fn draw_full(f: &mut Frame, area: Rect, s: &DashboardState) {
    let big = area.height >= 40;
    // 100×24 is the smallest full layout: 3 + 7 + 8 + 5 + 1 rows.
    let [header, top, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(if big { 12 } else { 7 }),
        Constraint::Min(8),
        Constraint::Length(if big { 9 } else { 5 }),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, header, s);
    let [conns, throughput] =
        Layout::horizontal([Constraint::Length(34), Constraint::Min(20)]).areas(top);
    draw_connections(f, conns, s);
    draw_throughput(f, throughput, s);
    let [table, chart] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    draw_latency_table(f, table, s);
    draw_latency_chart(f, chart, s);
    let [errors, thresholds] = Layout::horizontal([
        if area.width >= 120 {
            Constraint::Percentage(50)
        } else {
            Constraint::Length(34)
        },
        Constraint::Min(20),
    ])
    .areas(bottom);
    draw_errors(f, errors, s);
    draw_thresholds(f, thresholds, s);
    draw_footer(f, footer);
}

/// What the header says: where the run is, in parts most important first
/// (phase, then pause and the live rate factor, then time).
pub(super) fn status_parts(s: &DashboardState) -> Vec<String> {
    let last = &s.now;
    let n = s.scenario.phases.len();
    let any_sent = s.history.iter().any(|p| p.sent_per_s > 0.0);
    let phase = match last.phase {
        Some(i) => format!(
            "{} {}/{}",
            s.scenario.env_secrets.redact(&s.scenario.phases[i].name),
            i + 1,
            n
        ),
        None if !any_sent => "connecting".into(),
        None => "draining".into(),
    };
    let planned = s.planned_s();
    let remaining = if last.phase.is_some() {
        (planned - last.load_s).max(0.0)
    } else {
        0.0
    };
    let mut parts = vec![phase];
    if last.paused {
        parts.push("PAUSED".into());
    }
    if (last.rate_factor - 1.0).abs() > 1e-9 {
        parts.push(format!("rate ×{:.2}", last.rate_factor));
    }
    parts.push(format!("{:.0}s elapsed", last.t_s));
    parts.push(format!("{remaining:.0}s left of {planned:.0}s"));
    parts
}

pub(super) fn draw_header(f: &mut Frame, area: Rect, s: &DashboardState) {
    let last = &s.now;
    let any_sent = s.history.iter().any(|p| p.sent_per_s > 0.0);
    let planned = s.planned_s();
    let status = layout::fit_parts(&status_parts(s), area.width.saturating_sub(2));
    let title = format!(
        " {} ",
        layout::ellipsize(
            &format!(
                "barrage · {} → {}",
                s.scenario.env_secrets.redact(&s.scenario.name),
                s.target
            ),
            area.width.saturating_sub(4) as usize
        )
    );
    let done = if last.phase.is_some() || !any_sent {
        last.load_s
    } else {
        planned
    };
    let ratio = if planned > 0.0 {
        (done / planned).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let gauge = Gauge::default()
        .block(block(title))
        .gauge_style(Style::new().fg(Color::Cyan))
        .ratio(ratio)
        .label(status);
    f.render_widget(gauge, area);
}

fn draw_connections(f: &mut Frame, area: Rect, s: &DashboardState) {
    let l = &s.now;
    // The run's connection counters, as the report counts them (setup and
    // the recorded phases); the rates are the last interval's.
    let c = &s.recorded.counters;
    // The count the running phase steers toward (`connections:` of a
    // phase, a search step's count).
    let target = s.target_connections();
    let open = Line::from(format!("open {:>7} / {target}", l.open));
    let rates = Line::from(format!(
        "opened {}/s  closed {}/s",
        rate(s.opening_rate),
        rate(s.closing_rate)
    ));
    let peak = format!("peak {}", l.peak_open);
    let fds = |sep| format!("fds {}{sep}{}", s.fds_open, s.fd_limit);
    let failed = Line::from(format!(
        "failed {}  closed by server {}",
        c.failed, c.closed_by_server
    ));
    let closed = Line::from(format!("closed by barrage {}", c.closed));
    // Five lines inside the small panel: peak and fds share one.
    let lines = if area.height >= 8 {
        vec![
            open,
            rates,
            Line::from(peak),
            failed,
            closed,
            Line::from(fds(" / ")),
        ]
    } else {
        vec![
            open,
            rates,
            Line::from(format!("{peak}  {}", fds("/"))),
            failed,
            closed,
        ]
    };
    f.render_widget(Paragraph::new(lines).block(block("Connections")), area);
}

fn draw_throughput(f: &mut Frame, area: Rect, s: &DashboardState) {
    let sent: Vec<(f64, f64)> = s.history.iter().map(|p| (p.t_s, p.sent_per_s)).collect();
    let recv: Vec<(f64, f64)> = s
        .history
        .iter()
        .map(|p| (p.t_s, p.received_per_s))
        .collect();
    let target: Vec<(f64, f64)> = s
        .history
        .iter()
        .filter_map(|p| Some((p.t_s, p.target?)))
        .collect();
    let last = s.history.last().cloned().unwrap_or_default();
    let y_max = sent
        .iter()
        .chain(&recv)
        .chain(&target)
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.1;
    let x_max = last.t_s.max(1.0);
    let mut title = format!(
        "Msgs/s  sent {}  recv {}",
        rate(last.sent_per_s),
        rate(last.received_per_s)
    );
    // Parts are added whole while they fit the border, the target rate
    // before the split of what was received, the bytes last.
    let room = area.width.saturating_sub(2) as usize;
    let fits = |title: &str, more: &[&str]| {
        Span::raw(title).width() + more.iter().map(|m| Span::raw(*m).width()).sum::<usize>() <= room
    };
    let target_part = last.target.map(|t| format!("  target {}", rate(t)));
    let target_part = target_part.as_deref().filter(|t| fits(&title, &[t]));
    // What was received, when it is not all replies.
    if last.deliveries_per_s > 0.0 {
        let other = (last.received_per_s - last.replies_per_s - last.deliveries_per_s).max(0.0);
        let split = format!(
            " (replies {} deliveries {} other {})",
            rate(last.replies_per_s),
            rate(last.deliveries_per_s),
            rate(other)
        );
        if fits(&title, &[&split, target_part.unwrap_or("")]) {
            title.push_str(&split);
        }
    }
    if let Some(t) = target_part {
        title.push_str(t);
    }
    let per_s = format!("  {}/s", bytes(last.bytes_per_s));
    if fits(&title, &[&per_s]) {
        title.push_str(&per_s);
    }
    let mut datasets = vec![
        Dataset::default()
            .name("sent")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Green))
            .data(&sent),
        Dataset::default()
            .name("recv")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Blue))
            .data(&recv),
    ];
    if !target.is_empty() {
        datasets.push(
            Dataset::default()
                .name("target")
                .marker(Marker::Dot)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(Color::DarkGray))
                .data(&target),
        );
    }
    let chart = Chart::new(datasets)
        .block(block(title))
        .x_axis(
            Axis::default()
                .bounds([0.0, x_max])
                .labels(["0s".to_string(), format!("{x_max:.0}s")]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels(["0".to_string(), rate(y_max)]),
        );
    f.render_widget(chart, area);
}

pub(super) fn draw_errors(f: &mut Frame, area: Rect, s: &DashboardState) {
    // Two kinds a line, so the panel fits in three lines on small screens;
    // close codes and the latest messages follow where there is room.
    let errors = s.errors();
    let mut lines: Vec<Line> = errors
        .chunks(2)
        .map(|pair| {
            let spans: Vec<Span> = pair
                .iter()
                .map(|(k, n)| {
                    let style = if *n > 0 {
                        Style::new().fg(Color::Red)
                    } else {
                        Style::new()
                    };
                    Span::styled(format!("{k:<9} {n:>5}  "), style)
                })
                .collect();
            Line::from(spans)
        })
        .collect();
    if let Some(codes) = close_codes(s) {
        lines.push(Line::from(codes));
    }
    for e in s.total.events.recent_errors.iter().rev() {
        lines.push(Line::styled(e.clone(), Style::new().fg(Color::DarkGray)));
    }
    f.render_widget(Paragraph::new(lines).block(block("Errors")), area);
}

/// One line a threshold. When they do not all fit, failing ones first,
/// then pending, then passing, and the title counts the rest; a line
/// too long for the panel loses its observed value, then the end of the
/// expression (marked `…`).
pub(super) fn draw_thresholds(f: &mut Frame, area: Rect, s: &DashboardState) {
    let room = area.height.saturating_sub(2) as usize;
    let inner = area.width.saturating_sub(2) as usize;
    let mark = |t: &super::state::LiveThreshold| {
        if t.pending {
            ("pending", Color::DarkGray)
        } else if t.pass {
            ("pass", Color::Green)
        } else {
            ("FAIL", Color::Red)
        }
    };
    let mut ts: Vec<&super::state::LiveThreshold> = s.thresholds.iter().collect();
    let mut more = None;
    if ts.len() > room {
        ts.sort_by_key(|t| match mark(t).0 {
            "FAIL" => 0,
            "pending" => 1,
            _ => 2,
        });
        let keep = room;
        let count = |m: &str| ts[keep..].iter().filter(|t| mark(t).0 == m).count();
        let counts: Vec<String> = ["FAIL", "pending", "pass"]
            .map(|m| (m, count(m)))
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| format!("{n} {m}"))
            .collect();
        more = Some(format!("+{} more: {}", ts.len() - keep, counts.join(", ")));
        ts.truncate(keep);
    }
    let lines: Vec<Line> = if s.thresholds.is_empty() {
        vec![Line::from("none in this scenario")]
    } else {
        ts.iter()
            .map(|t| {
                let (mark, color) = mark(t);
                let head = format!("{mark} ");
                let full = format!("{}  now {}", t.expr, t.observed);
                let body = if head.len() + Span::raw(full.as_str()).width() <= inner {
                    full
                } else {
                    layout::ellipsize(&t.expr, inner.saturating_sub(head.len()))
                };
                Line::from(vec![
                    Span::styled(head, Style::new().fg(color).add_modifier(Modifier::BOLD)),
                    Span::raw(body),
                ])
            })
            .collect()
    };
    let title = ["Thresholds".to_string()].into_iter().chain(more);
    let title = layout::fit_parts(&title.collect::<Vec<_>>(), area.width.saturating_sub(2));
    f.render_widget(Paragraph::new(lines).block(block(title)), area);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let w = area.width.min(70);
    // Lines wrap on narrow screens (at word ends, so a row more each).
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = HELP
        .iter()
        .map(
            |(k, v)| match (k.len().max(10) + 2 + v.chars().count()).div_ceil(inner) {
                1 => 1,
                n => n + 1,
            },
        )
        .sum();
    let h = (rows as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| Line::from(format!("{k:>10}  {v}")))
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block("Keys")),
        r,
    );
}

/// The close codes servers sent, counted (`close codes 1000×3 1011×1`),
/// when any came.
pub(super) fn close_codes(s: &DashboardState) -> Option<String> {
    let codes = &s.total.events.close_codes;
    (!codes.is_empty()).then(|| {
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        format!("close codes {}", codes.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{RunData, Second, StageData};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    const YAML: &str = r#"
name: churn
target: builtin
connections: { count: 100 }
phases:
  - { name: steady, duration: 10s, rate: 100/s }
"#;

    fn render(st: &DashboardState, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, st)).unwrap();
        let buf = term.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn connections_panel_shows_last_second_opens_and_closes() {
        let scenario = crate::scenario::parse("churn.yaml", YAML).unwrap();
        let mut st = DashboardState::new(scenario, "ws://127.0.0.1:9/".into(), 20_000);
        for (t, opened, closed, by_server) in [(1u64, 100, 0, 0), (2, 3, 4, 1)] {
            let mut d = RunData::new(&["default".to_string()], 1, 0);
            d.facts.load_started_ms = Some(0);
            let mut stage = StageData::default();
            (stage.counters.opened, stage.counters.closed) = (opened, closed);
            stage.counters.closed_by_server = by_server;
            d.timeline.push(Second {
                t_ms: t * 1000,
                interval_ms: 1000,
                phase: Some(0),
                open: 100,
                peak_open: 100,
                ..Second::default()
            });
            d.roles[0].stages[1] = stage;
            st.push(&d);
        }
        for (w, h) in [(80, 24), (160, 48)] {
            let screen = render(&st, w, h);
            for want in [
                "open     100 / 100",
                "opened 3/s  closed 5/s",
                "peak 100",
                "fds ",
                "failed 0  closed by server 1",
                "closed by barrage 4",
            ] {
                assert!(screen.contains(want), "{w}x{h}: no {want:?} in\n{screen}");
            }
        }
    }
}
