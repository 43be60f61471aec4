//! What one cell of a run measured: counters and latency histograms of one
//! role in one stage, where stage 0 is connection setup and stage `i + 1`
//! is phase `i`. [`Counters`] is the one list of counted things; a new
//! counter is one line in the `counters!` invocation below.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

pub use crate::scenario::ErrorKind;
use crate::scenario::LatencyMetric;

/// Number of error kinds, the length of [`Counters::errors`].
pub const N_ERRORS: usize = ErrorKind::ALL.len();

/// Number of latency metrics, the length of [`StageData::hist`].
pub const N_METRICS: usize = LatencyMetric::ALL.len();

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// Everything a cell counts. Added field by field (saturating), never
        /// averaged; serialized by name, errors by kind name.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Counters {
            $( $(#[$doc])* #[serde(default)] pub $name: u64, )*
            /// Errors by [`ErrorKind`], in `ErrorKind::ALL` order.
            #[serde(default, with = "errors_by_name")]
            pub errors: [u64; N_ERRORS],
        }

        impl Counters {
            /// Adds `o` into `self`.
            pub fn add(&mut self, o: &Counters) {
                $( self.$name = self.$name.saturating_add(o.$name); )*
                for (a, b) in self.errors.iter_mut().zip(o.errors) {
                    *a = a.saturating_add(b);
                }
            }
        }
    };
}

counters! {
    /// Messages handed to the socket (paced and other sends).
    sent,
    /// Of `sent`, those sent by a paced `loop` (the phase's or role's rate,
    /// or `rate: max`): what the achieved rate counts.
    paced,
    /// Open model: paced messages that came due in a phase but were not sent
    /// before it ended (the tester fell behind). `paced + not_sent` of an
    /// open-model phase is its schedule.
    not_sent,
    /// Replies awaited by correlated sends (one per send, or `replies: N`).
    awaited,
    /// Replies matched to a correlated send (timed as `rtt` and `service`).
    replies,
    /// Awaited replies that never came (their timeout, the end of the run
    /// or of their connection): `awaited = replies + unanswered` once a run
    /// has ended.
    unanswered,
    /// Messages received and consumed: replies plus messages that satisfied
    /// an `expect` without answering a send.
    received,
    /// `expect` steps that began waiting: operations that can time out, as
    /// sends can (`errors.rate` counts them with attempts and sends).
    expects,
    /// Messages received that carried a `delivery` timestamp and answered
    /// nothing else.
    delivered,
    /// Messages received during the phases that matched nothing.
    unmatched,
    /// Messages received with a `sequence:` number.
    sequenced,
    /// Sequence numbers that never arrived (gaps in a stream).
    lost,
    /// Sequence numbers that arrived again.
    duplicate,
    /// Sequence numbers that arrived after a higher one of their stream.
    reordered,
    /// With `fanout:`: deliveries expected, for each paced send the other
    /// members of the sender's room as it was sent.
    fanout_expected,
    /// Payload bytes sent.
    bytes_sent,
    /// Payload bytes received.
    bytes_received,
    /// Frame bytes sent (headers and compressed payloads; no TLS overhead).
    wire_sent,
    /// Frame bytes received (data and control frames).
    wire_received,
    /// Connection attempts started.
    attempted,
    /// Connections that completed the upgrade.
    opened,
    /// Attempts that failed (connect, TLS or handshake).
    failed,
    /// Open connections that the server closed, reset, or broke.
    closed_by_server,
    /// Open connections barrage closed during the phases: churn
    /// (`connections.lifetime`) and a phase lowering the count. Not errors.
    closed,
    /// Connections that agreed permessage-deflate.
    compressed,
    /// Connections for which the server chose an offered subprotocol.
    subprotocol,
}

impl Counters {
    /// One of the `sequence:` counts.
    pub fn sequence_count(&self, k: crate::scenario::SequenceCount) -> u64 {
        use crate::scenario::SequenceCount as K;
        match k {
            K::Lost => self.lost,
            K::Duplicate => self.duplicate,
            K::Reordered => self.reordered,
        }
    }

    /// Sum of all error counts.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Errors of `kind`.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }
}

mod errors_by_name {
    use super::*;

    pub fn serialize<S: serde::Serializer>(e: &[u64; N_ERRORS], s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&str, u64> = ErrorKind::ALL
            .iter()
            .map(|k| (k.name(), e[*k as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        m.serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<[u64; N_ERRORS], D::Error> {
        let m: BTreeMap<String, u64> = BTreeMap::deserialize(d)?;
        let mut e = [0; N_ERRORS];
        for (name, n) in m {
            let k = ErrorKind::ALL
                .iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown error kind {name:?}")))?;
            e[*k as usize] = n;
        }
        Ok(e)
    }
}

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
/// The bytes depend only on the recorded values, not on how the histogram
/// grew (added in one order or another), so equal data encodes equally.
pub fn serialize_histogram(h: &Histogram<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let canonical = Histogram::<u64>::new_with_bounds(1, h.max().max(2), 3)
        .ok()
        .and_then(|mut c| c.add(h).ok().map(|()| c));
    V2DeflateSerializer::new()
        .serialize(canonical.as_ref().unwrap_or(h), &mut bytes)
        .expect("serializing into memory does not fail");
    bytes
}

/// HdrHistogram V2 cookies (uncompressed, and V2 + DEFLATE).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// Size of a V2 header: cookie, payload length, offset, digits, low, high,
/// ratio.
const V2_HEADER: usize = 40;
/// Most bytes a histogram may inflate to: every bucket of a 3-digit
/// histogram over the whole u64 range takes under 1 MiB.
const MAX_INFLATED: u64 = 8 << 20;

/// The histogram in `b64` (see [`encode_histogram`]), growing as needed.
/// Decoding is bounded by the input: declared lengths must fit the bytes
/// given, and the DEFLATE stream may inflate to at most 8 MiB, so a crafted
/// report cannot make it allocate gigabytes.
pub fn decode_histogram(b64: &str) -> Result<Histogram<u64>, String> {
    use std::io::Read;
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let be32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as usize)
            .ok_or_else(|| "not an HdrHistogram: too short".to_string())
    };
    let plain: Vec<u8> = match be32(&bytes, 0)? as u32 {
        V2_COMPRESSED_COOKIE => {
            let len = be32(&bytes, 4)?;
            let body = bytes.get(8..8 + len).ok_or_else(|| {
                format!(
                    "not an HdrHistogram: declares {len} compressed bytes, has {}",
                    bytes.len().saturating_sub(8)
                )
            })?;
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(body)
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("not an HdrHistogram: bad DEFLATE data: {e}"))?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(format!(
                    "not an HdrHistogram: inflates past {} MiB",
                    MAX_INFLATED >> 20
                ));
            }
            out
        }
        V2_COOKIE => bytes,
        other => return Err(format!("not an HdrHistogram: unknown cookie {other:#x}")),
    };
    if be32(&plain, 0)? as u32 != V2_COOKIE {
        return Err("not an HdrHistogram: bad inner cookie".into());
    }
    let declared = be32(&plain, 4)?;
    if declared > plain.len().saturating_sub(V2_HEADER) {
        return Err(format!(
            "not an HdrHistogram: declares a {declared}-byte payload, has {}",
            plain.len().saturating_sub(V2_HEADER)
        ));
    }
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut &plain[..])
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

/// Adds `b` into `a`; auto-resizing histograms accept any value.
pub fn add_histogram(a: &mut Histogram<u64>, b: &Histogram<u64>) {
    let _ = a.add(b);
}

fn metric_index(m: LatencyMetric) -> usize {
    m as usize
}

/// Latency histograms by metric, encoded (see [`encode_histogram`]); only
/// those with samples.
pub type EncodedHistograms = BTreeMap<String, String>;

/// Encodes the histograms of `hist` that have samples.
pub fn encode_all(hist: &[Histogram<u64>; N_METRICS]) -> EncodedHistograms {
    LatencyMetric::ALL
        .iter()
        .filter(|m| !hist[metric_index(**m)].is_empty())
        .map(|m| {
            (
                m.name().to_string(),
                encode_histogram(&hist[metric_index(*m)]),
            )
        })
        .collect()
}

/// Decodes what [`encode_all`] wrote.
pub fn decode_all(enc: &EncodedHistograms) -> Result<[Histogram<u64>; N_METRICS], String> {
    let mut hist: [Histogram<u64>; N_METRICS] = std::array::from_fn(|_| new_histogram());
    for (name, b64) in enc {
        let m = LatencyMetric::ALL
            .iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("unknown metric {name:?}"))?;
        hist[metric_index(*m)] = decode_histogram(b64).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(hist)
}

/// Counters and latency histograms of one role in one stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "EncodedStage", into = "EncodedStage")]
pub struct StageData {
    /// What was counted.
    pub counters: Counters,
    /// One histogram per [`LatencyMetric`], in `LatencyMetric::ALL` order.
    pub hist: [Histogram<u64>; N_METRICS],
}

/// The serialized form of [`StageData`].
#[derive(Serialize, Deserialize)]
struct EncodedStage {
    #[serde(flatten)]
    counters: Counters,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    histograms: EncodedHistograms,
}

impl From<StageData> for EncodedStage {
    fn from(d: StageData) -> Self {
        EncodedStage {
            counters: d.counters,
            histograms: encode_all(&d.hist),
        }
    }
}

impl TryFrom<EncodedStage> for StageData {
    type Error = String;
    fn try_from(e: EncodedStage) -> Result<Self, String> {
        Ok(StageData {
            counters: e.counters,
            hist: decode_all(&e.histograms)?,
        })
    }
}

impl Default for StageData {
    fn default() -> Self {
        StageData {
            counters: Counters::default(),
            hist: std::array::from_fn(|_| new_histogram()),
        }
    }
}

impl PartialEq for StageData {
    fn eq(&self, o: &Self) -> bool {
        self.counters == o.counters && self.hist == o.hist
    }
}

impl StageData {
    /// Records a latency in nanoseconds (0 stays 0; huge values saturate).
    #[inline]
    pub fn record(&mut self, metric: LatencyMetric, ns: u64) {
        // auto-resizing histograms only fail for values past u64 range.
        let _ = self.hist[metric_index(metric)].record(ns);
    }

    /// Counts one error.
    #[inline]
    pub fn error(&mut self, kind: ErrorKind) {
        self.counters.errors[kind as usize] += 1;
    }

    /// The histogram of `metric`.
    pub fn histogram(&self, metric: LatencyMetric) -> &Histogram<u64> {
        &self.hist[metric_index(metric)]
    }

    /// Adds `other` into `self` (histograms added, never averaged).
    pub fn add(&mut self, other: &StageData) {
        self.counters.add(&other.counters);
        for (a, b) in self.hist.iter_mut().zip(other.hist.iter()) {
            add_histogram(a, b);
        }
    }

    /// Clears counts, keeping allocations.
    pub fn reset(&mut self) {
        self.counters = Counters::default();
        for h in &mut self.hist {
            h.reset();
        }
    }

    /// Whether nothing was counted or recorded.
    pub fn is_empty(&self) -> bool {
        self.counters == Counters::default() && self.hist.iter().all(|h| h.is_empty())
    }
}
