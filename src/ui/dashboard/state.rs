//! What the dashboard shows: the run data deltas the engine hands over once
//! per second, added into the run's data so far (the same `RunData::add`
//! that builds the report). Holds no terminal state, so layouts can be
//! tested.

use crate::metrics::data::N_METRICS;
use crate::metrics::evaluate::{EvalContext, evaluate, stat_ns};
use crate::metrics::{ErrorKind, RunData, StageData};
use crate::scenario::{Counter, LatencyMetric, Scenario, Stat, ThresholdMetric};

/// Latency metrics the dashboard can chart and tabulate, in Tab order:
/// every one (only those with samples are shown).
pub const CHART_METRICS: [LatencyMetric; N_METRICS] = LatencyMetric::ALL;

/// Percentiles shown in the latency table.
pub const TABLE_STATS: [(&str, Stat); 5] = [
    ("p50", Stat::Percentile(50.0)),
    ("p90", Stat::Percentile(90.0)),
    ("p99", Stat::Percentile(99.0)),
    ("p99.9", Stat::Percentile(99.9)),
    ("max", Stat::Max),
];

/// A latency table row: the metric, `TABLE_STATS` of the last interval and
/// of the whole run (ns, `None` without samples).
pub type LatencyRow = (LatencyMetric, [Option<f64>; 5], [Option<f64>; 5]);

/// One second of history for the charts.
#[derive(Debug, Clone, Default)]
pub struct Point {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Messages sent per second.
    pub sent_per_s: f64,
    /// Messages received per second: replies, deliveries and the rest
    /// (expect matches, unmatched).
    pub received_per_s: f64,
    /// Of them, replies to sends.
    pub replies_per_s: f64,
    /// Of them, timestamped deliveries that answered nothing.
    pub deliveries_per_s: f64,
    /// Open-model target rate, if any.
    pub target: Option<f64>,
    /// Payload bytes per second, both directions.
    pub bytes_per_s: f64,
    /// Per chart metric: (p50, p99) of the interval in ns, if it had samples.
    pub latency: [Option<(u64, u64)>; N_METRICS],
}

/// A threshold's live state.
#[derive(Debug, Clone)]
pub struct LiveThreshold {
    /// The expression.
    pub expr: String,
    /// The observed value with its unit.
    pub observed: String,
    /// Whether it holds right now.
    pub pass: bool,
    /// No value yet (no samples, or decided only at the end).
    pub pending: bool,
}

/// Where the run is, as of the newest delta.
#[derive(Debug, Clone, Default)]
pub struct Now {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Phase running, if any.
    pub phase: Option<usize>,
    /// Seconds since the phases started (0 before).
    pub load_s: f64,
    /// Connections open.
    pub open: u64,
    /// Most open at once so far.
    pub peak_open: u64,
    /// Live rate multiplier.
    pub rate_factor: f64,
    /// Whether sending is paused.
    pub paused: bool,
}

/// Everything the dashboard draws.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// The scenario as run.
    pub scenario: Scenario,
    /// Target URL shown in the header.
    pub target: String,
    /// Everything so far (every stage).
    pub total: RunData,
    /// Setup and the recorded phases so far, every role added: what the
    /// run's totals and thresholds count (added once a delta).
    pub recorded: StageData,
    /// The last interval, every stage and role added.
    pub interval: StageData,
    /// Where the run is.
    pub now: Now,
    /// One point per snapshot.
    pub history: Vec<Point>,
    /// Index into [`CHART_METRICS`] of the charted metric once Tab was
    /// pressed; until then it is chosen ([`DashboardState::chart_index`]).
    pub metric: Option<usize>,
    /// Whether the key help is shown.
    pub show_help: bool,
    /// Live thresholds.
    pub thresholds: Vec<LiveThreshold>,
    /// Open-file limit of the process.
    pub fd_limit: u64,
    /// Descriptors open at the last snapshot (counted once per snapshot).
    pub fds_open: usize,
    /// Connections opened per second in the last interval.
    pub opening_rate: f64,
    /// Connections closed per second in the last interval, by barrage
    /// (churn, a phase lowering the count) and by the server.
    pub closing_rate: f64,
    /// The running phase's rate when it was set while the run goes (a
    /// search's step), replacing the scenario's.
    pub phase_rate: Option<f64>,
    /// The running phase's connection target when it was set while the
    /// run goes (a search over connections).
    pub phase_connections: Option<u32>,
}

impl DashboardState {
    /// An empty state for `scenario` against `target`.
    pub fn new(scenario: Scenario, target: String, fd_limit: u64) -> Self {
        DashboardState {
            scenario,
            target,
            total: RunData::default(),
            recorded: StageData::default(),
            interval: StageData::default(),
            now: Now {
                rate_factor: 1.0,
                ..Now::default()
            },
            history: Vec::new(),
            metric: None,
            show_help: false,
            thresholds: Vec::new(),
            fd_limit,
            fds_open: 0,
            opening_rate: 0.0,
            closing_rate: 0.0,
            phase_rate: None,
            phase_connections: None,
        }
    }

    /// The connection count the running phase steers toward.
    pub fn target_connections(&self) -> u32 {
        match self.now.phase {
            Some(i) => self
                .phase_connections
                .unwrap_or_else(|| self.scenario.phase_population(i).0),
            None => self.scenario.connections.count,
        }
    }

    /// Folds in one delta.
    pub fn push(&mut self, delta: &RunData) {
        self.total.add(delta);
        let Some(sec) = delta.timeline.last().cloned() else {
            return;
        };
        let interval_s = sec.interval_ms as f64 / 1000.0;
        let per_s = |n: u64| {
            if interval_s > 0.0 {
                n as f64 / interval_s
            } else {
                0.0
            }
        };
        let iv = delta.all();
        let latency = std::array::from_fn(|i| {
            let h = iv.histogram(CHART_METRICS[i]);
            (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
        });
        let t_ms = self.total.timeline.last().map_or(sec.t_ms, |s| s.t_ms);
        let (rate_factor, paused) = self.total.control_at(t_ms);
        self.now = Now {
            t_s: t_ms as f64 / 1000.0,
            phase: sec.phase,
            load_s: self
                .total
                .facts
                .load_started_ms
                .map_or(0.0, |l| t_ms.saturating_sub(l) as f64 / 1000.0),
            open: sec.open,
            peak_open: self.now.peak_open.max(sec.peak_open),
            rate_factor,
            paused,
        };
        self.opening_rate = per_s(iv.counters.opened);
        self.closing_rate = per_s(iv.counters.closed + iv.counters.closed_by_server);
        self.fds_open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let c = &iv.counters;
        self.history.push(Point {
            t_s: self.now.t_s,
            sent_per_s: per_s(c.sent),
            received_per_s: per_s(c.received + c.delivered + c.unmatched),
            replies_per_s: per_s(c.replies),
            deliveries_per_s: per_s(c.delivered),
            target: self.target_rate(),
            bytes_per_s: per_s(c.bytes_sent + c.bytes_received),
            latency,
        });
        let record: Vec<bool> = self.scenario.phases.iter().map(|p| p.record).collect();
        self.recorded = self.total.recorded(&record);
        let ctx = EvalContext {
            recorded: &self.recorded,
            phases: Vec::new(),
            ended: false,
        };
        self.thresholds = self
            .scenario
            .thresholds
            .iter()
            .map(|t| {
                let r = evaluate(t, &ctx);
                LiveThreshold {
                    expr: t.expr.clone(),
                    observed: r.observed_text,
                    pass: r.pass,
                    pending: r.pending,
                }
            })
            .collect();
        self.interval = iv;
    }

    /// The open-model target rate now, with the live factor.
    pub fn target_rate(&self) -> Option<f64> {
        let i = self.now.phase?;
        let phases = &self.scenario.phases;
        let phase = phases.get(i)?;
        // A ramp's rate where the phase is now.
        let begin: f64 = phases[..i].iter().map(|p| p.duration.as_secs_f64()).sum();
        let fraction = (self.now.load_s - begin) / phase.duration.as_secs_f64();
        let rate = self.phase_rate.or_else(|| phase.rate.at(fraction))?;
        Some(if self.now.paused {
            0.0
        } else {
            rate * self.now.rate_factor
        })
    }

    /// Whether metric `i` has samples so far.
    fn has_samples(&self, i: usize) -> bool {
        let m = CHART_METRICS[i];
        !self.recorded.histogram(m).is_empty() || !self.interval.histogram(m).is_empty()
    }

    /// Index of the charted metric: the one Tab chose; else the first
    /// latency metric a threshold names that has samples; else the one
    /// with the most samples (rtt before any).
    pub fn chart_index(&self) -> usize {
        if let Some(i) = self.metric {
            return i;
        }
        let named = self.scenario.thresholds.iter().find_map(|t| {
            let m = match t.metric {
                ThresholdMetric::Latency { metric, .. } => metric,
                ThresholdMetric::Count(Counter::Samples(m) | Counter::SampleRate(m)) => m,
                _ => return None,
            };
            let i = CHART_METRICS.iter().position(|c| *c == m)?;
            self.has_samples(i).then_some(i)
        });
        named.unwrap_or_else(|| {
            (0..CHART_METRICS.len())
                .rev()
                .max_by_key(|i| self.recorded.histogram(CHART_METRICS[*i]).len())
                .filter(|i| self.has_samples(*i))
                .unwrap_or(0)
        })
    }

    /// The charted metric.
    pub fn chart_metric(&self) -> LatencyMetric {
        CHART_METRICS[self.chart_index()]
    }

    /// Charts the next metric that has samples.
    pub fn next_metric(&mut self) {
        let now = self.chart_index();
        let n = CHART_METRICS.len();
        let next = (1..=n)
            .map(|k| (now + k) % n)
            .find(|i| self.has_samples(*i))
            .unwrap_or((now + 1) % n);
        self.metric = Some(next);
    }

    /// Latency table rows: the metric, then `TABLE_STATS` for the last
    /// interval and for the whole run (ns); metrics without samples are left out.
    pub fn latency_rows(&self) -> Vec<LatencyRow> {
        let stats = |d: &StageData, m: LatencyMetric| {
            TABLE_STATS.map(|(_, st)| stat_ns(d.histogram(m), st))
        };
        let (interval, recorded) = (&self.interval, &self.recorded);
        CHART_METRICS
            .iter()
            .filter(|m| !recorded.histogram(**m).is_empty() || !interval.histogram(**m).is_empty())
            .map(|m| (*m, stats(interval, *m), stats(recorded, *m)))
            .collect()
    }

    /// The metrics with samples, in the order they keep their latency
    /// table rows when not all fit: the charted one, those thresholds name,
    /// then `priority`.
    pub fn metrics_by_priority(&self, priority: &[LatencyMetric]) -> Vec<LatencyMetric> {
        let named = self
            .scenario
            .thresholds
            .iter()
            .filter_map(|t| match t.metric {
                ThresholdMetric::Latency { metric, .. } => Some(metric),
                ThresholdMetric::Count(Counter::Samples(m) | Counter::SampleRate(m)) => Some(m),
                _ => None,
            });
        let mut out: Vec<LatencyMetric> = Vec::new();
        for m in std::iter::once(self.chart_metric())
            .chain(named)
            .chain(priority.iter().copied())
        {
            let i = CHART_METRICS.iter().position(|c| *c == m);
            if i.is_some_and(|i| self.has_samples(i)) && !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// Error counts by kind so far, as the report counts them (setup and
    /// the recorded phases).
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        let c = &self.recorded.counters;
        ErrorKind::ALL
            .iter()
            .map(|k| (k.name(), c.errors_of(*k)))
            .collect()
    }

    /// Planned length of the phases, in seconds.
    pub fn planned_s(&self) -> f64 {
        self.scenario.total_duration().as_secs_f64()
    }
}
