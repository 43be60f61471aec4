//! Per-tick snapshots: what the UI shows live and what becomes the report's
//! timeline.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use super::data::{ErrorKind, Shard, StageData, encode_histogram};
use super::recorder::{EventLog, Recorder};
use crate::scenario::LatencyMetric;

/// The state of a run at one tick, with counts for the interval since the
/// previous tick and totals so far.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Seconds since the run started (connection ramp included).
    pub t_s: f64,
    /// Length of the interval this snapshot covers, in seconds.
    pub interval_s: f64,
    /// Index of the phase running at the tick, `None` before and after.
    pub phase: Option<usize>,
    /// Connections open at the tick.
    pub open: u64,
    /// Connection attempts so far.
    pub attempted: u64,
    /// Connections opened so far.
    pub opened: u64,
    /// Connection attempts failed so far.
    pub failed: u64,
    /// Most connections open at once so far.
    pub peak_open: u64,
    /// Open connections the server closed so far.
    pub closed_by_server: u64,
    /// Connections that agreed permessage-deflate so far.
    pub compressed: u64,
    /// Connections with a negotiated subprotocol so far.
    pub subprotocol: u64,
    /// Messages sent in the interval.
    pub sent: u64,
    /// Replies received in the interval.
    pub received: u64,
    /// Payload bytes sent in the interval.
    pub bytes_sent: u64,
    /// Payload bytes received in the interval.
    pub bytes_received: u64,
    /// Errors in the interval.
    pub errors: u64,
    /// Messages sent so far.
    pub total_sent: u64,
    /// Replies received so far.
    pub total_received: u64,
    /// Errors so far, by kind in `ErrorKind::ALL` order.
    pub total_errors: [u64; super::data::N_ERRORS],
    /// `rtt` samples in the interval.
    pub rtt_count: u64,
    /// `rtt` median of the interval, ns (0 without samples).
    pub rtt_p50_ns: u64,
    /// `rtt` 99th percentile of the interval, ns.
    pub rtt_p99_ns: u64,
    /// `rtt` maximum of the interval, ns.
    pub rtt_max_ns: u64,
    /// Seconds since the phases started (0 before).
    pub load_s: f64,
    /// Live rate multiplier at the tick (1.0 = the scenario's rates).
    pub rate_factor: f64,
    /// Whether sending was paused at the tick.
    pub paused: bool,
    /// Close codes received so far and the latest distinct error messages.
    pub events: EventLog,
    /// The interval's latency histograms that have samples, by metric name,
    /// encoded (see `encode_histogram`): what the hlog files are made of.
    pub encoded: Vec<(&'static str, String)>,
    /// Everything recorded in the interval, all stages added.
    pub interval: Arc<StageData>,
    /// Everything recorded so far in the setup stage and the phases marked
    /// `record` (what totals and thresholds are computed from).
    pub recorded: Arc<StageData>,
}

impl Snapshot {
    /// Total errors so far.
    pub fn total_error_count(&self) -> u64 {
        self.total_errors.iter().sum()
    }

    /// Errors so far of `kind`.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.total_errors[kind as usize]
    }
}

/// Where the run is at a tick, as the engine knows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickInfo {
    /// Phase running, if any.
    pub phase: Option<usize>,
    /// Seconds since the phases started (0 before).
    pub load_s: f64,
    /// Live rate multiplier.
    pub rate_factor: f64,
    /// Whether sending is paused.
    pub paused: bool,
}

/// Turns the recorder's data into snapshots and run totals.
pub struct Collector {
    recorder: Recorder,
    started: Instant,
    last: Instant,
    interval: Shard,
    totals: Shard,
    /// `record` flag of each phase.
    record: Vec<bool>,
    timeline: Vec<Snapshot>,
    /// Stands in for the histograms in timeline entries, which keep only
    /// counts and percentiles (a run's memory must not grow per second).
    empty: Arc<StageData>,
}

impl Collector {
    /// A collector for `recorder`'s run, which started at `started`;
    /// `record[i]` says whether phase `i` counts in the recorded totals.
    pub fn new(recorder: Recorder, record: Vec<bool>, started: Instant) -> Self {
        let roles = recorder.roles();
        Collector {
            recorder,
            started,
            last: started,
            interval: Shard::with_roles(record.len(), roles),
            totals: Shard::with_roles(record.len(), roles),
            record,
            timeline: Vec::new(),
            empty: Arc::new(StageData::default()),
        }
    }

    /// Takes everything recorded since the last tick, adds it to the totals,
    /// appends a snapshot to the timeline and returns it.
    pub fn tick(&mut self, now: Instant, at: TickInfo) -> Snapshot {
        self.recorder.collect_into(&mut self.interval);
        self.totals.add(&self.interval);
        let iv: StageData = self.interval.total();
        let all: StageData = self.totals.total();
        let mut recorded = self.totals.stages[0].clone();
        for (stage, record) in self.totals.stages[1..].iter().zip(&self.record) {
            if *record {
                recorded.add(stage);
            }
        }
        let rtt = iv.histogram(LatencyMetric::Rtt);
        let g = self.recorder.gauges();
        let snap = Snapshot {
            t_s: now.duration_since(self.started).as_secs_f64(),
            interval_s: now.duration_since(self.last).as_secs_f64(),
            phase: at.phase,
            open: g.open.load(SeqCst),
            attempted: g.attempted.load(SeqCst),
            opened: g.opened.load(SeqCst),
            failed: g.failed.load(SeqCst),
            peak_open: g.peak_open.load(SeqCst),
            closed_by_server: g.closed_by_server.load(SeqCst),
            compressed: g.compressed.load(SeqCst),
            subprotocol: g.subprotocol.load(SeqCst),
            sent: iv.sent,
            received: iv.received,
            bytes_sent: iv.bytes_sent,
            bytes_received: iv.bytes_received,
            errors: iv.error_total(),
            total_sent: all.sent,
            total_received: all.received,
            total_errors: all.errors,
            rtt_count: rtt.len(),
            rtt_p50_ns: if rtt.is_empty() {
                0
            } else {
                rtt.value_at_quantile(0.5)
            },
            rtt_p99_ns: if rtt.is_empty() {
                0
            } else {
                rtt.value_at_quantile(0.99)
            },
            rtt_max_ns: if rtt.is_empty() { 0 } else { rtt.max() },
            load_s: at.load_s,
            rate_factor: at.rate_factor,
            paused: at.paused,
            events: g.events(),
            encoded: LatencyMetric::ALL
                .iter()
                .filter(|m| !iv.histogram(**m).is_empty())
                .map(|m| (m.name(), encode_histogram(iv.histogram(*m))))
                .collect(),
            interval: Arc::new(iv.clone()),
            recorded: Arc::new(recorded),
        };
        self.interval.reset();
        self.last = now;
        self.timeline.push(Snapshot {
            interval: self.empty.clone(),
            recorded: self.empty.clone(),
            ..snap.clone()
        });
        snap
    }

    /// The run's totals per stage and its timeline.
    pub fn finish(self) -> (Shard, Vec<Snapshot>) {
        (self.totals, self.timeline)
    }
}
