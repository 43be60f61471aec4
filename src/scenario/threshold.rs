//! Pass/fail thresholds such as `rtt.p99 < 50ms` or `errors.rate < 1%`.

use serde::de::{Deserialize, Deserializer};

use super::units::duration_nanos;

/// One pass/fail condition checked against the recorded results.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as written, trimmed, e.g. `rtt.p99 < 50ms`.
    pub expr: String,
    /// What is measured.
    pub metric: ThresholdMetric,
    /// How the observed value is compared with `limit`.
    pub op: CmpOp,
    /// The limit: nanoseconds for latency statistics, a fraction (1% = 0.01)
    /// for `errors.rate`.
    pub limit: f64,
}

/// The quantity a threshold looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdMetric {
    /// A statistic of a latency distribution, e.g. `rtt.p99`.
    Latency {
        /// Which latency.
        metric: LatencyMetric,
        /// Which statistic of it.
        stat: Stat,
    },
    /// `errors.rate`: failed operations as a fraction of all operations.
    ErrorRate,
}

/// The latency distributions barrage records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyMetric {
    /// `rtt`: send to matching reply.
    Rtt,
    /// `service`: time the server took, as reported by it.
    Service,
    /// `connect`: TCP connect time.
    Connect,
    /// `handshake`: WebSocket upgrade time.
    Handshake,
    /// `send_lag`: how late a message was sent relative to its schedule.
    SendLag,
}

impl LatencyMetric {
    /// Every latency metric, in report order.
    pub const ALL: [LatencyMetric; 5] = [
        LatencyMetric::Rtt,
        LatencyMetric::Service,
        LatencyMetric::Connect,
        LatencyMetric::Handshake,
        LatencyMetric::SendLag,
    ];

    /// The name used in threshold expressions and reports.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMetric::Rtt => "rtt",
            LatencyMetric::Service => "service",
            LatencyMetric::Connect => "connect",
            LatencyMetric::Handshake => "handshake",
            LatencyMetric::SendLag => "send_lag",
        }
    }
}

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// `min`: smallest sample.
    Min,
    /// `mean`: arithmetic mean.
    Mean,
    /// `max`: largest sample.
    Max,
    /// `pN`: the N-th percentile, 0 < N ≤ 100 (`p99.9` is `Percentile(99.9)`).
    Percentile(f64),
}

impl Stat {
    /// The name used in threshold expressions: `min`, `mean`, `max`, `p99.9`.
    pub fn label(&self) -> String {
        match self {
            Stat::Min => "min".to_string(),
            Stat::Mean => "mean".to_string(),
            Stat::Max => "max".to_string(),
            Stat::Percentile(p) => format!("p{p}"),
        }
    }

    /// Parses `min`, `mean`, `max` or `pN`.
    fn parse(s: &str) -> Result<Stat, String> {
        match s {
            "min" => return Ok(Stat::Min),
            "mean" => return Ok(Stat::Mean),
            "max" => return Ok(Stat::Max),
            _ => {}
        }
        let bad = || {
            format!(
                "unknown statistic \"{s}\"; use min, mean, max or a percentile like p50, p95, p99, p99.9"
            )
        };
        let digits = s.strip_prefix('p').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad());
        }
        let p: f64 = digits.parse().map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!(
                "percentile {s} is out of range: must be above p0 and at most p100"
            ));
        }
        Ok(Stat::Percentile(p))
    }
}

/// Comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Shown when the expression has no recognisable shape.
const SHAPE_HELP: &str = "expected METRIC.STAT OP LIMIT, e.g. \"rtt.p99 < 50ms\" or \"errors.rate < 1%\" (operators: <, <=, >, >=)";

impl Threshold {
    /// Parses an expression such as `rtt.p99 < 50ms`, `rtt.p99.9 <= 2.5ms` or
    /// `errors.rate < 1%`.
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let expr = s.trim();
        let Some(op_at) = expr.find(['<', '>']) else {
            return Err(format!(
                "no comparison operator in \"{expr}\"; {SHAPE_HELP}"
            ));
        };
        let rest = &expr[op_at..];
        let (op, op_len) = match rest.as_bytes() {
            [b'<', b'=', ..] => (CmpOp::Le, 2),
            [b'>', b'=', ..] => (CmpOp::Ge, 2),
            [b'<', ..] => (CmpOp::Lt, 1),
            _ => (CmpOp::Gt, 1),
        };
        let lhs = expr[..op_at].trim();
        let rhs = rest[op_len..].trim();
        if lhs.is_empty() || rhs.is_empty() {
            return Err(format!("incomplete threshold \"{expr}\"; {SHAPE_HELP}"));
        }
        let metric = parse_metric(lhs)?;
        let limit = match metric {
            ThresholdMetric::ErrorRate => parse_fraction(rhs)?,
            ThresholdMetric::Latency { .. } => parse_latency_limit(rhs)?,
        };
        Ok(Threshold {
            expr: expr.to_string(),
            metric,
            op,
            limit,
        })
    }

    /// Whether `observed` (ns for latency, a fraction for errors.rate)
    /// satisfies this threshold.
    pub fn holds(&self, observed: f64) -> bool {
        match self.op {
            CmpOp::Lt => observed < self.limit,
            CmpOp::Le => observed <= self.limit,
            CmpOp::Gt => observed > self.limit,
            CmpOp::Ge => observed >= self.limit,
        }
    }
}

/// Parses `errors.rate` or `METRIC.STAT`.
fn parse_metric(lhs: &str) -> Result<ThresholdMetric, String> {
    if lhs == "errors.rate" {
        return Ok(ThresholdMetric::ErrorRate);
    }
    let (name, stat) = lhs.split_once('.').unwrap_or((lhs, ""));
    let Some(metric) = LatencyMetric::ALL.into_iter().find(|m| m.name() == name) else {
        return Err(format!(
            "unknown metric \"{lhs}\"; use errors.rate or one of rtt, service, connect, handshake, send_lag followed by .min, .mean, .max or .pN"
        ));
    };
    if stat.is_empty() {
        return Err(format!(
            "metric \"{lhs}\" needs a statistic: {name}.min, {name}.mean, {name}.max or {name}.pN (e.g. {name}.p99)"
        ));
    }
    Ok(ThresholdMetric::Latency {
        metric,
        stat: Stat::parse(stat)?,
    })
}

/// Parses `1%` or `0.01` into a fraction in `[0, 1]`.
fn parse_fraction(rhs: &str) -> Result<f64, String> {
    let (num, scale) = match rhs.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (rhs, 1.0),
    };
    let bad = || {
        format!("errors.rate limit \"{rhs}\" must be a percentage like 1% or a fraction like 0.01")
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v = num.parse::<f64>().map_err(|_| bad())? * scale;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!(
            "errors.rate limit \"{rhs}\" must be between 0% and 100%"
        ));
    }
    Ok(v)
}

/// Parses a latency limit; a duration unit is required.
fn parse_latency_limit(rhs: &str) -> Result<f64, String> {
    if rhs.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "latency limit \"{rhs}\" needs a duration unit: ns, us, µs, ms, s or m (e.g. \"{rhs}ms\")"
        ));
    }
    duration_nanos(rhs)
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
        super::units::deserialize_parsed(
            d,
            "a threshold string such as \"rtt.p99 < 50ms\"",
            Threshold::parse,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(metric: LatencyMetric, stat: Stat) -> ThresholdMetric {
        ThresholdMetric::Latency { metric, stat }
    }

    #[test]
    fn parses_latency_thresholds() {
        let t = Threshold::parse("  rtt.p99 < 50ms ").unwrap();
        assert_eq!(t.expr, "rtt.p99 < 50ms");
        assert_eq!(
            t.metric,
            latency(LatencyMetric::Rtt, Stat::Percentile(99.0))
        );
        assert_eq!(t.op, CmpOp::Lt);
        assert_eq!(t.limit, 50e6);

        let t = Threshold::parse("rtt.p99.9<100ms").unwrap();
        assert_eq!(
            t.metric,
            latency(LatencyMetric::Rtt, Stat::Percentile(99.9))
        );
        assert_eq!(t.limit, 100e6);

        let t = Threshold::parse("rtt.mean <= 2.5ms").unwrap();
        assert_eq!(t.metric, latency(LatencyMetric::Rtt, Stat::Mean));
        assert_eq!(t.op, CmpOp::Le);
        assert_eq!(t.limit, 2.5e6);

        let t = Threshold::parse("handshake.max < 1s").unwrap();
        assert_eq!(t.metric, latency(LatencyMetric::Handshake, Stat::Max));
        assert_eq!(t.limit, 1e9);

        let t = Threshold::parse("send_lag.min >= 10us").unwrap();
        assert_eq!(t.metric, latency(LatencyMetric::SendLag, Stat::Min));
        assert_eq!(t.op, CmpOp::Ge);
        assert_eq!(t.limit, 10e3);

        let t = Threshold::parse("connect.p95 > 1m").unwrap();
        assert_eq!(t.op, CmpOp::Gt);
        assert_eq!(t.limit, 60e9);
    }

    #[test]
    fn parses_error_rate() {
        let t = Threshold::parse("errors.rate < 1%").unwrap();
        assert_eq!(t.metric, ThresholdMetric::ErrorRate);
        assert!((t.limit - 0.01).abs() < 1e-12);
        let t = Threshold::parse("errors.rate <= 0.05").unwrap();
        assert_eq!(t.limit, 0.05);
        assert!(Threshold::parse("errors.rate < 150%").is_err());
        assert!(Threshold::parse("errors.rate < 5ms").is_err());
    }

    #[test]
    fn rejects_bad_thresholds_with_help() {
        let e = Threshold::parse("latency.p99 < 5ms").unwrap_err();
        assert!(
            e.contains("unknown metric") && e.contains("send_lag"),
            "{e}"
        );
        let e = Threshold::parse("rtt.avg < 5ms").unwrap_err();
        assert!(
            e.contains("unknown statistic \"avg\"") && e.contains("p99.9"),
            "{e}"
        );
        let e = Threshold::parse("rtt.p99 < 50").unwrap_err();
        assert!(e.contains("needs a duration unit"), "{e}");
        let e = Threshold::parse("rtt.p99 = 50ms").unwrap_err();
        assert!(e.contains("no comparison operator"), "{e}");
        assert!(Threshold::parse("rtt.p0 < 5ms").is_err());
        assert!(Threshold::parse("rtt.p100.1 < 5ms").is_err());
        assert!(
            Threshold::parse("rtt < 5ms")
                .unwrap_err()
                .contains("needs a statistic")
        );
        assert!(Threshold::parse("rtt.p99 <").is_err());
    }

    #[test]
    fn holds_compares() {
        let t = Threshold::parse("rtt.p99 < 50ms").unwrap();
        assert!(t.holds(49e6));
        assert!(!t.holds(50e6));
        let t = Threshold::parse("rtt.p99 <= 50ms").unwrap();
        assert!(t.holds(50e6));
        let t = Threshold::parse("rtt.min > 1ms").unwrap();
        assert!(t.holds(2e6) && !t.holds(1e6));
        let t = Threshold::parse("rtt.min >= 1ms").unwrap();
        assert!(t.holds(1e6) && !t.holds(0.5e6));
    }

    #[test]
    fn stat_labels() {
        assert_eq!(Stat::Percentile(99.9).label(), "p99.9");
        assert_eq!(Stat::Percentile(50.0).label(), "p50");
        assert_eq!(Stat::Mean.label(), "mean");
        assert_eq!(
            LatencyMetric::ALL.map(|m| m.name()).join(","),
            "rtt,service,connect,handshake,send_lag"
        );
    }
}
