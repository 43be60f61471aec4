//! Builds a [`Report`] from a run's measurements, evaluating the thresholds
//! on the merged histograms (never on averaged percentiles).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::model::*;
use super::table::fmt_ns;
use crate::engine::RunResult;
use crate::metrics::{ErrorKind, StageData, encode_histogram};
use crate::scenario::{
    Counter, ERROR_KINDS, LatencyMetric, PhaseRate, Scenario, Stat, Threshold, ThresholdMetric,
};

/// What a report is built from.
pub struct BuildInput<'a> {
    /// The scenario as run.
    pub scenario: &'a Scenario,
    /// Path of the scenario file, if any.
    pub file: Option<String>,
    /// The URL actually connected to.
    pub target: String,
    /// The scenario file's text, if any.
    pub source: Option<String>,
    /// The measurements.
    pub result: &'a RunResult,
}

/// send_lag p99 above which an open-model phase counts as saturated.
pub const SATURATION_LAG_NS: u64 = 10_000_000;
/// Share of the target rate below which an open-model phase counts as saturated.
pub const SATURATION_RATE: f64 = 0.99;

/// Summarises a histogram of nanosecond values.
pub fn summarize(h: &Histogram<u64>) -> MetricSummary {
    let us = |ns: u64| ns as f64 / 1000.0;
    if h.is_empty() {
        return MetricSummary {
            histogram: encode_histogram(h),
            ..MetricSummary::default()
        };
    }
    MetricSummary {
        count: h.len(),
        min_us: us(h.min()),
        mean_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p90_us: us(h.value_at_quantile(0.90)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        histogram: encode_histogram(h),
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
pub fn evaluate(t: &Threshold, ctx: &EvalContext<'_>) -> ThresholdResult {
    let scoped = match &t.phase {
        None => None,
        Some(name) => match ctx.phases.iter().find(|p| p.name == name) {
            Some(p) => Some(p),
            None => {
                return ThresholdResult {
                    expr: t.expr.clone(),
                    observed: 0.0,
                    observed_text: "at the end of the run".into(),
                    pass: true,
                };
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
                return ThresholdResult {
                    expr: t.expr.clone(),
                    observed: 0.0,
                    observed_text: "at the end of the run".into(),
                    pass: true,
                };
            } else {
                (f64::NAN, "no open-model phase".to_string())
            }
        }
    };
    let in_limit_units = match t.metric {
        ThresholdMetric::Latency { .. } => observed * 1000.0,
        _ => observed,
    };
    ThresholdResult {
        expr: t.expr.clone(),
        observed: if observed.is_nan() { 0.0 } else { observed },
        observed_text: text,
        pass: !observed.is_nan() && t.holds(in_limit_units),
    }
}

fn metric_map(d: &StageData, metrics: &[LatencyMetric]) -> BTreeMap<String, MetricSummary> {
    metrics
        .iter()
        .map(|m| (m.name().to_string(), summarize(d.histogram(*m))))
        .collect()
}

/// Builds the report of a finished run.
pub fn build(input: &BuildInput<'_>) -> Report {
    let s = input.scenario;
    let r = input.result;
    // Setup stage plus the phases marked `record`.
    let mut recorded = r.totals.stages[0].clone();
    for (i, p) in s.phases.iter().enumerate() {
        if p.record {
            recorded.add(&r.totals.stages[i + 1]);
        }
    }
    let all = r.totals.total();
    let per_phase = [
        LatencyMetric::Rtt,
        LatencyMetric::Service,
        LatencyMetric::SendLag,
    ];
    let phases = s
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let d = &r.totals.stages[i + 1];
            let secs = r.phase_elapsed(&s.phases, i).as_secs_f64();
            let achieved = if secs > 0.0 {
                d.sent as f64 / secs
            } else {
                0.0
            };
            let lag = d.histogram(LatencyMetric::SendLag);
            let saturated = match p.rate {
                PhaseRate::PerSecond(rate) => {
                    (!lag.is_empty() && lag.value_at_quantile(0.99) > SATURATION_LAG_NS)
                        || (secs > 0.0 && achieved < rate.per_second * SATURATION_RATE)
                }
                PhaseRate::Max => false,
            };
            PhaseReport {
                name: p.name.clone(),
                duration_s: secs,
                target_rate: match p.rate {
                    PhaseRate::PerSecond(rate) => Some(rate.per_second),
                    PhaseRate::Max => None,
                },
                achieved_rate: if secs > 0.0 {
                    d.sent as f64 / secs
                } else {
                    0.0
                },
                record: p.record,
                messages: MessageTotals {
                    sent: d.sent,
                    received: d.received,
                    unmatched: d.unmatched,
                    not_sent: d.not_sent,
                },
                errors: d.error_total(),
                errors_by_kind: ErrorKind::ALL
                    .iter()
                    .map(|k| (k.name().to_string(), d.errors[*k as usize]))
                    .collect(),
                saturated,
                metrics: metric_map(d, &per_phase),
            }
        })
        .collect::<Vec<PhaseReport>>();
    let last = &r.last;
    let phase_secs: Vec<f64> = (0..s.phases.len())
        .map(|i| r.phase_elapsed(&s.phases, i).as_secs_f64())
        .collect();
    let ctx = EvalContext {
        recorded: &recorded,
        phases: s
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| PhaseData {
                name: &p.name,
                data: &r.totals.stages[i + 1],
                target: match p.rate {
                    PhaseRate::PerSecond(rate) => Some(rate.per_second),
                    PhaseRate::Max => None,
                },
                secs: phase_secs[i],
                record: p.record,
            })
            .collect(),
        attempted: last.attempted,
        opened: last.opened,
        failed: last.failed,
    };
    let saturated = phases.iter().any(|p| p.record && p.saturated);
    let ramp_s = r.load_started.unwrap_or(r.elapsed).as_secs_f64();
    let thresholds: Vec<ThresholdResult> = s.thresholds.iter().map(|t| evaluate(t, &ctx)).collect();
    let verdict = if thresholds.iter().all(|t| t.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let timeline = r
        .timeline
        .iter()
        .map(|p| TimelinePoint {
            t_s: (p.t_s * 1000.0).round() / 1000.0,
            phase: p.phase.map(|i| s.phases[i].name.clone()),
            open: p.open,
            sent: p.sent,
            received: p.received,
            errors: p.errors,
            rtt_p50_us: p.rtt_p50_ns as f64 / 1000.0,
            rtt_p99_us: p.rtt_p99_ns as f64 / 1000.0,
            histograms: p.encoded.iter().cloned().collect(),
            target_rate: p.phase.and_then(|i| match s.phases[i].rate {
                PhaseRate::PerSecond(_) if p.paused => Some(0.0),
                PhaseRate::PerSecond(rate) => Some(rate.per_second * p.rate_factor),
                PhaseRate::Max => None,
            }),
        })
        .collect();
    let rate_changes = r
        .rate_changes
        .iter()
        .map(|c| RateChangeReport {
            t_s: c.at.saturating_duration_since(r.epoch).as_secs_f64(),
            factor: c.factor,
            paused: c.paused,
        })
        .collect();
    Report {
        schema: SCHEMA.to_string(),
        barrage_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: ScenarioInfo {
            name: s.name.clone(),
            file: input.file.clone(),
            target: input.target.clone(),
            connections: s.connections.count,
            connection_rate: s.connections.rate.per_second,
            phases: s
                .phases
                .iter()
                .map(|p| PhasePlan {
                    name: p.name.clone(),
                    duration_s: p.duration.as_secs_f64(),
                    rate: match p.rate {
                        PhaseRate::PerSecond(rate) => Some(rate.per_second),
                        PhaseRate::Max => None,
                    },
                    inflight: p.inflight,
                    record: p.record,
                })
                .collect(),
            source: input.source.clone(),
        },
        started_at: humantime::format_rfc3339_seconds(r.started_at).to_string(),
        duration_s: r.elapsed.as_secs_f64(),
        verdict,
        interrupted: r.interrupted,
        saturated,
        totals: Totals {
            connections: ConnectionTotals {
                attempted: last.attempted,
                opened: last.opened,
                failed: last.failed,
                peak_open: last.peak_open,
                closed_by_server: last.closed_by_server,
                open_rate: if ramp_s > 0.0 {
                    last.opened as f64 / ramp_s
                } else {
                    0.0
                },
            },
            messages: MessageTotals {
                sent: recorded.sent,
                received: recorded.received,
                unmatched: recorded.unmatched,
                not_sent: recorded.not_sent,
            },
            bytes: ByteTotals {
                sent: recorded.bytes_sent,
                received: recorded.bytes_received,
            },
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.name().to_string(), all.errors[*k as usize]))
                .collect(),
            close_codes: last
                .events
                .close_codes
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            recent_errors: last.events.recent_errors.iter().cloned().collect(),
        },
        metrics: metric_map(&recorded, &LatencyMetric::ALL),
        phases,
        timeline,
        rate_changes,
        thresholds,
    }
}
