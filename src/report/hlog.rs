//! `<metric>.hlog`: an HdrHistogram interval log per latency metric, one
//! histogram per second, in the standard format (HistogramLogProcessor,
//! HdrHistogramVisualizer and the Python `hdrhistogram` package read it).

use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::model::Report;
use crate::metrics::decode_histogram;
use crate::scenario::LatencyMetric;

/// Tag of the intervals of phases with `record: false` (warm-up): tools
/// that read untagged intervals (the default) then count exactly what the
/// report counts.
pub const UNRECORDED_TAG: &str = "unrecorded";

/// The interval log of `metric`, or `None` when no second has samples of it.
/// Recorded intervals are untagged; unrecorded ones carry [`UNRECORDED_TAG`].
pub fn render(r: &Report, metric: LatencyMetric) -> Option<Vec<u8>> {
    let name = metric.name();
    let timeline = &r.run_data.timeline;
    if !timeline
        .iter()
        .any(|p| p.histograms.contains_key(name) || p.unrecorded_histograms.contains_key(name))
    {
        return None;
    }
    let start = humantime::parse_rfc3339(&r.started_at).unwrap_or(UNIX_EPOCH);
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "barrage {} · scenario {} · metric {name} · values in nanoseconds · intervals tagged {UNRECORDED_TAG} are not in the report's totals",
            r.barrage_version, r.scenario.name
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut serializer)
        .expect("writing into memory does not fail");
    for p in timeline {
        let begin = Duration::from_millis(p.t_ms.saturating_sub(p.interval_ms));
        let length = Duration::from_millis(p.interval_ms);
        for (enc, tag) in [
            (&p.histograms, None),
            (&p.unrecorded_histograms, Tag::new(UNRECORDED_TAG)),
        ] {
            if let Some(h) = enc.get(name).and_then(|b| decode_histogram(b).ok()) {
                log.write_histogram(&h, begin, length, tag)
                    .expect("writing into memory does not fail");
            }
        }
    }
    Some(out)
}
