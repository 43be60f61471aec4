//! The dashboard's layout at the smallest and a large terminal size, drawn
//! from fixed snapshots into ratatui's TestBackend.

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
