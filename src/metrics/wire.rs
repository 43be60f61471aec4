//! Snapshots as JSON lines: how a shard process (`--json-lines`) hands its
//! per-second numbers to the process that started it (`--processes`), and
//! how several shards' snapshots are added into one for a single
//! dashboard. Histograms travel encoded (HdrHistogram V2, base64) and are
//! added, never averaged.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::data::{N_ERRORS, StageData, decode_histogram, encode_histogram};
use super::recorder::EventLog;
use super::snapshot::Snapshot;
use crate::scenario::LatencyMetric;

/// One line of a `--json-lines` stream.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// A per-second snapshot.
    Snapshot(Box<WireSnapshot>),
    /// The shard's finished report (the last line).
    Report(Box<crate::report::Report>),
}

/// Counters and histograms of one stage, as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireStage {
    sent: u64,
    received: u64,
    unmatched: u64,
    not_sent: u64,
    bytes_sent: u64,
    bytes_received: u64,
    wire_sent: u64,
    wire_received: u64,
    errors: Vec<u64>,
    /// Non-empty histograms by metric name.
    hist: BTreeMap<String, String>,
}

impl WireStage {
    fn from_data(d: &StageData) -> Self {
        WireStage {
            sent: d.sent,
            received: d.received,
            unmatched: d.unmatched,
            not_sent: d.not_sent,
            bytes_sent: d.bytes_sent,
            bytes_received: d.bytes_received,
            wire_sent: d.wire_sent,
            wire_received: d.wire_received,
            errors: d.errors.to_vec(),
            hist: LatencyMetric::ALL
                .iter()
                .filter(|m| !d.histogram(**m).is_empty())
                .map(|m| (m.name().to_string(), encode_histogram(d.histogram(*m))))
                .collect(),
        }
    }

    fn to_data(&self) -> Result<StageData, String> {
        let mut d = StageData {
            sent: self.sent,
            received: self.received,
            unmatched: self.unmatched,
            not_sent: self.not_sent,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            wire_sent: self.wire_sent,
            wire_received: self.wire_received,
            ..StageData::default()
        };
        for (slot, v) in d.errors.iter_mut().zip(&self.errors) {
            *slot = *v;
        }
        for (i, m) in LatencyMetric::ALL.iter().enumerate() {
            if let Some(enc) = self.hist.get(m.name()) {
                d.hist[i] = decode_histogram(enc)?;
            }
        }
        Ok(d)
    }
}

/// A [`Snapshot`] in a form that crosses a pipe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireSnapshot {
    t_s: f64,
    phase: Option<usize>,
    open: u64,
    attempted: u64,
    opened: u64,
    failed: u64,
    peak_open: u64,
    closed_by_server: u64,
    compressed: u64,
    subprotocol: u64,
    total_sent: u64,
    total_received: u64,
    total_errors: Vec<u64>,
    load_s: f64,
    rate_factor: f64,
    paused: bool,
    close_codes: BTreeMap<u16, u64>,
    http_statuses: BTreeMap<u16, u64>,
    recent_errors: Vec<String>,
    /// What happened since the previous snapshot.
    interval: WireStage,
    /// Everything so far in the recorded phases (and setup).
    recorded: WireStage,
}

impl WireSnapshot {
    /// The wire form of `s`.
    pub fn new(s: &Snapshot) -> Self {
        WireSnapshot {
            t_s: s.t_s,
            phase: s.phase,
            open: s.open,
            attempted: s.attempted,
            opened: s.opened,
            failed: s.failed,
            peak_open: s.peak_open,
            closed_by_server: s.closed_by_server,
            compressed: s.compressed,
            subprotocol: s.subprotocol,
            total_sent: s.total_sent,
            total_received: s.total_received,
            total_errors: s.total_errors.to_vec(),
            load_s: s.load_s,
            rate_factor: s.rate_factor,
            paused: s.paused,
            close_codes: s.events.close_codes.clone(),
            http_statuses: s.events.http_statuses.clone(),
            recent_errors: s.events.recent_errors.iter().cloned().collect(),
            interval: WireStage::from_data(&s.interval),
            recorded: WireStage::from_data(&s.recorded),
        }
    }
}

/// The latest state of one shard, decoded.
struct Part {
    last: WireSnapshot,
    recorded: StageData,
}

/// Adds the snapshots of several shards into one per tick: gauges and
/// totals from each shard's latest snapshot, interval data from every
/// snapshot that arrived since the previous tick.
pub struct Combiner {
    parts: Vec<Option<Part>>,
    interval: StageData,
    interval_started: f64,
}

impl Combiner {
    /// A combiner for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Combiner {
            parts: (0..shards).map(|_| None).collect(),
            interval: StageData::default(),
            interval_started: 0.0,
        }
    }

    /// Takes shard `i`'s next snapshot.
    pub fn push(&mut self, i: usize, s: WireSnapshot) -> Result<(), String> {
        self.interval.add(&s.interval.to_data()?);
        let recorded = s.recorded.to_data()?;
        if let Some(slot) = self.parts.get_mut(i) {
            *slot = Some(Part { last: s, recorded });
        }
        Ok(())
    }

    /// The combined snapshot since the previous call; `None` before any
    /// shard has reported.
    pub fn tick(&mut self) -> Option<Snapshot> {
        let parts: Vec<&Part> = self.parts.iter().flatten().collect();
        if parts.is_empty() {
            return None;
        }
        let sum = |f: fn(&WireSnapshot) -> u64| parts.iter().map(|p| f(&p.last)).sum::<u64>();
        let mut total_errors = [0u64; N_ERRORS];
        let mut events = EventLog::default();
        let mut recorded = StageData::default();
        for p in &parts {
            for (a, b) in total_errors.iter_mut().zip(&p.last.total_errors) {
                *a += b;
            }
            for (k, v) in &p.last.close_codes {
                *events.close_codes.entry(*k).or_default() += v;
            }
            for (k, v) in &p.last.http_statuses {
                *events.http_statuses.entry(*k).or_default() += v;
            }
            for e in &p.last.recent_errors {
                if !events.recent_errors.contains(e) {
                    events.recent_errors.push_back(e.clone());
                }
            }
            recorded.add(&p.recorded);
        }
        while events.recent_errors.len() > 5 {
            events.recent_errors.pop_front();
        }
        let t_s = parts.iter().map(|p| p.last.t_s).fold(0.0, f64::max);
        let iv = std::mem::take(&mut self.interval);
        let rtt = iv.histogram(LatencyMetric::Rtt);
        let q = |q: f64| {
            if rtt.is_empty() {
                0
            } else {
                rtt.value_at_quantile(q)
            }
        };
        let snap = Snapshot {
            t_s,
            interval_s: (t_s - self.interval_started).max(0.0),
            phase: parts.iter().filter_map(|p| p.last.phase).min(),
            open: sum(|s| s.open),
            attempted: sum(|s| s.attempted),
            opened: sum(|s| s.opened),
            failed: sum(|s| s.failed),
            peak_open: sum(|s| s.peak_open),
            closed_by_server: sum(|s| s.closed_by_server),
            compressed: sum(|s| s.compressed),
            subprotocol: sum(|s| s.subprotocol),
            sent: iv.sent,
            received: iv.received,
            bytes_sent: iv.bytes_sent,
            bytes_received: iv.bytes_received,
            errors: iv.error_total(),
            total_sent: sum(|s| s.total_sent),
            total_received: sum(|s| s.total_received),
            total_errors,
            rtt_count: rtt.len(),
            rtt_p50_ns: q(0.5),
            rtt_p99_ns: q(0.99),
            rtt_max_ns: if rtt.is_empty() { 0 } else { rtt.max() },
            load_s: parts.iter().map(|p| p.last.load_s).fold(0.0, f64::max),
            rate_factor: parts[0].last.rate_factor,
            paused: parts.iter().any(|p| p.last.paused),
            events,
            encoded: LatencyMetric::ALL
                .iter()
                .filter(|m| !iv.histogram(**m).is_empty())
                .map(|m| (m.name(), encode_histogram(iv.histogram(*m))))
                .collect(),
            interval: Arc::new(iv),
            recorded: Arc::new(recorded),
        };
        self.interval_started = t_s;
        Some(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(sent: u64, rtt: &[u64]) -> StageData {
        let mut d = StageData {
            sent,
            received: sent,
            ..StageData::default()
        };
        for v in rtt {
            d.record(LatencyMetric::Rtt, *v);
        }
        d.errors[1] = 1;
        d
    }

    fn snap(t_s: f64, open: u64, iv: StageData, rec: StageData) -> Snapshot {
        Snapshot {
            t_s,
            open,
            total_sent: rec.sent,
            interval: Arc::new(iv),
            recorded: Arc::new(rec),
            ..Snapshot::default()
        }
    }

    #[test]
    fn round_trips_and_adds_shards() {
        let a = snap(
            1.0,
            10,
            stage(5, &[1_000, 2_000]),
            stage(5, &[1_000, 2_000]),
        );
        let line = serde_json::to_string(&Line::Snapshot(Box::new(WireSnapshot::new(&a)))).unwrap();
        let Line::Snapshot(back) = serde_json::from_str(&line).unwrap() else {
            panic!("not a snapshot: {line}");
        };
        let b = snap(1.1, 7, stage(3, &[9_000]), stage(3, &[9_000]));
        let mut c = Combiner::new(2);
        assert!(c.tick().is_none());
        c.push(0, *back).unwrap();
        c.push(1, WireSnapshot::new(&b)).unwrap();
        let s = c.tick().unwrap();
        assert_eq!((s.open, s.sent, s.total_sent, s.rtt_count), (17, 8, 8, 3));
        assert_eq!(s.recorded.histogram(LatencyMetric::Rtt).len(), 3);
        assert_eq!(s.recorded.errors[1], 2);
        assert!(s.rtt_max_ns >= 9_000);
        // The interval restarts; gauges and totals stay from the latest.
        let s = c.tick().unwrap();
        assert_eq!((s.open, s.sent, s.total_sent), (17, 0, 8));
    }
}
