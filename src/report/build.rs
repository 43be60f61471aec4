//! Builds a [`Report`] from a run's measurements, evaluating the thresholds
//! on the merged histograms (never on averaged percentiles).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::model::*;
use crate::engine::RunResult;
use crate::metrics::evaluate::{EvalContext, PhaseData, evaluate};
use crate::metrics::{ErrorKind, StageData, encode_histogram};
use crate::scenario::{LatencyMetric, PhaseRate, Scenario, Threshold};

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

/// A threshold's line in the report.
pub fn result_of(t: &Threshold, ctx: &EvalContext<'_>) -> ThresholdResult {
    let e = evaluate(t, ctx);
    ThresholdResult {
        expr: t.expr.clone(),
        observed: e.observed,
        observed_text: e.observed_text,
        pass: e.pass,
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
                messages: message_totals(d),
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
    let thresholds: Vec<ThresholdResult> =
        s.thresholds.iter().map(|t| result_of(t, &ctx)).collect();
    let verdict = if r.aborted.is_none() && thresholds.iter().all(|t| t.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let timeline = r
        .timeline
        .iter()
        .scan(0u64, |before, p| {
            let attempts = p.attempted.saturating_sub(*before);
            *before = p.attempted;
            Some((p, attempts))
        })
        .map(|(p, attempts)| TimelinePoint {
            t_s: (p.t_s * 1000.0).round() / 1000.0,
            phase: p.phase.map(|i| s.phases[i].name.clone()),
            open: p.open,
            attempts,
            sent: p.sent,
            received: p.received,
            errors: p.errors,
            rtt_p50_us: p.rtt_p50_ns as f64 / 1000.0,
            rtt_p99_us: p.rtt_p99_ns as f64 / 1000.0,
            histograms: p
                .encoded
                .iter()
                .map(|(name, enc)| (name.to_string(), enc.clone()))
                .collect(),
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
        // Milliseconds: shards started together are aligned by it when merged.
        started_at: humantime::format_rfc3339_millis(r.started_at).to_string(),
        duration_s: r.elapsed.as_secs_f64(),
        verdict,
        interrupted: r.interrupted,
        aborted: r.aborted.as_ref().map(|(threshold, t_s)| Aborted {
            threshold: threshold.clone(),
            t_s: (t_s * 1000.0).round() / 1000.0,
        }),
        saturated,
        totals: Totals {
            connections: ConnectionTotals {
                attempted: last.attempted,
                opened: last.opened,
                failed: last.failed,
                peak_open: last.peak_open,
                closed_by_server: last.closed_by_server,
                compressed: last.compressed,
                subprotocol: last.subprotocol,
                open_rate: if ramp_s > 0.0 {
                    last.opened as f64 / ramp_s
                } else {
                    0.0
                },
            },
            messages: message_totals(&recorded),
            bytes: ByteTotals {
                sent: recorded.bytes_sent,
                received: recorded.bytes_received,
                wire_sent: recorded.wire_sent,
                wire_received: recorded.wire_received,
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
            http_statuses: last
                .events
                .http_statuses
                .iter()
                .map(|(status, n)| (status.to_string(), *n))
                .collect(),
            recent_errors: last.events.recent_errors.iter().cloned().collect(),
        },
        metrics: metric_map(&recorded, &LatencyMetric::ALL),
        phases,
        timeline,
        rate_changes,
        roles: role_reports(r),
        thresholds,
        shard: s.sharding.map(|sh| sh.spec),
        merged: None,
    }
}

/// The per-role sections (none for a scenario with one role).
fn role_reports(r: &RunResult) -> BTreeMap<String, RoleReport> {
    if r.totals.roles.is_empty() {
        return BTreeMap::new();
    }
    r.roles
        .iter()
        .zip(&r.totals.roles)
        .map(|((name, connections), d)| {
            let metrics = [
                LatencyMetric::Rtt,
                LatencyMetric::Service,
                LatencyMetric::SendLag,
                LatencyMetric::Delivery,
                LatencyMetric::Ping,
            ]
            .iter()
            .filter(|m| !d.histogram(**m).is_empty())
            .map(|m| (m.name().to_string(), summarize(d.histogram(*m))))
            .collect();
            let report = RoleReport {
                connections: *connections,
                messages: message_totals(d),
                errors: d.error_total(),
                metrics,
            };
            (name.clone(), report)
        })
        .collect()
}

/// The message counters of `d`.
fn message_totals(d: &StageData) -> MessageTotals {
    MessageTotals {
        sent: d.sent,
        received: d.received,
        unmatched: d.unmatched,
        not_sent: d.not_sent,
    }
}
