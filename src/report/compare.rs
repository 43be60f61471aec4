//! `barrage compare`: a baseline report against a current one, metric by
//! metric, with tolerances; percentiles come from the stored histograms.

use std::collections::BTreeMap;

use super::model::Report;
use super::table::fmt_ns;
use crate::metrics::decode_histogram;
use crate::scenario::{LatencyMetric, Stat};

/// Tolerances used when `--max-regression` does not name a key. Latencies
/// may grow by the fraction, throughput may fall by it, and the error rate
/// may grow by it plus 0.1 percentage point (so 0 → 0.05% is not a regression).
pub const DEFAULTS: [(&str, f64); 6] = [
    ("rtt.p50", 0.10),
    ("rtt.p99", 0.10),
    ("rtt.p99.9", 0.25),
    ("connect.p99", 0.25),
    ("throughput", -0.05),
    ("errors.rate", 0.10),
];

/// Latency changes smaller than this are noise, neither a regression nor an
/// improvement whatever their percentage (`--min-change`, default 100 µs): a
/// 33 µs → 39 µs p99 is +18% and means nothing on a loaded machine.
pub const DEFAULT_MIN_CHANGE: &str = "100us";

/// Parses `rtt.p99=10%,throughput=-5%` into keys and fractions.
pub fn parse_tolerances(s: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected KEY=PERCENT, e.g. rtt.p99=10%"))?;
        let v = v.trim();
        let num = v
            .strip_suffix('%')
            .ok_or_else(|| format!("{part:?}: give the tolerance in %, e.g. 10%"))?;
        let f: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: {num:?} is not a number"))?;
        key_value_checked(k.trim())?;
        out.insert(k.trim().to_string(), f / 100.0);
    }
    Ok(out)
}

/// Checks that a key names something compare can measure.
fn key_value_checked(key: &str) -> Result<(), String> {
    if key == "throughput" || key == "errors.rate" {
        return Ok(());
    }
    let (metric, stat) = key
        .split_once('.')
        .ok_or_else(|| format!("{key:?}: expected METRIC.STAT, throughput or errors.rate"))?;
    if !LatencyMetric::ALL.iter().any(|m| m.name() == metric) {
        return Err(format!("{key:?}: unknown metric {metric:?}"));
    }
    parse_stat(stat).map(|_| ())
}

fn parse_stat(s: &str) -> Result<Stat, String> {
    match s {
        "min" => Ok(Stat::Min),
        "max" => Ok(Stat::Max),
        "mean" => Ok(Stat::Mean),
        p if p.starts_with('p') => p[1..]
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 100.0)
            .map(Stat::Percentile)
            .ok_or_else(|| format!("{s:?} is not a percentile like p99 or p99.9")),
        _ => Err(format!("{s:?}: use min, max, mean or pNN")),
    }
}

/// One compared value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What is compared, e.g. `rtt.p99`.
    pub key: String,
    /// Baseline value (ns for latencies, messages/s, or a fraction).
    pub baseline: Option<f64>,
    /// Current value.
    pub current: Option<f64>,
    /// Allowed change.
    pub tolerance: f64,
    /// Whether the change is beyond the tolerance (and, for a latency, the
    /// floor) in the bad direction.
    pub regression: bool,
    /// Whether it is beyond them in the good direction.
    pub improvement: bool,
}

/// The value of `key` in `r`.
pub fn value(r: &Report, key: &str) -> Option<f64> {
    match key {
        "throughput" => {
            let secs: f64 = r
                .phases
                .iter()
                .filter(|p| p.record)
                .map(|p| p.duration_s)
                .sum();
            (secs > 0.0).then(|| r.totals.messages.received as f64 / secs)
        }
        "errors.rate" => {
            let errors: u64 = r.totals.errors.values().sum();
            let denom = (r.totals.connections.attempted + r.totals.messages.sent).max(1);
            Some(errors as f64 / denom as f64)
        }
        _ => {
            let (metric, stat) = key.split_once('.')?;
            let h = decode_histogram(&r.metrics.get(metric)?.histogram).ok()?;
            crate::metrics::evaluate::stat_ns(&h, parse_stat(stat).ok()?)
        }
    }
}

/// Compares `current` with `baseline` on the default keys plus `extra`
/// (whose tolerances replace the defaults); a latency must also change by
/// at least `min_change_ns` to count either way.
pub fn compare(
    baseline: &Report,
    current: &Report,
    extra: &BTreeMap<String, f64>,
    min_change_ns: f64,
) -> Vec<Row> {
    let mut keys: BTreeMap<String, f64> =
        DEFAULTS.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    keys.extend(extra.iter().map(|(k, v)| (k.clone(), *v)));
    keys.into_iter()
        .map(|(key, tolerance)| {
            let (b, c) = (value(baseline, &key), value(current, &key));
            let t = tolerance.abs();
            let (regression, improvement) = match (b, c) {
                (Some(b), Some(c)) if key == "throughput" => (c < b * (1.0 - t), c > b * (1.0 + t)),
                (Some(b), Some(c)) if key == "errors.rate" => {
                    (c > b * (1.0 + t) + 0.001, c < b * (1.0 - t) - 0.001)
                }
                (Some(b), Some(c)) => (
                    c > b * (1.0 + t) && c - b >= min_change_ns,
                    c < b * (1.0 - t) && b - c >= min_change_ns,
                ),
                _ => (false, false),
            };
            Row {
                key,
                baseline: b,
                current: c,
                tolerance,
                regression,
                improvement,
            }
        })
        .collect()
}

fn show(key: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if key == "throughput" => format!("{v:.0}/s"),
        Some(v) if key == "errors.rate" => format!("{:.3}%", v * 100.0),
        Some(v) => fmt_ns(v),
    }
}

/// The comparison as a Markdown table, then how many regressions and
/// improvements it found (latency changes under `min_change_ns` are not
/// counted, as the last line says).
pub fn markdown(baseline: &Report, current: &Report, rows: &[Row], min_change_ns: f64) -> String {
    let mut out = format!(
        "### barrage compare: {} ({}) → {} ({})\n\n| metric | baseline | current | change | allowed | verdict |\n|---|---:|---:|---:|---:|---|\n",
        baseline.scenario.name, baseline.started_at, current.scenario.name, current.started_at
    );
    for r in rows {
        let change = match (r.baseline, r.current) {
            (Some(b), Some(c)) if b != 0.0 => format!("{:+.1}%", (c / b - 1.0) * 100.0),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:+.0}% | {} |\n",
            r.key,
            show(&r.key, r.baseline),
            show(&r.key, r.current),
            change,
            r.tolerance * 100.0,
            if r.regression {
                "**REGRESSION**"
            } else if r.improvement {
                "improvement"
            } else {
                "ok"
            }
        ));
    }
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    out.push_str(&format!(
        "\n{}, {} (latency changes under {} are ignored: --min-change)\n",
        count(
            rows.iter().filter(|r| r.regression).count(),
            "regression",
            "regressions"
        ),
        count(
            rows.iter().filter(|r| r.improvement).count(),
            "improvement",
            "improvements"
        ),
        fmt_ns(min_change_ns),
    ));
    out
}
