//! Progress for runs without the dashboard (stdout not a terminal, CI,
//! `--no-tui`): an indicatif bar per phase on stderr (drawn only when stderr
//! is a terminal) and one plain line per snapshot (always, unless quiet).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::control::Control;
use crate::metrics::RunData;
use crate::report::table::fmt_ns;
use crate::scenario::{LatencyMetric, Scenario};

/// Formats one progress line for the newest `delta`, with `total` the run
/// so far (the delta included); `control` has what was set while the run
/// goes (a search step's rate and connection count).
pub fn line(scenario: &Scenario, total: &RunData, delta: &RunData, control: &Control) -> String {
    let Some(sec) = total.timeline.last() else {
        return String::new();
    };
    // As the report counts: setup and the recorded phases.
    let record: Vec<bool> = scenario.phases.iter().map(|p| p.record).collect();
    let so_far = total.recorded_counters(&record);
    let iv = delta.all();
    let phase = match sec.phase {
        Some(i) => format!(
            "{}{} {}/{}",
            scenario.env_secrets.redact(&scenario.phases[i].name),
            control
                .phase_rate(i)
                .map_or(String::new(), |r| format!(" at {r:.0}/s")),
            i + 1,
            scenario.phases.len()
        ),
        None if total.facts.load_started_ms.is_none() => "connecting".to_string(),
        None => "draining".to_string(),
    };
    let interval_s = delta.timeline.last().map_or(0, |s| s.interval_ms) as f64 / 1000.0;
    let per_s = |n: u64| {
        if interval_s > 0.0 {
            n as f64 / interval_s
        } else {
            0.0
        }
    };
    let lat = |m: LatencyMetric| {
        let h = iv.histogram(m);
        (!h.is_empty()).then(|| {
            format!(
                "{} p50 {} p99 {}",
                m.name(),
                fmt_ns(h.value_at_quantile(0.5) as f64),
                fmt_ns(h.value_at_quantile(0.99) as f64)
            )
        })
    };
    let latency: Vec<String> = [LatencyMetric::Rtt, LatencyMetric::Delivery]
        .into_iter()
        .filter_map(lat)
        .collect();
    let latency = if latency.is_empty() {
        "rtt -".to_string()
    } else {
        latency.join(" | ")
    };
    let c = &iv.counters;
    format!(
        "[{:>5.1}s] {phase} | open {}/{} failed {} | sent {:.0}/s recv {:.0}/s | {latency} | errors {}",
        sec.t_ms as f64 / 1000.0,
        sec.open,
        // The count the phase steers toward.
        sec.phase.map_or(scenario.connections.count, |i| control
            .phase_connections(i)
            .unwrap_or_else(|| scenario.phase_population(i).0)),
        so_far.failed,
        per_s(c.sent),
        per_s(c.received + c.delivered + c.unmatched),
        so_far.error_total()
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
    bar.set_prefix(format!(
        "{} {}/{}",
        scenario.env_secrets.redact(&p.name),
        i + 1,
        scenario.phases.len()
    ));
    bar
}

/// Shows progress until the channel closes. `quiet`: nothing at all.
/// Blocks: run it on a thread of its own (adding up the run so far must
/// not hold up the connections' worker threads).
pub fn print_lines(
    scenario: Scenario,
    mut rx: mpsc::UnboundedReceiver<Arc<RunData>>,
    quiet: bool,
    control: Arc<Control>,
) {
    let mut bar: Option<(usize, ProgressBar)> = None;
    let mut total = RunData::default();
    while let Some(delta) = rx.blocking_recv() {
        total.add(&delta);
        if quiet {
            continue;
        }
        let Some(sec) = total.timeline.last() else {
            continue;
        };
        let load_s = total
            .facts
            .load_started_ms
            .map_or(0.0, |l| sec.t_ms.saturating_sub(l) as f64 / 1000.0);
        if let Some(i) = sec.phase {
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
                b.set_position(((load_s - offset).max(0.0) * 1000.0) as u64);
            }
        }
        let text = line(&scenario, &total, &delta, &control);
        match &bar {
            Some((_, b)) => b.suspend(|| super::line(&text)),
            None => super::line(&text),
        }
    }
    if let Some((_, b)) = bar {
        b.finish_and_clear();
    }
}
