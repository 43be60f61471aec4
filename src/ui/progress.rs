//! Progress for runs without the dashboard (stdout not a terminal, CI,
//! `--no-tui`): an indicatif bar per phase on stderr (drawn only when stderr
//! is a terminal) and one plain line per snapshot (always, unless quiet).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::metrics::Snapshot;
use crate::report::table::fmt_ns;
use crate::scenario::Scenario;

/// Formats one progress line for `s`.
pub fn line(scenario: &Scenario, s: &Snapshot) -> String {
    let phase = match s.phase {
        Some(i) => format!(
            "{} {}/{}",
            scenario.phases[i].name,
            i + 1,
            scenario.phases.len()
        ),
        None if s.total_sent == 0 => "connecting".to_string(),
        None => "draining".to_string(),
    };
    let per_s = |n: u64| {
        if s.interval_s > 0.0 {
            n as f64 / s.interval_s
        } else {
            0.0
        }
    };
    let rtt = if s.rtt_count == 0 {
        "rtt -".to_string()
    } else {
        format!(
            "rtt p50 {} p99 {}",
            fmt_ns(s.rtt_p50_ns as f64),
            fmt_ns(s.rtt_p99_ns as f64)
        )
    };
    format!(
        "[{:>5.1}s] {phase} | open {}/{} failed {} | sent {:.0}/s recv {:.0}/s | {rtt} | errors {}",
        s.t_s,
        s.open,
        scenario.connections.count,
        s.failed,
        per_s(s.sent),
        per_s(s.received),
        s.total_error_count()
    )
}

fn phase_bar(scenario: &Scenario, i: usize) -> ProgressBar {
    let p = &scenario.phases[i];
    let bar = ProgressBar::with_draw_target(
        Some(p.duration.as_millis() as u64),
        ProgressDrawTarget::stderr_with_hz(4),
    );
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{} {}/{}", p.name, i + 1, scenario.phases.len()));
    bar
}

/// Shows progress until the channel closes. `quiet`: nothing at all.
pub async fn print_lines(
    scenario: Scenario,
    mut rx: mpsc::UnboundedReceiver<Snapshot>,
    quiet: bool,
) {
    let mut bar: Option<(usize, ProgressBar)> = None;
    while let Some(s) = rx.recv().await {
        if quiet {
            continue;
        }
        if let Some(i) = s.phase {
            if bar.as_ref().is_none_or(|(j, _)| *j != i) {
                if let Some((_, b)) = bar.take() {
                    b.finish_and_clear();
                }
                bar = Some((i, phase_bar(&scenario, i)));
            }
            if let Some((_, b)) = &bar {
                let offset: f64 = scenario.phases[..i]
                    .iter()
                    .map(|p| p.duration.as_secs_f64())
                    .sum();
                b.set_position(((s.load_s - offset).max(0.0) * 1000.0) as u64);
            }
        }
        let text = line(&scenario, &s);
        match &bar {
            Some((_, b)) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
}
