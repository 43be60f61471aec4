//! How many connections a run holds over time: a phase's `connections:`
//! target (growth, shrinking, spikes) and `connections.lifetime` (churn).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::model::Scenario;
use super::units::{MinU32Visitor, Rate, parse_duration};

/// A phase's `connections:`: during the phase, barrage opens (or closes,
/// newest first) toward `count` at `rate` while messages flow on the open
/// ones. YAML `connections: 20000` or `connections: { count: 20000, rate:
/// 2000/s }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhaseConnections {
    /// Connections to reach during the phase (at least 1).
    pub count: u32,
    /// How fast to open or close toward it. Default: `connections.rate`.
    pub rate: Option<Rate>,
}

impl<'de> Deserialize<'de> for PhaseConnections {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PhaseConnectionsVisitor)
    }
}

struct PhaseConnectionsVisitor;

impl<'de> Visitor<'de> for PhaseConnectionsVisitor {
    type Value = PhaseConnections;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a connection count, or { count, rate }")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(PhaseConnections {
            count: MinU32Visitor(1).visit_u64(v)?,
            rate: None,
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(PhaseConnections {
            count: MinU32Visitor(1).visit_i64(v)?,
            rate: None,
        })
    }
    /// `connections: 10k`.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PhaseConnections {
            count: MinU32Visitor(1).visit_str(v)?,
            rate: None,
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Spec {
            #[serde(deserialize_with = "de_count")]
            count: u32,
            #[serde(default)]
            rate: Option<Rate>,
        }
        let s = Spec::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(PhaseConnections {
            count: s.count,
            rate: s.rate,
        })
    }
}

fn de_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // Any: a number, or a string such as "10k".
    d.deserialize_any(MinU32Visitor(1))
}

/// `connections.lifetime`: each connection closes after a random lifetime,
/// uniform in `min..=max` (seeded), and a replacement opens at once and
/// runs the flow from its first step. YAML `30s..120s` or `60s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Shortest lifetime (greater than 0).
    pub min: Duration,
    /// Longest lifetime (at least `min`).
    pub max: Duration,
}

impl Lifetime {
    /// Parses `30s..120s` or `60s`.
    pub fn parse(s: &str) -> Result<Lifetime, String> {
        let (a, b) = s.split_once("..").unwrap_or((s, s));
        let (min, max) = (parse_duration(a.trim())?, parse_duration(b.trim())?);
        if min.is_zero() {
            return Err(format!("lifetime {s:?} must be greater than 0"));
        }
        if max < min {
            return Err(format!("lifetime {s:?} ends before it starts"));
        }
        Ok(Lifetime { min, max })
    }

    /// A lifetime drawn from the range.
    pub fn draw(&self, rng: &mut fastrand::Rng) -> Duration {
        self.min + (self.max - self.min).mul_f64(rng.f64())
    }

    /// The mean lifetime.
    pub fn mean(&self) -> Duration {
        (self.min + self.max) / 2
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Lifetime::parse(&s).map_err(de::Error::custom)
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}..{:?}", self.min, self.max)
    }
}

impl Scenario {
    /// The most connections any moment of the run asks for: the opening
    /// count or a phase's target, whichever is largest (this process's
    /// share when sharded). The pre-flight checks this many.
    pub fn peak_connections(&self) -> u32 {
        self.phases
            .iter()
            .filter_map(|p| p.connections.map(|c| c.count))
            .fold(self.connections.count, u32::max)
    }

    /// The connection count phase `i` moves toward, and how fast (per
    /// second): its own target, or the count it inherits.
    pub fn phase_population(&self, i: usize) -> (u32, f64) {
        let mut count = self.connections.count;
        let mut rate = self.connections.rate.per_second;
        for p in &self.phases[..=i.min(self.phases.len() - 1)] {
            if let Some(c) = p.connections {
                count = c.count;
                rate = c
                    .rate
                    .map_or(self.connections.rate.per_second, |r| r.per_second);
            }
        }
        (count, rate)
    }
}
