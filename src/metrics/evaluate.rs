//! Evaluating thresholds on recorded data: at the end of a run (the
//! report), live (the dashboard), each tick (`abort_on_fail`) and on merged
//! reports. Always from histograms, never from averaged percentiles.

use hdrhistogram::Histogram;

use super::data::StageData;
use crate::scenario::{Counter, ERROR_KINDS, Stat, Threshold, ThresholdMetric};

/// A duration in ns with a unit a person reads easily: `850ns`, `412µs`,
/// `3.21ms`, `1.50s`.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0}ns")
    } else if ns < 1_000_000.0 {
        format!("{:.0}µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The observed value: µs for latency statistics, a fraction for
    /// `errors.rate` and `throughput.ratio`, a number for counts.
    pub observed: f64,
    /// The same with its unit, for people.
    pub observed_text: String,
    /// Whether the threshold holds.
    pub pass: bool,
    /// Not decidable yet (phase-scoped while the run goes on).
    pub pending: bool,
}

impl Evaluation {
    fn pending() -> Self {
        Evaluation {
            observed: 0.0,
            observed_text: "at the end of the run".into(),
            pass: true,
            pending: true,
        }
    }
}

/// The value of `stat` on `h`, in ns; `None` without samples.
pub fn stat_ns(h: &Histogram<u64>, stat: Stat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::Min => h.min() as f64,
        Stat::Max => h.max() as f64,
        Stat::Mean => h.mean(),
        Stat::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
    })
}

/// One phase's data, for phase-scoped thresholds and `throughput.ratio`.
pub struct PhaseData<'a> {
    /// Phase name.
    pub name: &'a str,
    /// What the phase recorded.
    pub data: &'a StageData,
    /// Planned total messages per second, `None` for `rate: max`.
    pub target: Option<f64>,
    /// Seconds the phase ran.
    pub secs: f64,
    /// Whether it counts in the run's totals.
    pub record: bool,
}

/// What thresholds are evaluated against.
pub struct EvalContext<'a> {
    /// Setup stage and the recorded phases, added.
    pub recorded: &'a StageData,
    /// Every phase; empty while a run is still going (phase-scoped
    /// thresholds then wait for the end).
    pub phases: Vec<PhaseData<'a>>,
    /// Connection attempts.
    pub attempted: u64,
    /// Connections opened.
    pub opened: u64,
    /// Connection attempts failed.
    pub failed: u64,
}

/// Evaluates one threshold. A latency threshold with no samples fails
/// (nothing was shown to hold).
pub fn evaluate(t: &Threshold, ctx: &EvalContext<'_>) -> Evaluation {
    let scoped = match &t.phase {
        None => None,
        Some(name) => match ctx.phases.iter().find(|p| p.name == name) {
            Some(p) => Some(p),
            None => {
                return Evaluation::pending();
            }
        },
    };
    let data = scoped.map_or(ctx.recorded, |p| p.data);
    let (observed, text) = match t.metric {
        ThresholdMetric::Latency { metric, stat } => match stat_ns(data.histogram(metric), stat) {
            Some(ns) => (ns / 1000.0, fmt_ns(ns)),
            None => (f64::NAN, "no samples".to_string()),
        },
        ThresholdMetric::ErrorRate => {
            let attempts = if scoped.is_some() { 0 } else { ctx.attempted };
            let rate = data.error_total() as f64 / (attempts + data.sent).max(1) as f64;
            (rate, format!("{:.3}%", rate * 100.0))
        }
        ThresholdMetric::Count(c) => {
            let n = match c {
                Counter::Errors => data.error_total(),
                Counter::ErrorsOf(kind) => ERROR_KINDS
                    .iter()
                    .position(|k| *k == kind)
                    .map_or(0, |i| data.errors[i]),
                Counter::ConnectionsFailed => ctx.failed,
                Counter::ConnectionsOpened => ctx.opened,
                Counter::MessagesSent => data.sent,
                Counter::MessagesReceived => data.received,
                Counter::Samples(m) => data.histogram(m).len(),
                Counter::SampleRate(m) => {
                    let secs: f64 = match scoped {
                        Some(p) => p.secs,
                        None => ctx.phases.iter().filter(|p| p.record).map(|p| p.secs).sum(),
                    };
                    if secs <= 0.0 {
                        return Evaluation::pending();
                    }
                    let rate = data.histogram(m).len() as f64 / secs;
                    return Evaluation {
                        observed: rate,
                        observed_text: format!("{rate:.1}/s"),
                        pass: t.holds(rate),
                        pending: false,
                    };
                }
            };
            (n as f64, n.to_string())
        }
        ThresholdMetric::ThroughputRatio => {
            let phases: Vec<&PhaseData> = match scoped {
                Some(p) => vec![p],
                None => ctx.phases.iter().filter(|p| p.record).collect(),
            };
            let planned: f64 = phases.iter().filter_map(|p| Some(p.target? * p.secs)).sum();
            let sent: u64 = phases
                .iter()
                .filter(|p| p.target.is_some())
                .map(|p| p.data.sent)
                .sum();
            if planned > 0.0 {
                let ratio = sent as f64 / planned;
                (ratio, format!("{:.1}%", ratio * 100.0))
            } else if ctx.phases.is_empty() {
                return Evaluation::pending();
            } else {
                (f64::NAN, "no open-model phase".to_string())
            }
        }
    };
    let in_limit_units = match t.metric {
        ThresholdMetric::Latency { .. } => observed * 1000.0,
        _ => observed,
    };
    // Without data a threshold fails at the end of a run (nothing was shown
    // to hold), but while the run goes on it is only not decided yet.
    let undecided = observed.is_nan() && ctx.phases.is_empty();
    Evaluation {
        observed: if observed.is_nan() { 0.0 } else { observed },
        observed_text: text,
        pass: undecided || (!observed.is_nan() && t.holds(in_limit_units)),
        pending: undecided,
    }
}
