//! The dashboard's layout at the smallest, the common 80×24 and a large
//! terminal size, drawn from fixed snapshots into ratatui's TestBackend.

use barrage::metrics::{ErrorKind, RunData, Second, StageData};
use barrage::scenario::{LatencyMetric, parse};
use barrage::ui::dashboard::state::DashboardState;
use barrage::ui::dashboard::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const YAML: &str = r#"
name: layout
target: builtin
connections: { count: 100 }
phases:
  - { name: warmup, duration: 2s, rate: 1000/s, record: false }
  - { name: steady, duration: 10s, rate: 2000/s }
thresholds: [ "rtt.p99 < 50ms", "rtt.p50 < 1ms" ]
"#;

/// One second's delta of the layout run: `d` in phase `steady` at second `t`.
fn delta(t: u64, d: StageData) -> RunData {
    let mut r = RunData::new(&["default".to_string()], 2, 0);
    r.facts.load_started_ms = Some(0);
    r.facts.elapsed_ms = t * 1000;
    r.timeline.push(Second {
        t_ms: t * 1000,
        interval_ms: 1000,
        phase: Some(1),
        open: 100,
        peak_open: 100,
        recorded: d.counters,
        ..Second::default()
    });
    r.roles[0].stages[2] = d;
    r
}

/// Five seconds of a steady run: 100 connections, 2,000 msg/s, rtt spread
/// evenly over 1.000–1.999 ms.
fn state_of(yaml: &str) -> DashboardState {
    let scenario = parse("layout.yaml", yaml).unwrap();
    let mut st = DashboardState::new(scenario, "ws://127.0.0.1:9/".into(), 20_000);
    for t in 1..=5u64 {
        let mut iv = StageData::default();
        for i in 0..2000u64 {
            iv.record(LatencyMetric::Rtt, 1_000_000 + (i % 1000) * 1000);
        }
        let c = &mut iv.counters;
        (c.sent, c.received, c.replies) = (2000, 2000, 2000);
        c.bytes_sent = 128_000;
        c.bytes_received = 128_000;
        let mut d = delta(t, iv);
        if t == 1 {
            let setup = &mut d.roles[0].stages[0].counters;
            (setup.attempted, setup.opened) = (100, 100);
        }
        st.push(&d);
    }
    st
}

fn state() -> DashboardState {
    state_of(YAML)
}

fn render(st: &DashboardState, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, st)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_essentials(screen: &str) {
    for want in [
        "barrage · layout → ws://127.0.0.1:9/",
        "steady 2/2",
        "Connections",
        "open     100 / 100",
        "Msgs/s",
        "sent 2000",
        "recv 2000",
        "target 2000",
        "Latency",
        "rtt 1s",
        "rtt all",
        "1.50ms",
        "Errors",
        "Thresholds",
        "pass rtt.p99 < 50ms",
        "FAIL rtt.p50 < 1ms",
    ] {
        assert!(screen.contains(want), "missing {want:?} in\n{screen}");
    }
}

#[test]
fn small_terminal_shows_the_essentials() {
    let screen = render(&state(), 80, 24);
    // The throughput figures as text, not in a chart's title.
    for want in [
        "sent 2000/s",
        "recv 2000/s",
        "target 2000/s",
        "bytes 250.0 KiB/s",
    ] {
        assert!(screen.contains(want), "missing {want:?} in\n{screen}");
    }
    assert_essentials(&screen);
    // Every line is exactly the terminal width: nothing spills over.
    assert!(screen.lines().all(|l| l.chars().count() == 80));
}

#[test]
fn large_terminal_uses_the_room() {
    let st = state();
    let screen = render(&st, 160, 48);
    assert_essentials(&screen);
    // Room for the whole latency table: p99.9 and max columns.
    assert!(screen.contains("p99.9"), "{screen}");
    assert!(
        screen.contains("2.00ms") || screen.contains("1.99ms"),
        "{screen}"
    );
    // All five error kinds are listed.
    for k in ["connect", "handshake", "timeout", "protocol", "closed"] {
        assert!(screen.contains(k), "{k} in\n{screen}");
    }
}

#[test]
fn errors_panel_shows_close_codes_and_latest_messages() {
    let mut st = state();
    let mut d = StageData::default();
    d.counters.errors[ErrorKind::Closed as usize] = 3;
    let mut last = delta(6, d);
    last.events.close_codes.insert(1001, 3);
    last.events
        .recent_errors
        .push_back("closed: the server sent close code 1001".into());
    st.push(&last);
    let screen = render(&st, 160, 48);
    assert!(screen.contains("close codes 1001×3"), "{screen}");
    assert!(
        screen.contains("closed: the server sent close code 1001"),
        "{screen}"
    );
    assert!(screen.contains("closed        3"), "{screen}");
}

#[test]
fn keys_change_controls_and_view() {
    use barrage::control::Control;
    use barrage::ui::dashboard::{Action, action_for, apply};
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    let mut st = state();
    let control = Control::default();
    let cancel = tokio_util::sync::CancellationToken::new();
    let key = |c| action_for(KeyCode::Char(c), KeyModifiers::NONE).unwrap();
    apply(key('+'), &mut st, &control, &cancel);
    assert!((control.factor() - 1.1).abs() < 1e-9);
    let screen = render(&st, 160, 48);
    assert!(screen.contains("rate ×1.10"), "{screen}");
    apply(key('p'), &mut st, &control, &cancel);
    assert!(control.paused());
    assert!(render(&st, 160, 48).contains("PAUSED"));
    apply(Action::NextMetric, &mut st, &control, &cancel);
    // Tab cycles through the metrics with samples: here only rtt has any.
    let s = render(&st, 160, 48);
    assert!(s.contains("rtt p50/p99"), "{s}");
    apply(key('?'), &mut st, &control, &cancel);
    assert!(render(&st, 160, 48).contains("pause / resume sending"));
    assert!(!cancel.is_cancelled());
    apply(
        action_for(KeyCode::Char('c'), KeyModifiers::CONTROL).unwrap(),
        &mut st,
        &control,
        &cancel,
    );
    assert!(cancel.is_cancelled());
}

/// Case 10 of the one-run-data issue: a threshold with no samples yet, one
/// scoped to a phase and a rate are `pending` on the dashboard, never `pass`.
#[test]
fn case_10_dashboard_shows_pending_for_thresholds_without_a_value_yet() {
    let yaml = YAML.replace(
        r#"thresholds: [ "rtt.p99 < 50ms", "rtt.p50 < 1ms" ]"#,
        r#"thresholds: [ "delivery.p99 < 10ms", "steady: rtt.p99 < 50ms", "throughput.ratio > 99%", "rtt.p99 < 50ms" ]"#,
    );
    let st = state_of(&yaml);
    let screen = render(&st, 160, 48);
    for t in [
        "delivery.p99 < 10ms",
        "steady: rtt.p99 < 50ms",
        "throughput.ratio > 99%",
    ] {
        let line = screen
            .lines()
            .find(|l| l.contains(t))
            .unwrap_or_else(|| panic!("{t} in\n{screen}"));
        assert!(line.contains("pending"), "{t} is not pending: {line}");
        assert!(!line.contains("pass"), "{t} shows pass: {line}");
    }
    assert!(screen.contains("pass rtt.p99 < 50ms"), "{screen}");
}

/// A push run: deliveries, no replies. The chart starts on the metric a
/// threshold names (delivery), the latency table has its rows, the
/// throughput title splits what was received, and Tab reaches only
/// metrics with samples.
#[test]
fn a_push_run_charts_delivery_and_splits_what_was_received() {
    use barrage::control::Control;
    use barrage::ui::dashboard::{Action, apply};
    let yaml = YAML.replace(
        r#"thresholds: [ "rtt.p99 < 50ms", "rtt.p50 < 1ms" ]"#,
        r#"thresholds: [ "errors.rate < 1%", "delivery.p99 < 10ms" ]"#,
    );
    let scenario = parse("layout.yaml", &yaml).unwrap();
    let mut st = DashboardState::new(scenario, "ws://127.0.0.1:9/".into(), 20_000);
    for t in 1..=3u64 {
        let mut iv = StageData::default();
        for i in 0..3000u64 {
            iv.record(LatencyMetric::Delivery, 500_000 + i * 100);
        }
        iv.record(LatencyMetric::FirstMessage, 2_000_000);
        (iv.counters.delivered, iv.counters.unmatched) = (3000, 10);
        st.push(&delta(t, iv));
    }
    let screen = render(&st, 160, 48);
    assert!(screen.contains("delivery p50/p99"), "{screen}");
    assert!(
        screen.contains("recv 3010 (replies 0 deliveries 3000 other 10)"),
        "{screen}"
    );
    assert!(screen.contains("delivery 1s"), "{screen}");
    assert!(screen.contains("first_message"), "{screen}");
    let (control, cancel) = (
        Control::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    apply(Action::NextMetric, &mut st, &control, &cancel);
    assert!(render(&st, 160, 48).contains("first_message p50/p99"));
    apply(Action::NextMetric, &mut st, &control, &cancel);
    assert!(render(&st, 160, 48).contains("delivery p50/p99"));
}

/// The layout run with the latency metrics of a builtin run: rtt and
/// service of the messages, send_lag, connect and handshake of setup.
fn builtin_like_state(first_message: bool) -> DashboardState {
    let scenario = parse("layout.yaml", YAML).unwrap();
    let mut st = DashboardState::new(scenario, "ws://127.0.0.1:9/".into(), 20_000);
    for t in 1..=3u64 {
        let mut iv = StageData::default();
        for i in 0..1000u64 {
            iv.record(LatencyMetric::Rtt, 1_000_000 + i * 1000);
            iv.record(LatencyMetric::Service, 900_000 + i * 1000);
            iv.record(LatencyMetric::SendLag, 20_000 + i * 10);
            iv.record(LatencyMetric::Handshake, 300_000 + i * 100);
            iv.record(LatencyMetric::Connect, 50_000 + i * 10);
            if first_message {
                iv.record(LatencyMetric::FirstMessage, 2_000_000);
            }
        }
        let c = &mut iv.counters;
        (c.sent, c.received, c.replies) = (2000, 2000, 2000);
        st.push(&delta(t, iv));
    }
    st
}

/// The line holding `label` as a whole table cell (a border or a space
/// each side of it).
fn row_of<'a>(screen: &'a str, label: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(&format!("│{label} ")))
        .unwrap_or_else(|| panic!("no whole {label:?} cell in\n{screen}"))
}

/// Issue 19: at 80×24 the latency rows were labelled `send_la` and
/// `handsha`, the last second and the whole run alike. Now the charts give
/// way to the figures, the table spans the width with whole labels, and
/// the metrics that do not fit are counted, not cut.
#[test]
fn at_80x24_every_latency_label_is_whole_and_distinct() {
    let st = builtin_like_state(false);
    let screen = render(&st, 80, 24);
    assert!(screen.lines().all(|l| l.chars().count() == 80), "{screen}");
    // rtt (charted, and named by the thresholds), then send_lag and
    // handshake; service and connect are counted in the title.
    let mut rows = Vec::new();
    for m in ["rtt", "send_lag", "handshake"] {
        let last = row_of(&screen, &format!("{m} 1s"));
        let all = row_of(&screen, &format!("{m} all"));
        assert_ne!(last, all);
        rows.extend([last, all]);
    }
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 6, "{screen}");
    assert!(screen.contains("+2 more (Tab)"), "{screen}");
    for cut in ["send_la ", "handsha ", "send_la│", "handsha│"] {
        assert!(!screen.contains(cut), "{cut:?} in\n{screen}");
    }
    // Every stat column, whole, and the values under them.
    let header = row_of(&screen, "metric");
    for h in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(header.contains(&format!(" {h} ")), "{h} in {header}");
    }
    assert!(row_of(&screen, "rtt all").contains(" 1.50ms "), "{screen}");
    assert!(
        row_of(&screen, "send_lag 1s").contains(" 25µs "),
        "{screen}"
    );
    // Whole figures in the other panels.
    for want in [
        "steady 2/2",
        "open     100 / 100",
        "failed 0  closed by server 0",
        "opened 0/s  closed 0/s",
        "sent 2000/s",
        "recv 2000/s",
        "target 2000/s",
        "total 0",
        "pass rtt.p99 < 50ms  now ",
        "FAIL rtt.p50 < 1ms  now 1.50ms",
        "q stop  p pause  +/- rate  Tab metric  ? help",
    ] {
        assert!(screen.contains(want), "missing {want:?} in\n{screen}");
    }
    // No chart at this size: no axis labels.
    assert!(!screen.contains("p50/p99"), "{screen}");
}

/// Tab charts the next metric on a wide screen; on a small one, where the
/// chart is left out, the same key brings that metric into the table.
#[test]
fn tab_brings_a_hidden_metric_into_the_small_table() {
    use barrage::control::Control;
    use barrage::ui::dashboard::{Action, apply};
    let mut st = builtin_like_state(false);
    assert!(!render(&st, 80, 24).contains("connect 1s"));
    let (control, cancel) = (
        Control::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    // rtt → service → connect.
    apply(Action::NextMetric, &mut st, &control, &cancel);
    apply(Action::NextMetric, &mut st, &control, &cancel);
    let screen = render(&st, 80, 24);
    row_of(&screen, "connect 1s");
    row_of(&screen, "connect all");
    row_of(&screen, "rtt all");
}

/// Narrower than the full names need: short names, explained in a legend
/// on the table's lower border.
#[test]
fn a_narrow_table_abbreviates_names_with_a_legend() {
    let st = builtin_like_state(true);
    let screen = render(&st, 60, 24);
    assert!(screen.lines().all(|l| l.chars().count() == 60), "{screen}");
    for label in [
        "rtt 1s",
        "rtt all",
        "lag 1s",
        "lag all",
        "first 1s",
        "first all",
    ] {
        row_of(&screen, label);
    }
    assert!(
        screen.contains("lag=send_lag first=first_message"),
        "{screen}"
    );
}

/// Every size from the smallest supported up draws without panicking,
/// never cuts a latency label, and keeps the verdict and rates on screen;
/// below it, a summary says the terminal is too small.
#[test]
fn every_size_draws_whole_labels_or_says_it_is_too_small() {
    let st = builtin_like_state(true);
    for w in (60..=130).step_by(7) {
        for h in (15..=50).step_by(3) {
            let screen = render(&st, w, h);
            for (name, cut) in [("send_lag", "send_l"), ("handshake", "handsh")] {
                let n_cut = screen.matches(cut).count();
                assert_eq!(n_cut, screen.matches(name).count(), "{w}x{h}:\n{screen}");
            }
            row_of(&screen, "rtt 1s");
            row_of(&screen, "rtt all");
            assert!(screen.contains("sent 2000"), "{w}x{h}:\n{screen}");
            assert!(screen.contains("FAIL rtt.p50 < 1ms"), "{w}x{h}:\n{screen}");
            assert!(!screen.contains("too small"), "{w}x{h}:\n{screen}");
        }
    }
    for (w, h) in [(59, 24), (80, 14), (40, 10), (20, 3), (1, 1)] {
        let screen = render(&st, w, h);
        assert!(screen.lines().all(|l| l.chars().count() == w as usize));
        if h >= 6 && w >= 40 {
            for want in [
                &format!("terminal {w}×{h} too small"),
                "steady 2/2",
                "thresholds 1 FAIL 1 pass",
                "sent 2000/s",
                "rtt p99 1s",
                "q stop",
            ] {
                assert!(screen.contains(want), "{w}x{h}: no {want:?} in\n{screen}");
            }
        }
    }
}
