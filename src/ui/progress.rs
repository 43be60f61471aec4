//! The non-TTY progress: one line per snapshot to stderr.

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

/// Prints a line per snapshot until the channel closes (unless `quiet`).
pub async fn print_lines(
    scenario: Scenario,
    mut rx: mpsc::UnboundedReceiver<Snapshot>,
    quiet: bool,
) {
    while let Some(s) = rx.recv().await {
        if !quiet {
            eprintln!("{}", line(&scenario, &s));
        }
    }
}
