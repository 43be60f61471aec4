//! Parsing of durations, rates and sizes, plus the serde helpers that apply
//! them while deserializing (so errors keep their YAML position).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Duration units: suffix and length in nanoseconds.
const DURATION_UNITS: [(&str, f64); 7] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// Splits `"12.5ms"` into `("12.5", "ms")`; the unit part is trimmed.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// Parses a plain non-negative decimal number (digits with at most one dot).
fn parse_number(num: &str, whole: &str) -> Result<f64, String> {
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(format!("\"{whole}\" does not start with a number"));
    }
    num.parse::<f64>()
        .map_err(|_| format!("\"{whole}\" does not start with a number"))
}

/// Parses a duration with a unit into fractional nanoseconds: one
/// number-and-unit (`"250ms"`, `"1.5s"`) or several added up, largest
/// first or not (`"1m30s"`, `"1h 5m"`).
pub(crate) fn duration_nanos(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let mut rest = s;
    let mut nanos = 0.0;
    loop {
        let (num, tail) = split_number(rest);
        let value = parse_number(num, s)?;
        // The unit runs to the next number (`m` in `1m30s`).
        let end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(tail.len());
        let unit = &tail[..end];
        if unit.is_empty() {
            return Err(format!(
                "\"{s}\" has no unit: add a unit: ms, s, m (also ns, us, h, or 1m30s)"
            ));
        }
        let Some(&(_, factor)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "unknown duration unit \"{unit}\" in \"{s}\"; use ns, us, µs, ms, s, m or h"
            ));
        };
        nanos += value * factor;
        rest = tail[end..].trim_start();
        if rest.is_empty() {
            break;
        }
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(format!("duration \"{s}\" is too large"));
    }
    Ok(nanos)
}

/// Parses a number with an optional thousands suffix: `"2500"`, `"1.5k"`,
/// `"10k"`, `"2M"` (k or K: ×1,000; M: ×1,000,000; G: ×10⁹).
pub(crate) fn parse_scaled(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, factor) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1e3),
        (i, 'M') => (&s[..i], 1e6),
        (i, 'G') => (&s[..i], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().ok()?;
    v.is_finite().then_some(v * factor)
}

/// Parses a whole count such as `"10000"`, `"10k"` or `"1.5M"`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    match parse_scaled(s) {
        Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => Ok(v as u64),
        Some(_) => Err(format!("\"{}\" is not a whole number", s.trim())),
        None => Err(format!(
            "\"{}\" is not a number; write e.g. 10000, 10k or 1.5M",
            s.trim()
        )),
    }
}

/// Parses a duration such as `"250ms"`, `"10s"`, `"2m"`, `"1h"`, `"500us"`,
/// `"1.5s"` or `"1m30s"`. A unit is required: bare numbers are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let nanos = duration_nanos(s)?;
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// A rate of events (connections or messages) per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Events per second; always finite and greater than zero.
    pub per_second: f64,
}

/// Parses a rate: `"1000/s"`, `"60/m"`, `"2.5/s"`, `"3600/h"`, `"1k/s"`,
/// `"1.5M/m"`, or a bare number meaning per second (`"2k"`). Must be finite
/// and greater than zero.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let s = s.trim();
    let (num, per) = match s.split_once('/') {
        Some((num, unit)) => (num.trim(), Some(unit.trim())),
        None => (s, None),
    };
    let value = parse_scaled(num).ok_or_else(|| {
        format!("\"{s}\" is not a rate; write e.g. \"1000/s\", \"1k/s\", \"60/m\" or 100")
    })?;
    let divisor = match per {
        None | Some("s") => 1.0,
        Some("m") => 60.0,
        Some("h") => 3600.0,
        Some(unit) => {
            return Err(format!(
                "unknown rate unit \"/{unit}\" in \"{s}\"; use /s, /m or /h"
            ));
        }
    };
    rate_from(value / divisor, s)
}

/// Validates a per-second value.
fn rate_from(per_second: f64, shown: &str) -> Result<Rate, String> {
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(format!("rate must be greater than 0, got {shown}"));
    }
    // One message a day at the least, a billion a second at the most: beyond
    // that, schedule arithmetic leaves the range of durations.
    if !(1.0 / 86_400.0..=1e9).contains(&per_second) {
        return Err(format!("rate must be between 1/day and 1e9/s, got {shown}"));
    }
    Ok(Rate { per_second })
}

/// Size units: suffix (lower case) and multiplier.
const SIZE_UNITS: [(&str, u64); 7] = [
    ("b", 1),
    ("kb", 1000),
    ("kib", 1 << 10),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
];

/// Parses a byte size: `"512"`, `"64B"`, `"1KiB"`, `"4MiB"`, `"1KB"` (1000),
/// `"1MB"`. Units are case-insensitive; fractions round to whole bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, unit) = split_number(s);
    let value = parse_number(num, s)?;
    let lower = unit.to_ascii_lowercase();
    let factor = if lower.is_empty() {
        1
    } else {
        match SIZE_UNITS.iter().find(|(u, _)| *u == lower) {
            Some(&(_, f)) => f,
            None => {
                return Err(format!(
                    "unknown size unit \"{unit}\" in \"{s}\"; use B, KB, KiB, MB, MiB, GB or GiB"
                ));
            }
        }
    };
    let bytes = (value * factor as f64).round();
    if !bytes.is_finite() || bytes > usize::MAX as f64 {
        return Err(format!("size \"{s}\" is too large"));
    }
    Ok(bytes as usize)
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        d.deserialize_any(RateVisitor)
    }
}

/// Accepts a rate string or a number of events per second.
pub(crate) struct RateVisitor;

impl Visitor<'_> for RateVisitor {
    type Value = Rate;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rate such as \"1000/s\", \"60/m\" or a number per second")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
        parse_rate(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
        rate_from(v as f64, &v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
        rate_from(v as f64, &v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
        rate_from(v, &v.to_string()).map_err(E::custom)
    }
}

/// Deserializes a string with `parse`, reporting its error at the value's
/// location; `expecting` says what was wanted when the value is not a string.
pub(crate) fn deserialize_parsed<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct ParsedVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for ParsedVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(ParsedVisitor { expecting, parse })
}

/// Accepts only duration strings with a unit, greater than zero.
/// A duration greater than 0 (phase lengths, `--duration`): the one check
/// for the YAML and the command line.
pub fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err(format!("must be greater than 0, got \"{v}\""));
    }
    Ok(d)
}

struct PositiveDurationVisitor;

impl Visitor<'_> for PositiveDurationVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, such as \"250ms\" or \"10s\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_positive_duration(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "bare number {v} has no unit: add a unit: ms, s, m (e.g. \"{v}s\")"
        )))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "bare number {v} has no unit: add a unit: ms, s, m (e.g. \"{v}s\")"
        )))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "bare number {v} has no unit: add a unit: ms, s, m (e.g. \"{v}s\")"
        )))
    }
}

/// serde `deserialize_with` helper: a duration string with a unit, > 0.
pub(crate) fn de_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(PositiveDurationVisitor)
}

/// Accepts a size string or a number of bytes within `min..=max`.
pub(crate) struct SizeVisitor {
    /// Smallest accepted size in bytes.
    pub min: usize,
    /// Largest accepted size in bytes.
    pub max: usize,
}

impl SizeVisitor {
    fn check<E: de::Error>(&self, bytes: usize, shown: &str) -> Result<usize, E> {
        if bytes < self.min || bytes > self.max {
            return Err(E::custom(format!(
                "must be between {} and {} bytes, got {shown}",
                self.min, self.max
            )));
        }
        Ok(bytes)
    }
}

impl Visitor<'_> for SizeVisitor {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"1KiB\" or a number of bytes")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        let bytes = parse_size(v).map_err(E::custom)?;
        self.check(bytes, &format!("\"{v}\""))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        let bytes = usize::try_from(v).unwrap_or(usize::MAX);
        self.check(bytes, &v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        if v < 0 {
            return Err(E::custom(format!("size must not be negative, got {v}")));
        }
        self.visit_u64(v as u64)
    }
}

/// Accepts an integer `>= min` that fits a `u32`.
pub(crate) struct MinU32Visitor(pub u32);

impl Visitor<'_> for MinU32Visitor {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a whole number of at least {}", self.0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        if v < u64::from(self.0) {
            return Err(E::custom(format!("must be at least {}, got {v}", self.0)));
        }
        u32::try_from(v).map_err(|_| E::custom(format!("must be at most {}, got {v}", u32::MAX)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        if v < i64::from(self.0) {
            return Err(E::custom(format!("must be at least {}, got {v}", self.0)));
        }
        self.visit_u64(v as u64)
    }
    /// `"10k"`, `"1.5k"`, `"2M"`.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        self.visit_u64(parse_count(v).map_err(E::custom)?)
    }
}

/// A byte count for people: `512 B`, `64 KiB`, `1.5 MiB`, `23.4 GiB`.
#[derive(Debug, Clone, Copy)]
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 || v.fract() == 0.0 {
            write!(f, "{v:.0} {}", UNITS[unit])
        } else {
            write!(f, "{v:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 7 ns "), Ok(Duration::from_nanos(7)));
        // Compound durations, as people write them.
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h 2m 3.5s"),
            Ok(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
    }

    #[test]
    fn counts_and_rates_take_k_and_m() {
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1.5k"), Ok(1500));
        assert_eq!(parse_count("2M"), Ok(2_000_000));
        assert_eq!(parse_count("250"), Ok(250));
        assert!(parse_count("1.0001k").unwrap_err().contains("whole"));
        assert!(parse_count("ten").unwrap_err().contains("10k"));
        assert_eq!(parse_rate("1k/s").unwrap().per_second, 1000.0);
        assert_eq!(parse_rate("1.5k/m").unwrap().per_second, 25.0);
        assert_eq!(parse_rate("2k").unwrap().per_second, 2000.0);
        assert_eq!(parse_rate("1M/s").unwrap().per_second, 1e6);
    }

    #[test]
    fn durations_reject_bad_input() {
        let e = parse_duration("10").unwrap_err();
        assert!(e.contains("add a unit: ms, s, m"), "{e}");
        let e = parse_duration("10x").unwrap_err();
        assert!(e.contains("unknown duration unit \"x\""), "{e}");
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration("").is_err());
        let e = parse_duration("1m30").unwrap_err();
        assert!(e.contains("has no unit"), "{e}");
        assert!(parse_duration("1m30x").is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("1000/s").unwrap().per_second, 1000.0);
        assert_eq!(parse_rate("60/m").unwrap().per_second, 1.0);
        assert_eq!(parse_rate("2.5/s").unwrap().per_second, 2.5);
        assert_eq!(parse_rate("7200/h").unwrap().per_second, 2.0);
        assert_eq!(parse_rate("42").unwrap().per_second, 42.0);
        assert_eq!(parse_rate(" 10 / s ").unwrap().per_second, 10.0);
    }

    #[test]
    fn rates_reject_bad_input() {
        let e = parse_rate("10/x").unwrap_err();
        assert!(e.contains("unknown rate unit \"/x\""), "{e}");
        assert!(parse_rate("0/s").unwrap_err().contains("greater than 0"));
        assert!(parse_rate("-5/s").is_err());
        assert!(parse_rate("inf/s").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn sizes_display_for_people() {
        assert_eq!(Size(512).to_string(), "512 B");
        assert_eq!(Size(1 << 20).to_string(), "1 MiB");
        assert_eq!(Size(1536 << 10).to_string(), "1.5 MiB");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("2 kib"), Ok(2048));
    }

    #[test]
    fn sizes_reject_bad_input() {
        assert!(parse_size("1XB").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
    }
}
