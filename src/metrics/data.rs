//! The data one thread (or one interval, or one run) accumulates: latency
//! histograms and counters per stage, where stage 0 is connection setup and
//! stage `i + 1` is phase `i`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::scenario::LatencyMetric;

/// Kinds of error a run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// TCP connect failed or timed out.
    Connect,
    /// The TLS handshake failed (certificate, protocol) or timed out.
    Tls,
    /// The upgrade failed (status, headers, accept key) or timed out.
    Handshake,
    /// A message got no reply before the run's drain deadline.
    Timeout,
    /// The server broke RFC 6455 (bad frame, bad UTF-8, bad close).
    Protocol,
    /// The connection was closed or reset by the server during the run.
    Closed,
    /// Our close frame got no close back within the close wait.
    CloseTimeout,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; N_ERRORS] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Handshake,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Closed,
        ErrorKind::CloseTimeout,
    ];

    /// Name used in reports and thresholds.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Handshake => "handshake",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Closed => "closed",
            ErrorKind::CloseTimeout => "close_timeout",
        }
    }
}

/// Number of error kinds, the length of [`StageData::errors`].
pub const N_ERRORS: usize = 7;

/// Number of latency metrics, the length of [`StageData::hist`].
pub const N_METRICS: usize = LatencyMetric::ALL.len();

/// A new latency histogram: nanoseconds, 3 significant digits, growing as
/// needed (so an idle one costs a few KiB, not 200).
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits is valid");
    h.auto(true);
    h
}

/// A histogram as base64 of its V2 + DEFLATE serialization (the compressed
/// form the HdrHistogram tools read; it starts with `HISTF`).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    STANDARD.encode(serialize_histogram(h))
}

/// A histogram's V2 + DEFLATE serialization (what [`encode_histogram`]
/// writes in base64). The buffer is sized for the worst case: keep a copy,
/// not the buffer (shrinking it in place left fragments behind in a long
/// run: bench/SOAK.md).
pub fn serialize_histogram(h: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into memory does not fail");
    bytes
}

/// The histogram in `b64` (see [`encode_histogram`]), growing as needed.
pub fn decode_histogram(b64: &str) -> Result<Histogram<u64>, String> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

fn metric_index(m: LatencyMetric) -> usize {
    LatencyMetric::ALL
        .iter()
        .position(|x| *x == m)
        .expect("metric is in ALL")
}

/// Latencies and counters of one stage.
#[derive(Debug, Clone)]
pub struct StageData {
    /// One histogram per [`LatencyMetric`], in `LatencyMetric::ALL` order.
    pub hist: [Histogram<u64>; N_METRICS],
    /// Messages handed to the socket.
    pub sent: u64,
    /// Replies received and matched to a sent message.
    pub received: u64,
    /// Data messages received that matched nothing in flight.
    pub unmatched: u64,
    /// Open-model messages whose phase ended before the tester sent them.
    pub not_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Frame bytes sent (headers and compressed payloads; no TLS overhead).
    pub wire_sent: u64,
    /// Frame bytes received (headers and compressed payloads).
    pub wire_received: u64,
    /// Errors by [`ErrorKind`], in `ErrorKind::ALL` order.
    pub errors: [u64; N_ERRORS],
}

impl Default for StageData {
    fn default() -> Self {
        StageData {
            hist: std::array::from_fn(|_| new_histogram()),
            sent: 0,
            received: 0,
            unmatched: 0,
            not_sent: 0,
            bytes_sent: 0,
            bytes_received: 0,
            wire_sent: 0,
            wire_received: 0,
            errors: [0; N_ERRORS],
        }
    }
}

impl StageData {
    /// Records a latency in nanoseconds (at least 1; huge values saturate).
    #[inline]
    pub fn record(&mut self, metric: LatencyMetric, ns: u64) {
        // auto-resizing histograms only fail for values past u64 range.
        let _ = self.hist[metric_index(metric)].record(ns.max(1));
    }

    /// Counts one error.
    #[inline]
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// The histogram of `metric`.
    pub fn histogram(&self, metric: LatencyMetric) -> &Histogram<u64> {
        &self.hist[metric_index(metric)]
    }

    /// Sum of all error counts.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds `other` into `self` (histograms added, never averaged).
    pub fn add(&mut self, other: &StageData) {
        for (a, b) in self.hist.iter_mut().zip(other.hist.iter()) {
            a.add(b).expect("auto-resizing histograms accept any value");
        }
        self.sent += other.sent;
        self.received += other.received;
        self.unmatched += other.unmatched;
        self.not_sent += other.not_sent;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.wire_sent += other.wire_sent;
        self.wire_received += other.wire_received;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
    }

    /// Clears counts, keeping allocations.
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.reset();
        }
        self.sent = 0;
        self.received = 0;
        self.unmatched = 0;
        self.not_sent = 0;
        self.bytes_sent = 0;
        self.bytes_received = 0;
        self.wire_sent = 0;
        self.wire_received = 0;
        self.errors = [0; N_ERRORS];
    }
}

/// Stage 0 (connection setup) and one stage per phase, and the recorded
/// phases of each role when a scenario has several.
#[derive(Debug, Clone)]
pub struct Shard {
    /// `stages[0]` is setup, `stages[i + 1]` is phase `i`.
    pub stages: Vec<StageData>,
    /// `roles[r]`: what role `r`'s connections recorded in the phases marked
    /// `record` (empty for a scenario with one role).
    pub roles: Vec<StageData>,
}

impl Shard {
    /// A shard for a scenario with `phases` phases.
    pub fn new(phases: usize) -> Self {
        Shard::with_roles(phases, 0)
    }

    /// A shard for `phases` phases that also keeps `roles` roles apart.
    pub fn with_roles(phases: usize, roles: usize) -> Self {
        Shard {
            stages: (0..=phases).map(|_| StageData::default()).collect(),
            roles: (0..roles).map(|_| StageData::default()).collect(),
        }
    }

    /// Adds `other` stage by stage and role by role.
    pub fn add(&mut self, other: &Shard) {
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            a.add(b);
        }
        for (a, b) in self.roles.iter_mut().zip(&other.roles) {
            a.add(b);
        }
    }

    /// Clears all stages and roles.
    pub fn reset(&mut self) {
        self.stages.iter_mut().for_each(StageData::reset);
        self.roles.iter_mut().for_each(StageData::reset);
    }

    /// All stages added together.
    pub fn total(&self) -> StageData {
        let mut t = StageData::default();
        for s in &self.stages {
            t.add(s);
        }
        t
    }
}
