//! Pass/fail thresholds such as `rtt.p99 < 50ms` or `errors.rate < 1%`.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

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
    /// for `errors.rate` and `throughput.ratio`, a number for counts.
    pub limit: f64,
    /// Only this phase's data counts (`steady: rtt.p99 < 20ms`); `None`: the
    /// recorded phases together.
    pub phase: Option<String>,
    /// Stop the run as soon as this threshold fails (checked every second
    /// after `grace`); default false. Phase-scoped thresholds are only
    /// checked at the end.
    pub abort_on_fail: bool,
    /// How long after the phases start `abort_on_fail` waits before
    /// checking; default 10 s.
    pub grace: std::time::Duration,
}

/// Default of `grace`.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Kinds of error a run counts; each fault is one error of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// TCP connect failed or timed out.
    Connect,
    /// The TLS handshake failed (certificate, protocol) or timed out.
    Tls,
    /// The upgrade failed (status, headers, accept key) or timed out.
    Handshake,
    /// A reply or an `expect` did not come in time.
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
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Handshake,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Closed,
        ErrorKind::CloseTimeout,
    ];

    /// Name used in reports and thresholds (`errors.NAME`).
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

/// The counters a threshold may name, by name: the one table the parser
/// and its error message use.
pub const COUNTERS: [(&str, Counter); 9] = [
    ("errors.count", Counter::Errors),
    ("connections.failed", Counter::ConnectionsFailed),
    ("connections.opened", Counter::ConnectionsOpened),
    ("messages.sent", Counter::MessagesSent),
    ("messages.received", Counter::MessagesReceived),
    ("messages.paced", Counter::MessagesPaced),
    ("messages.lost", Counter::Sequence(SequenceCount::Lost)),
    (
        "messages.duplicate",
        Counter::Sequence(SequenceCount::Duplicate),
    ),
    (
        "messages.reordered",
        Counter::Sequence(SequenceCount::Reordered),
    ),
];

/// What `sequence:` counts of a stream's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCount {
    /// Numbers that never arrived.
    Lost,
    /// Numbers that arrived again.
    Duplicate,
    /// Numbers that arrived after a higher one.
    Reordered,
}

/// Every name a threshold may start with, for the unknown-metric error:
/// derived from [`LatencyMetric::ALL`], [`ErrorKind::ALL`] and
/// [`COUNTERS`].
pub fn metric_names() -> String {
    let latency: Vec<&str> = LatencyMetric::ALL.iter().map(|m| m.name()).collect();
    let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
    let counters: Vec<&str> = COUNTERS.iter().map(|(n, _)| *n).collect();
    format!(
        "{} followed by .min, .mean, .max, .pN, .count or .rate; or errors.rate, errors.KIND ({}), {}, messages.lost.rate (also .duplicate, .reordered), delivery.ratio, throughput.ratio",
        latency.join(", "),
        kinds.join(", "),
        counters.join(", ")
    )
}

/// A count a threshold can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `errors.count`: all errors.
    Errors,
    /// `errors.KIND`: errors of one kind.
    ErrorsOf(ErrorKind),
    /// `connections.failed`.
    ConnectionsFailed,
    /// `connections.opened`.
    ConnectionsOpened,
    /// `messages.sent`.
    MessagesSent,
    /// `messages.received`.
    MessagesReceived,
    /// `messages.paced`: sends of paced loops.
    MessagesPaced,
    /// `messages.lost`, `.duplicate`, `.reordered` (with `sequence:`).
    Sequence(SequenceCount),
    /// `METRIC.count`: samples of a latency metric.
    Samples(LatencyMetric),
    /// `METRIC.rate`: samples of a latency metric per second of the recorded
    /// phases (e.g. `rtt.rate` = replies per second).
    SampleRate(LatencyMetric),
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
    /// A count, compared with a plain number.
    Count(Counter),
    /// `throughput.ratio`: messages sent ÷ messages scheduled by the target
    /// rates (open-model phases), as a fraction.
    ThroughputRatio,
    /// `messages.lost.rate` (and `.duplicate.rate`, `.reordered.rate`): the
    /// count as a fraction of the stream messages due (received with a
    /// sequence number, plus lost).
    SequenceRate(SequenceCount),
    /// `delivery.ratio` (with `fanout:`): deliveries received ÷ deliveries
    /// expected, as a fraction.
    DeliveryRatio,
}

/// The latency distributions barrage records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyMetric {
    /// `rtt`: scheduled send time to the matching reply (coordinated
    /// omission corrected).
    Rtt,
    /// `service`: actual send to the matching reply.
    Service,
    /// `connect`: TCP connect time.
    Connect,
    /// `tls`: TLS handshake time (wss only).
    Tls,
    /// `handshake`: WebSocket upgrade time.
    Handshake,
    /// `send_lag`: how late a message was sent relative to its schedule.
    SendLag,
    /// `ping`: ping sent to its pong (with `ping: {every}`).
    Ping,
    /// `delivery`: a timestamp carried in a received message to its
    /// arrival (with `delivery:`).
    Delivery,
    /// `first_message`: the upgrade's end to the first message received
    /// on the connection (the time to the first tick of a subscription).
    FirstMessage,
}

impl LatencyMetric {
    /// Every latency metric, in report order.
    pub const ALL: [LatencyMetric; 9] = [
        LatencyMetric::Rtt,
        LatencyMetric::Service,
        LatencyMetric::Connect,
        LatencyMetric::Tls,
        LatencyMetric::Handshake,
        LatencyMetric::SendLag,
        LatencyMetric::Ping,
        LatencyMetric::Delivery,
        LatencyMetric::FirstMessage,
    ];

    /// The name used in threshold expressions and reports.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMetric::Rtt => "rtt",
            LatencyMetric::Service => "service",
            LatencyMetric::Connect => "connect",
            LatencyMetric::Tls => "tls",
            LatencyMetric::Handshake => "handshake",
            LatencyMetric::SendLag => "send_lag",
            LatencyMetric::Ping => "ping",
            LatencyMetric::Delivery => "delivery",
            LatencyMetric::FirstMessage => "first_message",
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
    /// `==` (for counts: `messages.lost == 0`)
    Eq,
}

/// Shown when the expression has no recognisable shape.
const SHAPE_HELP: &str = "expected [PHASE:] METRIC.STAT OP LIMIT, e.g. \"rtt.p99 < 50ms\", \"steady: rtt.p99 < 20ms\", \"errors.rate < 1%\" or \"messages.received > 1000\" (operators: <, <=, >, >=, ==)";

impl Threshold {
    /// Parses an expression such as `rtt.p99 < 50ms`, `rtt.p99.9 <= 2.5ms` or
    /// `errors.rate < 1%`.
    pub fn parse(s: &str) -> Result<Threshold, String> {
        let expr = s.trim();
        // `PHASE: ...` scopes the threshold to one phase.
        let (phase, body) = match expr.split_once(':') {
            Some((p, rest)) if !p.trim().is_empty() && !p.contains(['<', '>', '=', '.']) => {
                (Some(p.trim().to_string()), rest.trim())
            }
            _ => (None, expr),
        };
        let mut t = Self::parse_body(body)?;
        t.expr = expr.to_string();
        t.phase = phase;
        Ok(t)
    }

    fn parse_body(expr: &str) -> Result<Threshold, String> {
        let Some(op_at) = expr.find(['<', '>', '=']) else {
            return Err(format!(
                "no comparison operator in \"{expr}\"; {SHAPE_HELP}"
            ));
        };
        let rest = &expr[op_at..];
        let (op, op_len) = match rest.as_bytes() {
            [b'<', b'=', ..] => (CmpOp::Le, 2),
            [b'>', b'=', ..] => (CmpOp::Ge, 2),
            [b'<', ..] => (CmpOp::Lt, 1),
            [b'>', ..] => (CmpOp::Gt, 1),
            [b'=', b'=', ..] => (CmpOp::Eq, 2),
            _ => {
                return Err(format!(
                    "\"=\" is not an operator in \"{expr}\"; write == (or <, <=, >, >=)"
                ));
            }
        };
        let lhs = expr[..op_at].trim();
        let rhs = rest[op_len..].trim();
        if lhs.is_empty() || rhs.is_empty() {
            return Err(format!("incomplete threshold \"{expr}\"; {SHAPE_HELP}"));
        }
        let metric = parse_metric(lhs)?;
        let limit = match metric {
            ThresholdMetric::ErrorRate
            | ThresholdMetric::ThroughputRatio
            | ThresholdMetric::SequenceRate(_)
            | ThresholdMetric::DeliveryRatio => parse_fraction(lhs, rhs)?,
            ThresholdMetric::Latency { .. } => parse_latency_limit(rhs)?,
            ThresholdMetric::Count(_) => rhs
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!("the limit of {lhs} must be a number like 1000, got \"{rhs}\"")
                })?,
        };
        Ok(Threshold {
            expr: expr.to_string(),
            metric,
            op,
            limit,
            phase: None,
            abort_on_fail: false,
            grace: DEFAULT_GRACE,
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
            CmpOp::Eq => observed == self.limit,
        }
    }
}

/// Parses `errors.rate`, a counter, `throughput.ratio` or `METRIC.STAT`.
fn parse_metric(lhs: &str) -> Result<ThresholdMetric, String> {
    let counter = match lhs {
        "errors.rate" => return Ok(ThresholdMetric::ErrorRate),
        "throughput.ratio" => return Ok(ThresholdMetric::ThroughputRatio),
        "delivery.ratio" => return Ok(ThresholdMetric::DeliveryRatio),
        _ => {
            // `messages.lost.rate`: a sequence count as a fraction.
            if let Some(Counter::Sequence(k)) = lhs
                .strip_suffix(".rate")
                .and_then(|c| COUNTERS.iter().find(|(name, _)| *name == c))
                .map(|(_, c)| *c)
            {
                return Ok(ThresholdMetric::SequenceRate(k));
            }
            COUNTERS
                .iter()
                .find(|(name, _)| *name == lhs)
                .map(|(_, c)| *c)
                .or_else(|| {
                    let k = lhs.strip_prefix("errors.")?;
                    ErrorKind::ALL
                        .iter()
                        .find(|e| e.name() == k)
                        .map(|k| Counter::ErrorsOf(*k))
                })
        }
    };
    if let Some(c) = counter {
        return Ok(ThresholdMetric::Count(c));
    }
    let (name, stat) = lhs.split_once('.').unwrap_or((lhs, ""));
    let Some(metric) = LatencyMetric::ALL.into_iter().find(|m| m.name() == name) else {
        return Err(format!(
            "unknown metric \"{lhs}\"; use one of {}",
            metric_names()
        ));
    };
    if stat.is_empty() {
        return Err(format!(
            "metric \"{lhs}\" needs a statistic: {name}.min, {name}.mean, {name}.max or {name}.pN (e.g. {name}.p99)"
        ));
    }
    if stat == "count" {
        return Ok(ThresholdMetric::Count(Counter::Samples(metric)));
    }
    if stat == "rate" {
        return Ok(ThresholdMetric::Count(Counter::SampleRate(metric)));
    }
    Ok(ThresholdMetric::Latency {
        metric,
        stat: Stat::parse(stat)?,
    })
}

/// Parses `1%` or `0.01` into a fraction (in `[0, 1]` for `errors.rate`).
fn parse_fraction(lhs: &str, rhs: &str) -> Result<f64, String> {
    let (num, scale) = match rhs.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (rhs, 1.0),
    };
    let bad =
        || format!("{lhs} limit \"{rhs}\" must be a percentage like 1% or a fraction like 0.01");
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let v = num.parse::<f64>().map_err(|_| bad())? * scale;
    if lhs == "errors.rate" && !(0.0..=1.0).contains(&v) {
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
    /// A string (`rtt.p99 < 50ms`, `"steady: rtt.p99 < 20ms"`) or, since
    /// YAML reads an unquoted `steady: rtt.p99 < 20ms` list item as a map,
    /// a one-entry map from a phase name to an expression.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Threshold;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a threshold such as \"rtt.p99 < 50ms\" or \"steady: rtt.p99 < 20ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Threshold, E> {
                Threshold::parse(v).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Threshold, A::Error> {
                let Some(first) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("an empty map is not a threshold"));
                };
                if !matches!(first.as_str(), "threshold" | "abort_on_fail" | "grace") {
                    // `PHASE: EXPRESSION`
                    let expr: String = map.next_value()?;
                    if map.next_key::<String>()?.is_some() {
                        return Err(de::Error::custom(
                            "a phase-scoped threshold is one `PHASE: EXPRESSION` per list item",
                        ));
                    }
                    return Threshold::parse(&format!("{first}: {expr}"))
                        .map_err(de::Error::custom);
                }
                // `{ threshold: EXPR, abort_on_fail: true, grace: 10s }`
                let (mut expr, mut abort, mut grace) = (None, false, DEFAULT_GRACE);
                let mut key = Some(first);
                while let Some(k) = key {
                    match k.as_str() {
                        "threshold" => expr = Some(map.next_value::<String>()?),
                        "abort_on_fail" => abort = map.next_value::<bool>()?,
                        "grace" => {
                            let g: String = map.next_value()?;
                            grace = super::units::parse_duration(&g).map_err(de::Error::custom)?;
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown field `{other}`, expected one of `threshold`, `abort_on_fail`, `grace`"
                            )));
                        }
                    }
                    key = map.next_key::<String>()?;
                }
                let expr = expr.ok_or_else(|| de::Error::custom("missing field `threshold`"))?;
                let mut t = Threshold::parse(&expr).map_err(de::Error::custom)?;
                t.abort_on_fail = abort;
                t.grace = grace;
                Ok(t)
            }
        }
        d.deserialize_any(V)
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
    fn parses_counters_ratios_and_phase_scopes() {
        let t = Threshold::parse("steady: rtt.p99 < 20ms").unwrap();
        assert_eq!(t.phase.as_deref(), Some("steady"));
        assert_eq!(t.expr, "steady: rtt.p99 < 20ms");
        assert_eq!(t.limit, 20_000_000.0);
        let t = Threshold::parse("messages.received >= 1000").unwrap();
        assert_eq!(t.metric, ThresholdMetric::Count(Counter::MessagesReceived));
        assert_eq!((t.op, t.limit), (CmpOp::Ge, 1000.0));
        let t = Threshold::parse("errors.timeout < 5").unwrap();
        assert_eq!(
            t.metric,
            ThresholdMetric::Count(Counter::ErrorsOf(ErrorKind::Timeout))
        );
        let t = Threshold::parse("rtt.rate >= 1000").unwrap();
        assert_eq!(
            t.metric,
            ThresholdMetric::Count(Counter::SampleRate(LatencyMetric::Rtt))
        );
        let t = Threshold::parse("rtt.count > 10").unwrap();
        assert_eq!(
            t.metric,
            ThresholdMetric::Count(Counter::Samples(LatencyMetric::Rtt))
        );
        let t = Threshold::parse("throughput.ratio >= 99%").unwrap();
        assert_eq!(
            (t.metric, t.limit),
            (ThresholdMetric::ThroughputRatio, 0.99)
        );
        assert!(
            Threshold::parse("errors.bogus < 1")
                .unwrap_err()
                .contains("unknown metric")
        );
        assert!(
            Threshold::parse("messages.sent > lots")
                .unwrap_err()
                .contains("must be a number")
        );
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
        assert!(e.contains("write =="), "{e}");
        let t = Threshold::parse("messages.lost == 0").unwrap();
        assert_eq!(t.op, CmpOp::Eq);
        assert!(t.holds(0.0) && !t.holds(1.0));
        let t = Threshold::parse("messages.lost.rate < 0.1%").unwrap();
        assert_eq!(t.metric, ThresholdMetric::SequenceRate(SequenceCount::Lost));
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
            "rtt,service,connect,tls,handshake,send_lag,ping,delivery,first_message"
        );
    }
}
