//! Evaluating thresholds on recorded data: at the end of a run (the
//! report), live (the dashboard), each tick (`abort_on_fail`) and on merged
//! reports. Always from histograms, never from averaged percentiles.

use hdrhistogram::Histogram;

use super::data::StageData;
use crate::scenario::{Counter, Stat, Threshold, ThresholdMetric};

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
    fn pending(why: &str) -> Self {
        Evaluation {
            observed: 0.0,
            observed_text: why.into(),
            pass: false,
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
    /// What the phase recorded, every role added.
    pub data: &'a StageData,
    /// Whether it is open-model (a numeric rate): its schedule is then
    /// `paced + not_sent`.
    pub open: bool,
    /// Seconds the phase ran.
    pub secs: f64,
    /// Whether it counts in the run's totals.
    pub record: bool,
}

/// What thresholds are evaluated against.
pub struct EvalContext<'a> {
    /// Setup stage and the recorded phases, every role added (connection
    /// counters are in the setup stage).
    pub recorded: &'a StageData,
    /// Every phase.
    pub phases: Vec<PhaseData<'a>>,
    /// Whether the run has ended: while it goes on, a threshold without a
    /// value yet, a phase-scoped one and a rate are `pending`; at the end,
    /// one without samples fails (nothing was shown to hold).
    pub ended: bool,
}

/// The schedule and the paced sends of `phases` (open-model ones only).
pub fn schedule<'a>(phases: impl Iterator<Item = &'a PhaseData<'a>>) -> (u64, u64) {
    phases
        .filter(|p| p.open)
        .fold((0, 0), |(planned, paced), p| {
            let c = &p.data.counters;
            (
                planned.saturating_add(c.paced.saturating_add(c.not_sent)),
                paced.saturating_add(c.paced),
            )
        })
}

/// Evaluates one threshold.
pub fn evaluate(t: &Threshold, ctx: &EvalContext<'_>) -> Evaluation {
    let scoped = match &t.phase {
        None => None,
        Some(_) if !ctx.ended => return Evaluation::pending("at the end of the run"),
        Some(name) => match ctx.phases.iter().find(|p| p.name == name) {
            Some(p) => Some(p),
            None => return Evaluation::pending("no such phase ran"),
        },
    };
    let data = scoped.map_or(ctx.recorded, |p| p.data);
    let c = &data.counters;
    let (observed, text) = match t.metric {
        ThresholdMetric::Latency { metric, stat } => match stat_ns(data.histogram(metric), stat) {
            Some(ns) => (ns / 1000.0, fmt_ns(ns)),
            None => (f64::NAN, "no samples".to_string()),
        },
        ThresholdMetric::ErrorRate => {
            let ops = c.attempted.saturating_add(c.sent).saturating_add(c.expects);
            if ops == 0 {
                (f64::NAN, "no operations".to_string())
            } else {
                let rate = c.error_total() as f64 / ops as f64;
                (rate, format!("{:.3}%", rate * 100.0))
            }
        }
        ThresholdMetric::Count(Counter::SampleRate(m)) => {
            if !ctx.ended {
                return Evaluation::pending("at the end of the run");
            }
            let secs: f64 = match scoped {
                Some(p) => p.secs,
                None => ctx.phases.iter().filter(|p| p.record).map(|p| p.secs).sum(),
            };
            if secs <= 0.0 {
                (f64::NAN, "no phase ran".to_string())
            } else {
                let rate = data.histogram(m).len() as f64 / secs;
                (rate, format!("{rate:.1}/s"))
            }
        }
        ThresholdMetric::Count(counter) => {
            let n = match counter {
                Counter::Errors => c.error_total(),
                Counter::ErrorsOf(kind) => c.errors_of(kind),
                Counter::ConnectionsFailed => c.failed,
                Counter::ConnectionsOpened => c.opened,
                Counter::MessagesSent => c.sent,
                Counter::MessagesReceived => c.received,
                Counter::MessagesPaced => c.paced,
                Counter::Sequence(k) => c.sequence_count(k),
                Counter::Samples(m) | Counter::SampleRate(m) => data.histogram(m).len(),
            };
            (n as f64, n.to_string())
        }
        ThresholdMetric::SequenceRate(k) => {
            // Every number due: those that came, and those that never did.
            let due = c.sequenced.saturating_add(c.lost);
            if due == 0 {
                (f64::NAN, "no sequenced messages".to_string())
            } else {
                let rate = c.sequence_count(k) as f64 / due as f64;
                (rate, format!("{:.3}%", rate * 100.0))
            }
        }
        ThresholdMetric::DeliveryRatio => {
            if c.fanout_expected == 0 {
                (f64::NAN, "no fan-out expected".to_string())
            } else {
                let ratio = c.delivered as f64 / c.fanout_expected as f64;
                (ratio, format!("{:.2}%", ratio * 100.0))
            }
        }
        ThresholdMetric::ThroughputRatio => {
            if !ctx.ended {
                return Evaluation::pending("at the end of the run");
            }
            let (planned, paced) = match scoped {
                Some(p) => schedule(std::iter::once(p)),
                None => schedule(ctx.phases.iter().filter(|p| p.record)),
            };
            if planned > 0 {
                let ratio = paced as f64 / planned as f64;
                (ratio, format!("{:.1}%", ratio * 100.0))
            } else {
                (f64::NAN, "no open-model schedule".to_string())
            }
        }
    };
    finish(t, ctx, observed, text)
}

/// The evaluation of `observed` (NaN: no value).
fn finish(t: &Threshold, ctx: &EvalContext<'_>, observed: f64, text: String) -> Evaluation {
    if observed.is_nan() {
        return if ctx.ended {
            Evaluation {
                observed: 0.0,
                observed_text: text,
                pass: false,
                pending: false,
            }
        } else {
            Evaluation::pending(&text)
        };
    }
    let in_limit_units = match t.metric {
        ThresholdMetric::Latency { .. } => observed * 1000.0,
        _ => observed,
    };
    Evaluation {
        observed,
        observed_text: text,
        pass: t.holds(in_limit_units),
        pending: false,
    }
}
