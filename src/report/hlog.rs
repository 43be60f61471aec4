//! `<metric>.hlog`: an HdrHistogram interval log per latency metric, one
//! histogram per second, in the standard format (HistogramLogProcessor,
//! HdrHistogramVisualizer and the Python `hdrhistogram` package read it).

use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use super::model::Report;
use crate::metrics::decode_histogram;
use crate::scenario::LatencyMetric;

/// The interval log of `metric`, or `None` when no second has samples of it.
pub fn render(r: &Report, metric: LatencyMetric) -> Option<Vec<u8>> {
    let name = metric.name();
    if !r.timeline.iter().any(|p| p.histograms.contains_key(name)) {
        return None;
    }
    let start = humantime::parse_rfc3339(&r.started_at).unwrap_or(UNIX_EPOCH);
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "barrage {} · scenario {} · metric {name} · values in nanoseconds",
            r.barrage_version, r.scenario.name
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut out, &mut serializer)
        .expect("writing into memory does not fail");
    let mut prev = 0.0f64;
    for p in &r.timeline {
        if let Some(h) = p
            .histograms
            .get(name)
            .and_then(|b| decode_histogram(b).ok())
        {
            let begin = Duration::from_secs_f64(prev.max(0.0));
            let length = Duration::from_secs_f64((p.t_s - prev).max(0.0));
            log.write_histogram(&h, begin, length, None)
                .expect("writing into memory does not fail");
        }
        prev = p.t_s;
    }
    Some(out)
}
