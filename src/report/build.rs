//! The one derivation: [`build`] turns a run's plan ([`ScenarioInfo`]) and
//! its [`RunData`] into a [`Report`]: totals, phases, roles, timeline,
//! saturation, thresholds and verdict. `run`, `run --processes`, `merge`,
//! `report` and `compare` all come through here, so a saved report and a
//! fresh one cannot disagree. Thresholds are evaluated on added histograms,
//! never on averaged percentiles.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::model::*;
use super::search::{STEP_PREFIX, SearchPlan, SearchReport, Step, conclude, judge, step_open};
use crate::metrics::evaluate::{EvalContext, PhaseData, evaluate};
use crate::metrics::{
    Counters, ErrorKind, RunData, Second, StageData, decode_histogram, encode_histogram,
    new_histogram,
};
use crate::scenario::{LatencyMetric, PhaseRate, Scenario, Threshold};

/// send_lag p99 above which an open-model phase counts as saturated.
pub const SATURATION_LAG_NS: u64 = 10_000_000;
/// Share of the schedule below which an open-model phase counts as saturated.
pub const SATURATION_RATE: f64 = 0.99;

/// The plan of a run as the report keeps it: what the derivation needs of
/// the scenario (after command-line overrides and sharding).
pub fn plan(
    s: &Scenario,
    file: Option<String>,
    target: String,
    source: Option<String>,
) -> ScenarioInfo {
    ScenarioInfo {
        name: s.name.clone(),
        file,
        target,
        connections: s.connections.count,
        connection_rate: s.connections.rate.per_second,
        phases: s
            .phases
            .iter()
            .map(|p| PhasePlan {
                name: p.name.clone(),
                duration_s: p.duration.as_secs_f64(),
                rate: p.rate.mean(),
                ramp: match p.rate {
                    PhaseRate::Ramp { from, to } => Some([from, to]),
                    _ => None,
                },
                max: p.rate == PhaseRate::Max,
                inflight: p.inflight,
                record: p.record,
                connections: p.connections.map(|c| c.count),
            })
            .collect(),
        source,
        thresholds: s.thresholds.iter().map(|t| t.expr.clone()).collect(),
        search: None,
    }
}

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

fn metric_map(d: &StageData, metrics: &[LatencyMetric]) -> BTreeMap<String, MetricSummary> {
    metrics
        .iter()
        .map(|m| (m.name().to_string(), summarize(d.histogram(*m))))
        .collect()
}

/// The message counters of `c`.
fn message_totals(c: &Counters) -> MessageTotals {
    MessageTotals {
        sent: c.sent,
        paced: c.paced,
        received: c.received,
        replies: c.replies,
        awaited: c.awaited,
        unanswered: c.unanswered,
        delivered: c.delivered,
        expects: c.expects,
        unmatched: c.unmatched,
        not_sent: c.not_sent,
        sequenced: c.sequenced,
        lost: c.lost,
        duplicate: c.duplicate,
        reordered: c.reordered,
        fanout_expected: c.fanout_expected,
    }
}

fn errors_by_kind(c: &Counters) -> BTreeMap<String, u64> {
    ErrorKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), c.errors_of(*k)))
        .collect()
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The planned phase lengths in ms.
pub(super) fn durations_ms(plan: &ScenarioInfo) -> Vec<u64> {
    plan.phases
        .iter()
        .map(|p| (p.duration_s * 1000.0).round() as u64)
        .collect()
}

/// The search's steps, each judged from its phase (`step-N`) as the
/// searcher judged it while the run went.
fn derive_search(
    s: &SearchPlan,
    plan: &ScenarioInfo,
    d: &Derived,
    phases: &[PhaseReport],
    timeline: &[crate::metrics::Second],
) -> SearchReport {
    let slos: Vec<Threshold> = s
        .slos
        .iter()
        .filter_map(|e| Threshold::parse(e).ok())
        .collect();
    let steps = plan
        .phases
        .iter()
        .enumerate()
        .filter(|(_, p)| p.record && p.name.starts_with(STEP_PREFIX))
        .map(|(i, p)| {
            let step = Step {
                plan: p,
                data: &d.phases[i],
                secs: d.phase_secs[i],
                saturated: phases[i].saturated,
                open: step_open(timeline, i),
            };
            judge(&slos, &step)
        })
        .collect();
    conclude(s, steps)
}

/// Paced sends per second of a phase that ran `secs`: what its achieved
/// rate (and a search step's) is.
pub fn achieved_rate(c: &Counters, secs: f64) -> f64 {
    if secs > 0.0 {
        c.paced as f64 / secs
    } else {
        0.0
    }
}

/// Whether phase `d` fell behind its open-model schedule.
pub fn saturated(plan: &PhasePlan, d: &StageData) -> bool {
    let c = &d.counters;
    let scheduled = c.paced.saturating_add(c.not_sent);
    if plan.rate.is_none() || scheduled == 0 {
        return false;
    }
    let lag = d.histogram(LatencyMetric::SendLag);
    (!lag.is_empty() && lag.value_at_quantile(0.99) > SATURATION_LAG_NS)
        || (c.paced as f64) < scheduled as f64 * SATURATION_RATE
}

/// The recorded data and every phase's data, for threshold evaluation.
pub struct Derived {
    /// Setup and the recorded phases, every role added.
    pub recorded: StageData,
    /// Each phase, every role added.
    pub phases: Vec<StageData>,
    /// Seconds each phase ran.
    pub phase_secs: Vec<f64>,
}

impl Derived {
    /// Adds up `data` as `plan` says.
    pub fn new(plan: &ScenarioInfo, data: &RunData) -> Derived {
        let record: Vec<bool> = plan.phases.iter().map(|p| p.record).collect();
        let durations = durations_ms(plan);
        Derived {
            recorded: data.recorded(&record),
            phases: (0..plan.phases.len()).map(|i| data.stage(i + 1)).collect(),
            phase_secs: (0..plan.phases.len())
                .map(|i| secs(data.phase_ms(&durations, i)))
                .collect(),
        }
    }

    /// The context thresholds are evaluated in at the end of a run.
    pub fn context<'a>(&'a self, plan: &'a ScenarioInfo) -> EvalContext<'a> {
        EvalContext {
            recorded: &self.recorded,
            phases: plan
                .phases
                .iter()
                .enumerate()
                .map(|(i, p)| PhaseData {
                    name: &p.name,
                    data: &self.phases[i],
                    open: p.rate.is_some(),
                    secs: self.phase_secs[i],
                    record: p.record,
                })
                .collect(),
            ended: true,
        }
    }
}

/// Builds the report of `data`, run as `plan` says.
pub fn build(plan: &ScenarioInfo, data: &RunData) -> Report {
    let d = Derived::new(plan, data);
    let f = &data.facts;
    // Every metric: connections opened during a phase (a higher count,
    // churn, reconnects) are timed in it.
    let per_phase = LatencyMetric::ALL;
    let phases: Vec<PhaseReport> = plan
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let st = &d.phases[i];
            let c = &st.counters;
            let secs = d.phase_secs[i];
            PhaseReport {
                name: p.name.clone(),
                duration_s: secs,
                target_rate: p.rate,
                achieved_rate: achieved_rate(c, secs),
                scheduled: if p.rate.is_some() {
                    c.paced.saturating_add(c.not_sent)
                } else {
                    0
                },
                record: p.record,
                messages: message_totals(c),
                errors: c.error_total(),
                errors_by_kind: errors_by_kind(c),
                saturated: saturated(p, st),
                metrics: metric_map(st, &per_phase),
            }
        })
        .collect();
    let ctx = d.context(plan);
    let thresholds: Vec<ThresholdResult> = plan
        .thresholds
        .iter()
        .map(|expr| match Threshold::parse(expr) {
            Ok(t) => {
                let e = evaluate(&t, &ctx);
                ThresholdResult {
                    expr: t.expr.clone(),
                    observed: e.observed,
                    observed_text: e.observed_text,
                    pass: e.pass,
                }
            }
            Err(e) => ThresholdResult {
                expr: expr.clone(),
                observed: 0.0,
                observed_text: format!("cannot evaluate: {e}"),
                pass: false,
            },
        })
        .collect();
    let rc = &d.recorded.counters;
    let search = plan
        .search
        .as_ref()
        .map(|s| derive_search(s, plan, &d, &phases, &data.timeline));
    let mut error = f
        .failure
        .clone()
        .or_else(|| (!f.interrupted && rc.opened == 0).then(|| no_connection(rc, &data.events)));
    // A search that found nothing is an error of the run: there is no
    // capacity to gate on.
    if let Some(s) = &search
        && s.capacity.is_none()
        && !f.interrupted
    {
        error.get_or_insert_with(|| s.answer.clone());
    }
    let below_min = search.as_ref().is_some_and(|s| {
        s.plan
            .min
            .is_some_and(|m| s.capacity.is_some_and(|c| c < m))
    });
    let verdict = if error.is_some() {
        Verdict::Error
    } else if f.aborted.is_some() || thresholds.iter().any(|t| !t.pass) || below_min {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    let saturated = phases.iter().any(|p| p.record && p.saturated);
    let ramp_s = secs(f.load_started_ms.unwrap_or(f.elapsed_ms));
    let peak_open = data.timeline.iter().map(|s| s.peak_open).max().unwrap_or(0);
    let timeline = data.timeline.iter().map(|s| point(plan, data, s)).collect();
    let rate_changes = data
        .control
        .iter()
        .map(|c| RateChangeReport {
            t_s: secs(c.at_ms),
            factor: c.factor,
            paused: c.paused,
        })
        .collect();
    let roles = if data.roles.len() > 1 {
        let record = d
            .context(plan)
            .phases
            .iter()
            .map(|p| p.record)
            .collect::<Vec<_>>();
        data.roles
            .iter()
            .map(|r| {
                let rd = RunData::recorded_of(&r.stages, &record);
                let metrics = LatencyMetric::ALL
                    .iter()
                    .filter(|m| {
                        !matches!(
                            m,
                            LatencyMetric::Connect | LatencyMetric::Tls | LatencyMetric::Handshake
                        ) && !rd.histogram(**m).is_empty()
                    })
                    .map(|m| (m.name().to_string(), summarize(rd.histogram(*m))))
                    .collect();
                let report = RoleReport {
                    connections: r.assigned,
                    messages: message_totals(&rd.counters),
                    errors: rd.counters.error_total(),
                    metrics,
                };
                (r.name.clone(), report)
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let shard_count = f.shards.first().map(|s| s.count);
    let merged = f.merged.then(|| MergeInfo {
        reports: f.runs,
        shard_count,
        shards: f.shards.iter().map(|s| s.index).collect(),
        missing: shard_count.map_or_else(Vec::new, |n| {
            (0..n)
                .filter(|i| !f.shards.iter().any(|s| s.index == *i))
                .collect()
        }),
    });
    Report {
        schema: SCHEMA.to_string(),
        barrage_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: plan.clone(),
        // Milliseconds: shards started together are aligned by it when merged.
        // Years past 9999 have no RFC 3339 form: a crafted start is clamped.
        started_at: humantime::format_rfc3339_millis(
            UNIX_EPOCH + Duration::from_millis(f.started_at_ms.min(253_402_300_799_000)),
        )
        .to_string(),
        duration_s: secs(f.elapsed_ms),
        verdict,
        error,
        search,
        interrupted: f.interrupted,
        aborted: f.aborted.as_ref().map(|a| Aborted {
            threshold: a.threshold.clone(),
            t_s: secs(a.at_ms),
        }),
        saturated,
        totals: Totals {
            connections: ConnectionTotals {
                attempted: rc.attempted,
                opened: rc.opened,
                failed: rc.failed,
                peak_open,
                closed_by_server: rc.closed_by_server,
                closed: rc.closed,
                compressed: rc.compressed,
                subprotocol: rc.subprotocol,
                open_rate: if ramp_s > 0.0 {
                    rc.opened as f64 / ramp_s
                } else {
                    0.0
                },
            },
            messages: message_totals(rc),
            bytes: ByteTotals {
                sent: rc.bytes_sent,
                received: rc.bytes_received,
                wire_sent: rc.wire_sent,
                wire_received: rc.wire_received,
            },
            errors: errors_by_kind(rc),
            close_codes: data
                .events
                .close_codes
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            http_statuses: data
                .events
                .http_statuses
                .iter()
                .map(|(status, n)| (status.to_string(), *n))
                .collect(),
            recent_errors: data.events.recent_errors.iter().cloned().collect(),
        },
        metrics: metric_map(&d.recorded, &LatencyMetric::ALL),
        phases,
        timeline,
        rate_changes,
        roles,
        thresholds,
        shard: (!f.merged && f.shards.len() == 1).then(|| f.shards[0]),
        merged,
        run_data: data.clone(),
    }
}

/// Why no connection opened, the most common reason first: the error kind
/// most attempts failed with and the latest message of that kind.
fn no_connection(c: &Counters, events: &crate::metrics::Events) -> String {
    let Some(kind) = ErrorKind::ALL
        .iter()
        .filter(|k| c.errors_of(**k) > 0)
        .max_by_key(|k| c.errors_of(**k))
    else {
        return "no connection opened: is the target up and reachable?".to_string();
    };
    let prefix = format!("{}:", kind.name());
    let reason = events
        .recent_errors
        .iter()
        .rev()
        .find(|m| m.starts_with(&prefix))
        .map_or_else(|| kind.name().to_string(), Clone::clone);
    format!(
        "no connection opened: {} of {} attempts failed with {} errors, e.g. {reason}",
        c.errors_of(*kind),
        c.attempted,
        kind.name()
    )
}

/// The histogram of metric `m` in a second, recorded and unrecorded added
/// (empty when the second has no sample of it).
pub(super) fn second_histogram(s: &Second, m: LatencyMetric) -> Histogram<u64> {
    let mut h = new_histogram();
    for enc in [&s.histograms, &s.unrecorded_histograms] {
        if let Some(g) = enc.get(m.name()).and_then(|b| decode_histogram(b).ok()) {
            let _ = h.add(&g);
        }
    }
    h
}

/// One timeline point of `s`.
fn point(plan: &ScenarioInfo, data: &RunData, s: &Second) -> TimelinePoint {
    let mut c = s.recorded;
    c.add(&s.unrecorded);
    let rtt = second_histogram(s, LatencyMetric::Rtt);
    let q = |q: f64| {
        if rtt.is_empty() {
            0.0
        } else {
            rtt.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let phase = s.phase.and_then(|i| plan.phases.get(i));
    // A ramp's rate at the middle of the second, from the phase start.
    let rate = s.phase.and_then(|i| {
        let p = plan.phases.get(i)?;
        let Some([from, to]) = p.ramp else {
            return p.rate;
        };
        let ramp = PhaseRate::Ramp { from, to };
        let load = data.facts.load_started_ms? as f64;
        let begin = load
            + plan.phases[..i]
                .iter()
                .map(|p| p.duration_s * 1000.0)
                .sum::<f64>();
        let mid = s.t_ms as f64 - s.interval_ms as f64 / 2.0;
        ramp.at((mid - begin) / (p.duration_s * 1000.0))
    });
    TimelinePoint {
        t_s: secs(s.t_ms),
        phase: phase.map(|p| p.name.clone()),
        open: s.open,
        attempts: c.attempted,
        opened: c.opened,
        closed: c.closed.saturating_add(c.closed_by_server),
        sent: c.sent,
        received: c.received,
        delivered: c.delivered,
        unmatched: c.unmatched,
        sequenced: c.sequenced,
        lost: c.lost,
        duplicate: c.duplicate,
        reordered: c.reordered,
        errors: c.error_total(),
        rtt_p50_us: q(0.5),
        rtt_p99_us: q(0.99),
        target_rate: rate.map(|rate| {
            let (factor, paused) = data.control_at(s.t_ms);
            if paused { 0.0 } else { rate * factor }
        }),
    }
}

/// `report` with every value `${env:NAME}` gave the scenario withheld from
/// its text (names, the target's query, the copy of the file, errors), so
/// no report file shows it. Histograms (base64) are left alone.
pub fn withhold_env(report: Report, secrets: &crate::scenario::EnvSecrets) -> Report {
    /// Role names are the only keys that come from the scenario.
    fn walk(v: &mut serde_json::Value, secrets: &crate::scenario::EnvSecrets, named: bool) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = secrets.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, secrets, false)),
            Value::Object(m) => {
                for (k, mut val) in std::mem::take(m) {
                    if k != "histogram" {
                        walk(&mut val, secrets, k == "roles");
                    }
                    m.insert(if named { secrets.redact(&k) } else { k }, val);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    if secrets.is_empty() {
        return report;
    }
    let walked = serde_json::to_value(&report).ok().and_then(|mut v| {
        walk(&mut v, secrets, false);
        serde_json::from_value(v).ok()
    });
    walked.unwrap_or_else(|| {
        // A secret that spells a word the schema reads (a verdict, a kind)
        // broke the walk: the fields that come from the scenario, one by one.
        let mut r = report;
        let s = &mut r.scenario;
        s.name = secrets.redact(&s.name);
        s.target = secrets.redact(&s.target);
        s.source = s.source.as_deref().map(|t| secrets.redact(t));
        s.thresholds = s.thresholds.iter().map(|t| secrets.redact(t)).collect();
        for p in &mut s.phases {
            p.name = secrets.redact(&p.name);
        }
        r.error = r.error.as_deref().map(|e| secrets.redact(e));
        r
    })
}
