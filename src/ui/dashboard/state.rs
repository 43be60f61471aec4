//! What the dashboard shows, folded from the snapshots the engine hands over
//! once per second. Holds no terminal state, so layouts can be tested.

use crate::metrics::evaluate::{EvalContext, evaluate, stat_ns};
use crate::metrics::{ErrorKind, Snapshot, StageData};
use crate::scenario::{LatencyMetric, PhaseRate, Scenario, Stat};

/// Latency metrics the dashboard can chart, in Tab order.
pub const CHART_METRICS: [LatencyMetric; 5] = [
    LatencyMetric::Rtt,
    LatencyMetric::Service,
    LatencyMetric::SendLag,
    LatencyMetric::Connect,
    LatencyMetric::Handshake,
];

/// Percentiles shown in the latency table.
pub const TABLE_STATS: [(&str, Stat); 5] = [
    ("p50", Stat::Percentile(50.0)),
    ("p90", Stat::Percentile(90.0)),
    ("p99", Stat::Percentile(99.0)),
    ("p99.9", Stat::Percentile(99.9)),
    ("max", Stat::Max),
];

/// A latency table row: metric name, `TABLE_STATS` of the last interval and
/// of the whole run (ns, `None` without samples).
pub type LatencyRow = (&'static str, [Option<f64>; 5], [Option<f64>; 5]);

/// One second of history for the charts.
#[derive(Debug, Clone, Default)]
pub struct Point {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Messages sent per second.
    pub sent_per_s: f64,
    /// Replies per second.
    pub received_per_s: f64,
    /// Open-model target rate, if any.
    pub target: Option<f64>,
    /// Payload bytes per second, both directions.
    pub bytes_per_s: f64,
    /// Per chart metric: (p50, p99) of the interval in ns, if it had samples.
    pub latency: [Option<(u64, u64)>; 5],
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
}

/// Everything the dashboard draws.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// The scenario as run.
    pub scenario: Scenario,
    /// Target URL shown in the header.
    pub target: String,
    /// The newest snapshot.
    pub last: Snapshot,
    /// One point per snapshot.
    pub history: Vec<Point>,
    /// Index into [`CHART_METRICS`] of the charted metric (Tab cycles).
    pub metric: usize,
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
}

impl DashboardState {
    /// An empty state for `scenario` against `target`.
    pub fn new(scenario: Scenario, target: String, fd_limit: u64) -> Self {
        DashboardState {
            scenario,
            target,
            last: Snapshot::default(),
            history: Vec::new(),
            metric: 0,
            show_help: false,
            thresholds: Vec::new(),
            fd_limit,
            fds_open: 0,
            opening_rate: 0.0,
        }
    }

    /// Folds in one snapshot.
    pub fn push(&mut self, s: Snapshot) {
        let per_s = |n: u64| {
            if s.interval_s > 0.0 {
                n as f64 / s.interval_s
            } else {
                0.0
            }
        };
        let latency = std::array::from_fn(|i| {
            let h = s.interval.histogram(CHART_METRICS[i]);
            (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
        });
        self.opening_rate = per_s(s.opened.saturating_sub(self.last.opened));
        self.fds_open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        self.history.push(Point {
            t_s: s.t_s,
            sent_per_s: per_s(s.sent),
            received_per_s: per_s(s.received),
            target: self.target_rate(&s),
            bytes_per_s: per_s(s.bytes_sent + s.bytes_received),
            latency,
        });
        self.thresholds = self
            .scenario
            .thresholds
            .iter()
            .map(|t| {
                let ctx = EvalContext {
                    recorded: &s.recorded,
                    phases: Vec::new(),
                    attempted: s.attempted,
                    opened: s.opened,
                    failed: s.failed,
                };
                let r = evaluate(t, &ctx);
                LiveThreshold {
                    expr: t.expr.clone(),
                    observed: r.observed_text,
                    pass: r.pass,
                }
            })
            .collect();
        self.last = s;
    }

    /// The open-model target rate at snapshot `s`, with the live factor.
    pub fn target_rate(&self, s: &Snapshot) -> Option<f64> {
        let phase = self.scenario.phases.get(s.phase?)?;
        match phase.rate {
            PhaseRate::PerSecond(_) if s.paused => Some(0.0),
            PhaseRate::PerSecond(r) => Some(r.per_second * s.rate_factor),
            PhaseRate::Max => None,
        }
    }

    /// The charted metric.
    pub fn chart_metric(&self) -> LatencyMetric {
        CHART_METRICS[self.metric % CHART_METRICS.len()]
    }

    /// Cycles the charted metric.
    pub fn next_metric(&mut self) {
        self.metric = (self.metric + 1) % CHART_METRICS.len();
    }

    /// Latency table rows: metric name, then `TABLE_STATS` for the last
    /// interval and for the whole run (ns); metrics without samples are left out.
    pub fn latency_rows(&self) -> Vec<LatencyRow> {
        let stats = |d: &StageData, m: LatencyMetric| {
            TABLE_STATS.map(|(_, st)| stat_ns(d.histogram(m), st))
        };
        CHART_METRICS
            .iter()
            .filter(|m| {
                !self.last.recorded.histogram(**m).is_empty()
                    || !self.last.interval.histogram(**m).is_empty()
            })
            .map(|m| {
                (
                    m.name(),
                    stats(&self.last.interval, *m),
                    stats(&self.last.recorded, *m),
                )
            })
            .collect()
    }

    /// Error counts by kind so far.
    pub fn errors(&self) -> Vec<(&'static str, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|k| (k.name(), self.last.errors_of(*k)))
            .collect()
    }

    /// Planned length of the phases, in seconds.
    pub fn planned_s(&self) -> f64 {
        self.scenario.total_duration().as_secs_f64()
    }
}
