//! The report as written to `report.json`: the run data it was derived
//! from (`run_data`) and everything `report::build` derives from it. Field
//! names are the schema; docs/report.md documents each one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Value of the `schema` field.
pub const SCHEMA: &str = "barrage/report/v2";

/// The outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The run ran and every threshold held (or there were none).
    Pass,
    /// A threshold failed, or `abort_on_fail` stopped the run.
    Fail,
    /// The run itself failed (no connection opened, shards missing): its
    /// numbers say nothing about the thresholds. See `error`.
    Error,
}

impl Verdict {
    /// The word people read: PASS, FAIL, ERROR.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Version of barrage that wrote it.
    pub barrage_version: String,
    /// What was run.
    pub scenario: ScenarioInfo,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Run length in seconds, connection ramp and drain included.
    pub duration_s: f64,
    /// pass, fail (a threshold) or error (the run failed; see `error`).
    pub verdict: Verdict,
    /// Why the run failed, with verdict `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A capacity search's steps and answer (`barrage search`); its verdict
    /// is the search's: pass when a capacity was found (at least `--min`),
    /// fail below `--min`, error when even the first step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<super::search::SearchReport>,
    /// True when the run was stopped early (Ctrl-C); totals cover what ran.
    pub interrupted: bool,
    /// Set when an `abort_on_fail` threshold stopped the run early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
    /// True when the tester could not keep an open-model schedule in a
    /// recorded phase (see `phases[].saturated`): its numbers then describe
    /// the tester as much as the server.
    pub saturated: bool,
    /// Counters over the whole run.
    pub totals: Totals,
    /// Latency summaries by metric name, over the recorded phases (connect
    /// and handshake over all connections).
    pub metrics: BTreeMap<String, MetricSummary>,
    /// One entry per phase, in order.
    pub phases: Vec<PhaseReport>,
    /// One entry per second.
    pub timeline: Vec<TimelinePoint>,
    /// Live changes made from the dashboard (`p`, `+`, `-`), in order.
    #[serde(default)]
    pub rate_changes: Vec<RateChangeReport>,
    /// Each role of a scenario with several, over the recorded phases.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleReport>,
    /// Each threshold with its observed value.
    pub thresholds: Vec<ThresholdResult>,
    /// The slice of the run this report covers (`--shard I/N`); absent for
    /// a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::scenario::ShardSpec>,
    /// Set on a report made by `barrage merge`: what it was made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergeInfo>,
    /// Everything the run measured, from which every other field here is
    /// derived (`barrage report`, `compare` and `merge` derive again from it).
    pub run_data: crate::metrics::RunData,
}

/// What a merged report was made of.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MergeInfo {
    /// How many reports were added.
    pub reports: u32,
    /// The shard count N of sharded inputs (absent when none was sharded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<u32>,
    /// Shard indexes that were added, in order.
    #[serde(default)]
    pub shards: Vec<u32>,
    /// Shard indexes of 0..N that were not among the inputs: the merged
    /// numbers then cover only part of the run.
    #[serde(default)]
    pub missing: Vec<u32>,
}

/// The threshold that stopped a run early.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aborted {
    /// The threshold expression.
    pub threshold: String,
    /// Seconds since the run started when it was found broken.
    pub t_s: f64,
}

impl Report {
    /// Every phase's `record` flag, in order.
    pub fn record_flags(&self) -> Vec<bool> {
        self.scenario.phases.iter().map(|p| p.record).collect()
    }
}

/// The scenario as run (after command-line overrides).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// `name:` of the scenario.
    pub name: String,
    /// Path of the scenario file, if it came from one.
    pub file: Option<String>,
    /// The URL connected to (the built-in server's real address for `builtin`).
    pub target: String,
    /// Connections to open.
    pub connections: u32,
    /// Connection opening rate per second.
    pub connection_rate: f64,
    /// Planned phases.
    pub phases: Vec<PhasePlan>,
    /// The scenario file's text (at most 64 KiB), shown in report.html.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The thresholds as written (evaluated again whenever the report is
    /// derived).
    #[serde(default)]
    pub thresholds: Vec<String>,
    /// A capacity search (`barrage search`): its SLOs and bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<super::search::SearchPlan>,
}

/// A phase as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhasePlan {
    /// Phase name.
    pub name: String,
    /// Planned duration in seconds.
    pub duration_s: f64,
    /// Total messages per second (a ramp's mean), `null` for `rate: max` or
    /// no rate.
    pub rate: Option<f64>,
    /// A ramp's rates at the phase start and end (`rate: 1000/s..20000/s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<[f64; 2]>,
    /// `rate: max` (the closed model).
    #[serde(default)]
    pub max: bool,
    /// Messages in flight per connection for `rate: max`.
    pub inflight: u32,
    /// Whether the phase counts in totals and thresholds.
    pub record: bool,
    /// The connection count the phase moves toward (`connections:` in the
    /// phase, a search step's count), if it sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// One role of a scenario with `roles:`, over the recorded phases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleReport {
    /// Connections assigned to the role.
    pub connections: u64,
    /// Its messages.
    pub messages: MessageTotals,
    /// Its errors, all kinds.
    pub errors: u64,
    /// Its latency summaries with samples (`rtt`, `service`, `send_lag`,
    /// `delivery`, `ping`).
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// Counters of the whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Connection counters.
    pub connections: ConnectionTotals,
    /// Message counts over the recorded phases.
    pub messages: MessageTotals,
    /// Payload bytes over the recorded phases.
    pub bytes: ByteTotals,
    /// Errors by kind, over setup and the recorded phases (what `errors.*`
    /// thresholds count).
    pub errors: BTreeMap<String, u64>,
    /// Close frames received from the server, by close code.
    #[serde(default)]
    pub close_codes: BTreeMap<String, u64>,
    /// Upgrades the server refused, by HTTP status (401, 403, 429, 503 …).
    #[serde(default)]
    pub http_statuses: BTreeMap<String, u64>,
    /// The last few distinct error messages, oldest first.
    #[serde(default)]
    pub recent_errors: Vec<String>,
}

/// Connection counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectionTotals {
    /// Attempts started.
    pub attempted: u64,
    /// Upgrades completed.
    pub opened: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Most open at once.
    pub peak_open: u64,
    /// Open connections the server closed or reset.
    pub closed_by_server: u64,
    /// Open connections barrage closed during the phases (churn, a phase
    /// lowering the count); not errors.
    #[serde(default)]
    pub closed: u64,
    /// Connections opened per second while opening them (opened / time
    /// from the first attempt until every attempt had opened or failed).
    pub open_rate: f64,
    /// Connections that agreed permessage-deflate.
    #[serde(default)]
    pub compressed: u64,
    /// Connections for which the server chose an offered subprotocol.
    #[serde(default)]
    pub subprotocol: u64,
}

/// Message counters (docs/report.md says exactly what each counts).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessageTotals {
    /// Messages sent: `paced` plus other sends (a flow's join, subscribe).
    pub sent: u64,
    /// Of `sent`, the first send of each paced loop iteration.
    #[serde(default)]
    pub paced: u64,
    /// Messages received and consumed: `replies` plus `expect` matches.
    pub received: u64,
    /// Replies matched to a correlated send.
    #[serde(default)]
    pub replies: u64,
    /// Replies correlated sends awaited.
    #[serde(default)]
    pub awaited: u64,
    /// Awaited replies that never came (`awaited = replies + unanswered`).
    #[serde(default)]
    pub unanswered: u64,
    /// Messages that carried a delivery timestamp and answered nothing.
    #[serde(default)]
    pub delivered: u64,
    /// `expect` steps that began waiting (each may time out once).
    #[serde(default)]
    pub expects: u64,
    /// Messages received during the phases that matched nothing.
    pub unmatched: u64,
    /// Open model: paced messages that came due but were not sent before
    /// their phase ended (the tester fell behind).
    #[serde(default)]
    pub not_sent: u64,
    /// Messages received with a `sequence:` number.
    #[serde(default)]
    pub sequenced: u64,
    /// Sequence numbers that never arrived (gaps in a stream).
    #[serde(default)]
    pub lost: u64,
    /// Sequence numbers that arrived again.
    #[serde(default)]
    pub duplicate: u64,
    /// Sequence numbers that arrived after a higher one of their stream.
    #[serde(default)]
    pub reordered: u64,
    /// With `fanout:`: deliveries expected (for each paced send, the other
    /// members of the sender's room as it was sent); `delivered` ÷ this is
    /// `delivery.ratio`.
    #[serde(default)]
    pub fanout_expected: u64,
}

/// Byte counters: message bytes (payloads as the application sees them)
/// and wire bytes (WebSocket frames with headers, compressed when
/// permessage-deflate is on; TLS overhead not included).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ByteTotals {
    /// Payload bytes sent.
    pub sent: u64,
    /// Payload bytes received.
    pub received: u64,
    /// Frame bytes sent.
    #[serde(default)]
    pub wire_sent: u64,
    /// Frame bytes received.
    #[serde(default)]
    pub wire_received: u64,
}

/// Summary of one latency histogram; times in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetricSummary {
    /// Samples.
    pub count: u64,
    /// Smallest sample.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Base64 of the HdrHistogram V2 + DEFLATE serialization, values in ns.
    pub histogram: String,
}

/// One phase as run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Phase name.
    pub name: String,
    /// How long it ran, in seconds.
    pub duration_s: f64,
    /// Planned total messages per second, `null` for `rate: max`.
    pub target_rate: Option<f64>,
    /// Paced sends per second of phase (a flow's other sends are in
    /// `messages.sent` only).
    pub achieved_rate: f64,
    /// Open model: the schedule, `messages.paced + messages.not_sent`:
    /// what the target rate (times the live factor, 0 while paused) came to.
    #[serde(default)]
    pub scheduled: u64,
    /// Whether it counts in totals and thresholds.
    pub record: bool,
    /// Message counters of the phase.
    pub messages: MessageTotals,
    /// Errors found during the phase.
    pub errors: u64,
    /// The same by kind.
    #[serde(default)]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Open model only: the tester fell behind its schedule (send_lag p99
    /// over 10 ms, or under 99% of `scheduled` sent).
    pub saturated: bool,
    /// `rtt`, `service`, `send_lag` of messages scheduled in this phase.
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Phase running at that second, if any.
    pub phase: Option<String>,
    /// Connections open.
    pub open: u64,
    /// Connection attempts started in the second (openings and reopenings:
    /// a reconnect storm shows here).
    #[serde(default)]
    pub attempts: u64,
    /// Connections opened in the second (upgrades completed).
    #[serde(default)]
    pub opened: u64,
    /// Connections closed in the second: by barrage (churn, a lower count)
    /// and by the server.
    #[serde(default)]
    pub closed: u64,
    /// Messages sent in the second.
    pub sent: u64,
    /// Messages received and consumed in the second (replies and `expect`
    /// matches).
    pub received: u64,
    /// Messages received in the second that carried a delivery timestamp
    /// and answered nothing else (`received + delivered + unmatched` is
    /// every message received).
    #[serde(default)]
    pub delivered: u64,
    /// Messages received in the second that matched nothing.
    #[serde(default)]
    pub unmatched: u64,
    /// Messages received in the second with a `sequence:` number.
    #[serde(default)]
    pub sequenced: u64,
    /// Sequence numbers found lost in the second.
    #[serde(default)]
    pub lost: u64,
    /// Sequence numbers that arrived again in the second.
    #[serde(default)]
    pub duplicate: u64,
    /// Sequence numbers that arrived late in the second.
    #[serde(default)]
    pub reordered: u64,
    /// Errors in the second.
    pub errors: u64,
    /// `rtt` median in the second, µs.
    pub rtt_p50_us: f64,
    /// `rtt` 99th percentile in the second, µs.
    pub rtt_p99_us: f64,
    /// Open-model target rate at that moment (phase rate × live factor, 0
    /// while paused); `null` outside open-model phases.
    #[serde(default)]
    pub target_rate: Option<f64>,
}

/// A live change of the sending rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateChangeReport {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Multiplier of the scenario's rates from then on.
    pub factor: f64,
    /// Whether sending was paused from then on.
    pub paused: bool,
}

/// A threshold and what was observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The expression as written.
    pub expr: String,
    /// The observed value: µs for latencies, a fraction for rates.
    pub observed: f64,
    /// The observed value with its unit, for people.
    pub observed_text: String,
    /// Whether it held.
    pub pass: bool,
}
