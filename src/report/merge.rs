//! `barrage merge`: reports of shards or machines added into one, losslessly:
//! histograms are added (never percentiles averaged), counters summed,
//! timelines aligned by wall-clock second, thresholds evaluated again.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::Histogram;

use super::build::{result_of, summarize};
use super::model::*;
use crate::metrics::evaluate::{EvalContext, PhaseData};
use crate::metrics::{ErrorKind, StageData, decode_histogram, encode_histogram, new_histogram};
use crate::scenario::{LatencyMetric, Threshold};

fn add_encoded(into: &mut Histogram<u64>, b64: &str) -> Result<(), String> {
    let h = decode_histogram(b64)?;
    into.add(&h)
        .map_err(|e| format!("cannot add histograms: {e:?}"))
}

/// Adds metric summaries by their histograms.
fn merge_metrics<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, MetricSummary>>,
) -> Result<BTreeMap<String, MetricSummary>, String> {
    let mut hists: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for m in maps {
        for (name, s) in m {
            add_encoded(
                hists.entry(name.clone()).or_insert_with(new_histogram),
                &s.histogram,
            )?;
        }
    }
    Ok(hists.into_iter().map(|(k, h)| (k, summarize(&h))).collect())
}

fn wall(r: &Report) -> Duration {
    humantime::parse_rfc3339(&r.started_at)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Checks that sharded inputs belong together and none is added twice;
/// returns what the merge is made of.
fn merge_info(reports: &[Report]) -> Result<MergeInfo, String> {
    let mut info = MergeInfo {
        reports: reports.len() as u32,
        ..MergeInfo::default()
    };
    let sharded: Vec<_> = reports.iter().filter_map(|r| r.shard).collect();
    if sharded.is_empty() {
        return Ok(info);
    }
    if sharded.len() != reports.len() {
        return Err(
            "some reports are shards (--shard) and some are whole runs; \
                    merge the shards of one run together"
                .into(),
        );
    }
    let n = sharded[0].count;
    if let Some(bad) = sharded.iter().find(|s| s.count == 0 || s.index >= s.count) {
        return Err(format!(
            "shard {}/{} is not a valid shard (the index must be below the count)",
            bad.index, bad.count
        ));
    }
    if let Some(other) = sharded.iter().find(|s| s.count != n) {
        return Err(format!(
            "shards of different splits: {}/{n} and {other}; merge the shards of one run",
            sharded[0].index
        ));
    }
    let mut seen = vec![false; n as usize];
    for s in &sharded {
        if std::mem::replace(&mut seen[s.index as usize], true) {
            return Err(format!(
                "shard {s} is given twice: its counts would be added twice"
            ));
        }
        info.shards.push(s.index);
    }
    info.shard_count = Some(n);
    info.missing = (0..n).filter(|i| !seen[*i as usize]).collect();
    Ok(info)
}

/// Merges `reports` (at least one) into one report. Shards of one run are
/// checked to be distinct and of the same split; missing shards are
/// listed in `merged.missing`.
pub fn merge(reports: &[Report]) -> Result<Report, String> {
    let first = reports.first().ok_or("nothing to merge")?;
    let info = merge_info(reports)?;
    let start = reports.iter().map(wall).min().unwrap_or_default();
    let end = reports
        .iter()
        .map(|r| wall(r) + Duration::from_secs_f64(r.duration_s.max(0.0)))
        .max()
        .unwrap_or_default();

    // Totals.
    let mut totals = Totals::default();
    for r in reports {
        let (t, c) = (&r.totals, &r.totals.connections);
        totals.connections.attempted += c.attempted;
        totals.connections.opened += c.opened;
        totals.connections.failed += c.failed;
        totals.connections.peak_open += c.peak_open;
        totals.connections.closed_by_server += c.closed_by_server;
        totals.connections.open_rate += c.open_rate;
        totals.connections.compressed += c.compressed;
        totals.connections.subprotocol += c.subprotocol;
        totals.messages.sent += t.messages.sent;
        totals.messages.received += t.messages.received;
        totals.messages.unmatched += t.messages.unmatched;
        totals.messages.not_sent += t.messages.not_sent;
        totals.bytes.sent += t.bytes.sent;
        totals.bytes.received += t.bytes.received;
        totals.bytes.wire_sent += t.bytes.wire_sent;
        totals.bytes.wire_received += t.bytes.wire_received;
        for (k, v) in &t.errors {
            *totals.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &t.close_codes {
            *totals.close_codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &t.http_statuses {
            *totals.http_statuses.entry(k.clone()).or_default() += v;
        }
        for e in &t.recent_errors {
            if !totals.recent_errors.contains(e) {
                totals.recent_errors.push(e.clone());
            }
        }
    }
    let keep = totals.recent_errors.len().saturating_sub(5);
    totals.recent_errors.drain(..keep);
    let metrics = merge_metrics(reports.iter().map(|r| &r.metrics))?;

    // Phases, matched by position.
    let mut phases = Vec::new();
    for (i, p) in first.phases.iter().enumerate() {
        let same: Vec<&PhaseReport> = reports.iter().filter_map(|r| r.phases.get(i)).collect();
        let duration_s = same.iter().map(|p| p.duration_s).fold(0.0, f64::max);
        let sent: u64 = same.iter().map(|p| p.messages.sent).sum();
        phases.push(PhaseReport {
            name: p.name.clone(),
            duration_s,
            target_rate: p
                .target_rate
                .map(|_| same.iter().filter_map(|p| p.target_rate).sum()),
            achieved_rate: if duration_s > 0.0 {
                sent as f64 / duration_s
            } else {
                0.0
            },
            record: p.record,
            messages: MessageTotals {
                sent,
                received: same.iter().map(|p| p.messages.received).sum(),
                unmatched: same.iter().map(|p| p.messages.unmatched).sum(),
                not_sent: same.iter().map(|p| p.messages.not_sent).sum(),
            },
            errors: same.iter().map(|p| p.errors).sum(),
            errors_by_kind: {
                let mut m = BTreeMap::new();
                for p in &same {
                    for (k, v) in &p.errors_by_kind {
                        *m.entry(k.clone()).or_default() += v;
                    }
                }
                m
            },
            saturated: same.iter().any(|p| p.saturated),
            metrics: merge_metrics(same.iter().map(|p| &p.metrics))?,
        });
    }

    // Timeline: bucket every point by its wall-clock second.
    let mut buckets: BTreeMap<u64, (TimelinePoint, BTreeMap<String, Histogram<u64>>)> =
        BTreeMap::new();
    for r in reports {
        let offset = wall(r).saturating_sub(start).as_secs_f64();
        for p in &r.timeline {
            let t = offset + p.t_s;
            let (b, hists) = buckets.entry(t.ceil() as u64).or_insert_with(|| {
                (
                    TimelinePoint {
                        t_s: t.ceil(),
                        phase: p.phase.clone(),
                        open: 0,
                        attempts: 0,
                        sent: 0,
                        received: 0,
                        errors: 0,
                        rtt_p50_us: 0.0,
                        rtt_p99_us: 0.0,
                        target_rate: None,
                        histograms: BTreeMap::new(),
                    },
                    BTreeMap::new(),
                )
            });
            b.open += p.open;
            b.attempts += p.attempts;
            b.sent += p.sent;
            b.received += p.received;
            b.errors += p.errors;
            b.target_rate = match (b.target_rate, p.target_rate) {
                (Some(a), Some(c)) => Some(a + c),
                (a, c) => a.or(c),
            };
            for (name, enc) in &p.histograms {
                add_encoded(hists.entry(name.clone()).or_insert_with(new_histogram), enc)?;
            }
        }
    }
    let timeline = buckets
        .into_values()
        .map(|(mut p, hists)| {
            if let Some(rtt) = hists.get("rtt").filter(|h| !h.is_empty()) {
                p.rtt_p50_us = rtt.value_at_quantile(0.5) as f64 / 1000.0;
                p.rtt_p99_us = rtt.value_at_quantile(0.99) as f64 / 1000.0;
            }
            p.histograms = hists
                .iter()
                .map(|(k, h)| (k.clone(), encode_histogram(h)))
                .collect();
            p
        })
        .collect();

    // Thresholds again, on the merged data.
    let stage = |metrics: &BTreeMap<String, MetricSummary>,
                 m: &MessageTotals,
                 errors: &BTreeMap<String, u64>|
     -> Result<StageData, String> {
        let mut d = StageData::default();
        for (i, metric) in LatencyMetric::ALL.iter().enumerate() {
            if let Some(s) = metrics.get(metric.name()) {
                d.hist[i] = decode_histogram(&s.histogram)?;
            }
        }
        d.sent = m.sent;
        d.received = m.received;
        d.unmatched = m.unmatched;
        for k in ErrorKind::ALL {
            d.errors[k as usize] = errors.get(k.name()).copied().unwrap_or(0);
        }
        Ok(d)
    };
    let recorded = stage(&metrics, &totals.messages, &totals.errors)?;
    let phase_data = phases
        .iter()
        .map(|p: &PhaseReport| stage(&p.metrics, &p.messages, &p.errors_by_kind))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = EvalContext {
        recorded: &recorded,
        phases: phases
            .iter()
            .zip(&phase_data)
            .map(|(p, d)| PhaseData {
                name: &p.name,
                data: d,
                target: p.target_rate,
                secs: p.duration_s,
                record: p.record,
            })
            .collect(),
        attempted: totals.connections.attempted,
        opened: totals.connections.opened,
        failed: totals.connections.failed,
    };
    let mut thresholds = Vec::new();
    for t in &first.thresholds {
        let parsed =
            Threshold::parse(&t.expr).map_err(|e| format!("threshold {:?}: {e}", t.expr))?;
        thresholds.push(result_of(&parsed, &ctx));
    }
    // A shard stopped by `abort_on_fail` fails the whole run.
    let aborted = reports.iter().find_map(|r| r.aborted.clone());
    let verdict = if aborted.is_none() && thresholds.iter().all(|t| t.pass) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };

    let mut scenario = first.scenario.clone();
    scenario.connections = reports.iter().map(|r| r.scenario.connections).sum();
    scenario.connection_rate = reports.iter().map(|r| r.scenario.connection_rate).sum();
    for (i, p) in scenario.phases.iter_mut().enumerate() {
        p.rate = p.rate.map(|_| {
            reports
                .iter()
                .filter_map(|r| r.scenario.phases.get(i).and_then(|q| q.rate))
                .sum()
        });
    }
    scenario.file = None;
    Ok(Report {
        schema: SCHEMA.to_string(),
        barrage_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario,
        started_at: humantime::format_rfc3339_millis(UNIX_EPOCH + start).to_string(),
        duration_s: end.saturating_sub(start).as_secs_f64(),
        verdict,
        interrupted: reports.iter().any(|r| r.interrupted),
        aborted,
        saturated: reports.iter().any(|r| r.saturated),
        totals,
        metrics,
        phases,
        timeline,
        // Every shard of `run --processes` follows the same keys.
        rate_changes: if info.shard_count.is_some() {
            first.rate_changes.clone()
        } else {
            Vec::new()
        },
        roles: merge_roles(reports)?,
        thresholds,
        shard: None,
        merged: Some(info),
    })
}

/// Roles added by name: counts summed, histograms added.
fn merge_roles(reports: &[Report]) -> Result<BTreeMap<String, RoleReport>, String> {
    let mut names: Vec<&String> = reports.iter().flat_map(|r| r.roles.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    for name in names {
        let parts: Vec<&RoleReport> = reports.iter().filter_map(|r| r.roles.get(name)).collect();
        let mut role = RoleReport {
            metrics: merge_metrics(parts.iter().map(|p| &p.metrics))?,
            ..RoleReport::default()
        };
        for p in parts {
            role.connections += p.connections;
            role.messages.sent += p.messages.sent;
            role.messages.received += p.messages.received;
            role.messages.unmatched += p.messages.unmatched;
            role.messages.not_sent += p.messages.not_sent;
            role.errors += p.errors;
        }
        out.insert(name.clone(), role);
    }
    Ok(out)
}
