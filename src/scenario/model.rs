//! The validated scenario types and their YAML deserialization.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::data::{DataSpec, Feeder};
use super::flow::{Delivery, Role, Step};
use super::message::Message;
use super::population::{Lifetime, PhaseConnections};
use super::protocol::{
    BuiltinSettings, CloseSettings, Compression, Headers, PingSettings, ReconnectPolicy,
    TlsSettings,
};
use super::target::Target;
use super::threshold::Threshold;
use super::units::{MinU32Visitor, Rate, RateVisitor, de_positive_duration, parse_rate};

/// A complete, validated load scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports. Required, non-empty.
    #[serde(deserialize_with = "de_non_empty")]
    pub name: String,
    /// Where load is sent. Required.
    pub target: Target,
    /// How many connections are opened and how. Required.
    pub connections: Connections,
    /// Load phases, run in order. Required: at least one; names are unique.
    #[serde(deserialize_with = "de_phases")]
    pub phases: Vec<Phase>,
    /// Payload of each message. Optional; default is a text message from
    /// the template `{"conn":{{conn}},"seq":{{seq}},"ts":{{now_us}}}`.
    #[serde(default)]
    pub message: Message,
    /// Pass/fail conditions checked after the run. Optional; default none.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Local addresses to bind connections to, round-robin, so that more
    /// connections fit than one address's ephemeral ports allow: an address,
    /// a range `127.0.0.1-127.0.0.8`, or a list. Default: none (the system
    /// picks the source address).
    #[serde(default, deserialize_with = "super::source_ips::de_source_ips")]
    pub source_ips: Vec<std::net::IpAddr>,
    /// Extra upgrade request headers; `${env:NAME}` is substituted. Default none.
    #[serde(default)]
    pub headers: Headers,
    /// `Origin` header of the upgrade request; no control characters.
    /// Default: none sent.
    #[serde(default, deserialize_with = "super::protocol::de_origin")]
    pub origin: Option<String>,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of
    /// preference; each an HTTP token. Default: none offered.
    #[serde(default, deserialize_with = "super::protocol::de_subprotocols")]
    pub subprotocols: Vec<String>,
    /// permessage-deflate: `none` (default) or `deflate`.
    #[serde(default)]
    pub compression: Compression,
    /// TLS settings for `wss://` targets. Default: webpki roots, verified.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Pings sent on every connection, timed as metric `ping`. Default: none.
    #[serde(default)]
    pub ping: Option<PingSettings>,
    /// Splits each outgoing message into frames of at most this many
    /// payload bytes (continuation frames). Default: one frame per message.
    #[serde(default, deserialize_with = "super::protocol::de_fragment")]
    pub fragment: Option<usize>,
    /// Largest message accepted from the server, after reassembly and
    /// decompression; a larger one is a protocol error (close 1009). It
    /// bounds each connection's memory for messages being received: the
    /// pre-flight refuses connections × this over the machine's memory.
    /// Default 1 MiB.
    #[serde(
        default = "default_max_message",
        deserialize_with = "super::protocol::de_max_message"
    )]
    pub max_message_size: usize,
    /// The close frame sent when the run ends. Default: code 1000, no reason.
    #[serde(default)]
    pub close: CloseSettings,
    /// What every connection does. Default: a loop paced by the phase rate
    /// that sends `message` and awaits its echo. Not with `roles`.
    #[serde(default, deserialize_with = "de_opt_flow")]
    pub flow: Option<Vec<Step>>,
    /// Weighted populations, each with its own flow. Default: one role
    /// (`default`) running `flow`.
    #[serde(default, deserialize_with = "super::flow::de_roles")]
    pub roles: Vec<Role>,
    /// A CSV feeder: one row per connection, columns as `{{data.NAME}}`.
    /// Default none.
    #[serde(default)]
    pub data: Option<DataSpec>,
    /// Push latency: the timestamp at this field of every received message
    /// is timed as metric `delivery`. Default none.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// Completeness of pushed streams: each received message's counter at
    /// `sequence.field` (per stream named at `sequence.key`) counts
    /// `messages.lost`, `.duplicate` and `.reordered`. Default none.
    #[serde(default)]
    pub sequence: Option<super::Sequence>,
    /// Rooms: each paced send is expected to reach every other member of
    /// the sender's room (`messages.fanout_expected`, `delivery.ratio`).
    /// Default none.
    #[serde(default)]
    pub fanout: Option<super::Fanout>,
    /// Messages no step claims are kept, up to this many per connection,
    /// for the next `expect` to look at first (a server that answers
    /// before the flow waits); one more evicts the oldest, counted as
    /// unmatched. Default 64; 0 keeps none.
    #[serde(default = "default_backlog")]
    pub backlog: usize,
    /// Reopening connections the server drops. Default: none.
    #[serde(default)]
    pub reconnect: Option<ReconnectPolicy>,
    /// How the built-in server behaves (`target: builtin` only). Default echo.
    #[serde(default)]
    pub builtin: BuiltinSettings,
    /// The feeder's rows, loaded when the scenario is read.
    #[serde(skip)]
    pub feeder: Option<std::sync::Arc<Feeder>>,
    /// Set by `--shard I/N` ([`Scenario::apply_shard`]); default: the whole run.
    #[serde(skip)]
    pub sharding: Option<super::shard::Sharding>,
    /// The values `${env:NAME}` gave the file: secrets every output
    /// withholds ([`EnvSecrets::redact`](super::EnvSecrets::redact)).
    #[serde(skip)]
    pub env_secrets: super::EnvSecrets,
}

fn de_opt_flow<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Step>>, D::Error> {
    super::flow::de_flow(d).map(Some)
}

impl Scenario {
    /// The roles connections are assigned to: `roles:`, or one role named
    /// `default` running `flow:` (or the default flow).
    pub fn effective_roles(&self) -> Vec<Role> {
        if !self.roles.is_empty() {
            return self.roles.clone();
        }
        vec![Role {
            name: "default".to_string(),
            weight: 1.0,
            rate: None,
            flow: self
                .flow
                .clone()
                .unwrap_or_else(|| Step::default_flow(&self.message)),
        }]
    }
}

/// Default of `max_message_size`.
fn default_max_message() -> usize {
    super::protocol::DEFAULT_MAX_MESSAGE
}

impl Scenario {
    /// Total planned load duration = sum of phase durations.
    pub fn total_duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// Expected messages for a phase: `Some(rate * duration rounded)` for a
    /// numeric rate, `None` for `max`.
    pub fn expected_messages(phase: &Phase) -> Option<u64> {
        match phase.rate {
            PhaseRate::Max => None,
            PhaseRate::None => Some(0),
            rate => rate
                .mean()
                .map(|r| (r * phase.duration.as_secs_f64()).round() as u64),
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Number of WebSocket connections to open. Required, at least 1.
    #[serde(deserialize_with = "de_count")]
    pub count: u32,
    /// How fast connections are opened, e.g. `500/s`, and closed again at
    /// the end of the run (in the same order). Default `1000/s`.
    #[serde(default = "default_connect_rate")]
    pub rate: Rate,
    /// Timeout for TCP connect plus WebSocket handshake, e.g. `5s`.
    /// Default `10s`; must be greater than 0.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "de_positive_duration"
    )]
    pub timeout: Duration,
    /// Churn: each connection closes after a random lifetime in this range
    /// (`30s..120s`, uniform, seeded) and a replacement opens at once and
    /// runs the flow from its first step, keeping the count. Closed by
    /// churn is not an error. Default: connections live the whole run.
    #[serde(default)]
    pub lifetime: Option<Lifetime>,
}

/// Default for `connections.rate`: 1000 per second.
fn default_connect_rate() -> Rate {
    Rate { per_second: 1000.0 }
}

/// Default for `connections.timeout`: 10 seconds.
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One load phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Phase name, unique within the scenario. Required, non-empty.
    pub name: String,
    /// How long the phase lasts, e.g. `30s`. Required, greater than 0.
    pub duration: Duration,
    /// Total message rate over all open connections: a rate like `2000/s`,
    /// a linear ramp over the phase like `1000/s..20000/s` (either end may
    /// be `0/s`), or `max` to send as fast as replies come back (closed
    /// model).
    /// Required when a flow has a loop paced by the phase rate; a phase
    /// without it paces nothing (a listen-only phase) and has no schedule.
    pub rate: PhaseRate,
    /// Whether this phase's samples count in totals and thresholds; set
    /// `false` for warm-up. Default `true`.
    pub record: bool,
    /// Messages in flight per connection with `rate: max`. Default 1, at
    /// least 1; setting it with a numeric rate is an error.
    pub inflight: u32,
    /// The connection count to move toward during the phase, opening (or
    /// closing, newest first) at its rate while messages flow; later
    /// phases keep it. Default: the count stays as it is.
    pub connections: Option<PhaseConnections>,
}

fn default_backlog() -> usize {
    64
}

/// Message rate of a phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PhaseRate {
    /// Open model: messages per second in total, spread over the connections.
    PerSecond(Rate),
    /// Open model with a rate going linearly from `from` to `to` messages
    /// per second over the phase (at least one of them above 0). YAML
    /// `1000/s..20000/s`.
    Ramp {
        /// Rate at the phase start, per second (0 or more).
        from: f64,
        /// Rate at the phase end, per second (0 or more).
        to: f64,
    },
    /// Closed model: send the next message as soon as a reply arrives
    /// (keeping `inflight` outstanding). YAML `max`.
    Max,
    /// No rate: nothing is paced in the phase (listen-only, or roles with
    /// their own rates). YAML: `rate` left out.
    None,
}

impl PhaseRate {
    /// Parses `max`, a rate (`2000/s`) or a ramp (`1000/s..20000/s`, an end
    /// may be `0/s`; equal ends are a constant rate).
    pub fn parse(s: &str) -> Result<PhaseRate, String> {
        let s = s.trim();
        if s == "max" {
            return Ok(PhaseRate::Max);
        }
        let Some((a, b)) = s.split_once("..") else {
            return parse_rate(s).map(PhaseRate::PerSecond);
        };
        let end = |t: &str| -> Result<f64, String> {
            let zero = t
                .trim()
                .split('/')
                .next()
                .and_then(|n| n.trim().parse::<f64>().ok())
                == Some(0.0);
            if zero {
                // `0/s`, `0/m`: the unit is still checked.
                parse_rate(&t.replacen('0', "1", 1)).map(|_| 0.0)
            } else {
                parse_rate(t).map(|r| r.per_second)
            }
        };
        let (from, to) = (end(a)?, end(b)?);
        if from == 0.0 && to == 0.0 {
            return Err(format!(
                "the ramp {s:?} is 0 at both ends; one end must be above 0"
            ));
        }
        Ok(if from == to {
            PhaseRate::PerSecond(Rate { per_second: from })
        } else {
            PhaseRate::Ramp { from, to }
        })
    }

    /// The rate at the start and at the end of the phase, per second, for
    /// a numeric rate (equal for a constant one); `None` for `max` or no
    /// rate.
    pub fn ends(&self) -> Option<(f64, f64)> {
        match *self {
            PhaseRate::PerSecond(r) => Some((r.per_second, r.per_second)),
            PhaseRate::Ramp { from, to } => Some((from, to)),
            PhaseRate::Max | PhaseRate::None => None,
        }
    }

    /// The mean rate over the phase (messages due ÷ duration), per second.
    pub fn mean(&self) -> Option<f64> {
        self.ends().map(|(a, b)| (a + b) / 2.0)
    }

    /// The highest rate the phase reaches, per second.
    pub fn peak(&self) -> Option<f64> {
        self.ends().map(|(a, b)| a.max(b))
    }

    /// The rate `fraction` (0 to 1) of the way through the phase.
    pub fn at(&self, fraction: f64) -> Option<f64> {
        self.ends()
            .map(|(a, b)| a + (b - a) * fraction.clamp(0.0, 1.0))
    }

    /// Multiplies a numeric rate (both ends of a ramp) by `f`.
    pub fn scale(&mut self, f: f64) {
        match self {
            PhaseRate::PerSecond(r) => r.per_second *= f,
            PhaseRate::Ramp { from, to } => {
                *from *= f;
                *to *= f;
            }
            PhaseRate::Max | PhaseRate::None => {}
        }
    }

    /// Whether the phase has a schedule (a constant rate or a ramp).
    pub fn is_numeric(&self) -> bool {
        self.ends().is_some()
    }
}

impl fmt::Display for PhaseRate {
    /// As written in YAML: `2000/s`, `1000/s..20000/s`, `max`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhaseRate::PerSecond(r) => write!(f, "{}/s", r.per_second),
            PhaseRate::Ramp { from, to } => write!(f, "{from}/s..{to}/s"),
            PhaseRate::Max => f.write_str("max"),
            PhaseRate::None => f.write_str("none"),
        }
    }
}

/// serde helper: a non-empty string.
fn de_non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(NameVisitor { earlier: &[] })
}

/// serde helper: `connections.count`, at least 1.
fn de_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // Any: a number, or a string such as "10k".
    d.deserialize_any(MinU32Visitor(1))
}

/// serde helper: the phase list, at least one phase with unique names.
fn de_phases<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Phase>, D::Error> {
    d.deserialize_seq(PhasesVisitor)
}

/// Accepts a non-empty string not equal to any earlier phase name.
struct NameVisitor<'a> {
    earlier: &'a [Phase],
}

impl Visitor<'_> for NameVisitor<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-empty name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.trim().is_empty() {
            return Err(E::custom("must not be empty"));
        }
        if let Some(i) = self.earlier.iter().position(|p| p.name == v) {
            return Err(E::custom(format!(
                "duplicate phase name \"{v}\" (already used by phases[{i}])"
            )));
        }
        Ok(v.to_string())
    }
}

impl<'de> DeserializeSeed<'de> for NameVisitor<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

/// Reads the phase list.
struct PhasesVisitor;

impl<'de> Visitor<'de> for PhasesVisitor {
    type Value = Vec<Phase>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of phases")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Phase>, A::Error> {
        let mut phases: Vec<Phase> = Vec::new();
        while let Some(p) = seq.next_element_seed(PhaseVisitor { earlier: &phases })? {
            phases.push(p);
        }
        if phases.is_empty() {
            return Err(de::Error::custom("must list at least one phase"));
        }
        Ok(phases)
    }
}

/// Keys allowed in a phase.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum PhaseField {
    Name,
    Duration,
    Rate,
    Record,
    Inflight,
    Connections,
}

/// Reads one phase; `earlier` holds the phases before it.
struct PhaseVisitor<'a> {
    earlier: &'a [Phase],
}

impl<'de> DeserializeSeed<'de> for PhaseVisitor<'_> {
    type Value = Phase;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Phase, D::Error> {
        d.deserialize_map(self)
    }
}

/// Rejects a second occurrence of a key.
fn once<T, E: de::Error>(slot: &Option<T>, key: &'static str) -> Result<(), E> {
    match slot {
        Some(_) => Err(E::duplicate_field(key)),
        None => Ok(()),
    }
}

impl<'de> Visitor<'de> for PhaseVisitor<'_> {
    type Value = Phase;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a phase mapping with name, duration and rate")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Phase, A::Error> {
        let (mut name, mut duration, mut rate, mut record, mut inflight) =
            (None, None, None, None, None);
        let mut connections = None;
        while let Some(key) = map.next_key::<PhaseField>()? {
            match key {
                PhaseField::Name => {
                    once(&name, "name")?;
                    name = Some(map.next_value_seed(NameVisitor {
                        earlier: self.earlier,
                    })?);
                }
                PhaseField::Duration => {
                    once(&duration, "duration")?;
                    duration = Some(map.next_value_seed(PositiveDuration)?);
                }
                PhaseField::Rate => {
                    once(&rate, "rate")?;
                    rate = Some(map.next_value_seed(PhaseRateSeed {
                        inflight_set: inflight.is_some(),
                    })?);
                }
                PhaseField::Connections => {
                    once(&connections, "connections")?;
                    connections = Some(map.next_value::<PhaseConnections>()?);
                }
                PhaseField::Record => {
                    once(&record, "record")?;
                    record = Some(map.next_value::<bool>()?);
                }
                PhaseField::Inflight => {
                    once(&inflight, "inflight")?;
                    inflight = Some(map.next_value_seed(InflightSeed {
                        rate_numeric: rate.is_some_and(|r| r.is_numeric()),
                    })?);
                }
            }
        }
        Ok(Phase {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            duration: duration.ok_or_else(|| de::Error::missing_field("duration"))?,
            rate: rate.unwrap_or(PhaseRate::None),
            record: record.unwrap_or(true),
            inflight: inflight.unwrap_or(1),
            connections,
        })
    }
}

/// Message for `inflight` combined with a numeric rate.
const INFLIGHT_NEEDS_MAX: &str = "inflight applies only to rate: max";

/// Seed for a positive duration with a unit.
struct PositiveDuration;

impl<'de> DeserializeSeed<'de> for PositiveDuration {
    type Value = Duration;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Duration, D::Error> {
        de_positive_duration(d)
    }
}

/// Reads a phase rate; errors if `inflight` was already set and the rate is
/// numeric.
struct PhaseRateSeed {
    inflight_set: bool,
}

impl<'de> DeserializeSeed<'de> for PhaseRateSeed {
    type Value = PhaseRate;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<PhaseRate, D::Error> {
        d.deserialize_any(self)
    }
}

impl PhaseRateSeed {
    fn numeric<E: de::Error>(&self, rate: Result<PhaseRate, E>) -> Result<PhaseRate, E> {
        let rate = rate?;
        if self.inflight_set {
            return Err(E::custom(INFLIGHT_NEEDS_MAX));
        }
        Ok(rate)
    }
}

impl Visitor<'_> for PhaseRateSeed {
    type Value = PhaseRate;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"max\", a rate such as \"100/s\" or a ramp such as \"100/s..1000/s\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<PhaseRate, E> {
        if v.trim() == "max" {
            return Ok(PhaseRate::Max);
        }
        self.numeric(PhaseRate::parse(v).map_err(|e| E::custom(format!("{e} (or use max)"))))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PhaseRate, E> {
        self.numeric(RateVisitor.visit_u64(v).map(PhaseRate::PerSecond))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PhaseRate, E> {
        self.numeric(RateVisitor.visit_i64(v).map(PhaseRate::PerSecond))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PhaseRate, E> {
        self.numeric(RateVisitor.visit_f64(v).map(PhaseRate::PerSecond))
    }
}

/// Reads `inflight`; errors if the rate already read is numeric.
struct InflightSeed {
    rate_numeric: bool,
}

impl<'de> DeserializeSeed<'de> for InflightSeed {
    type Value = u32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        // Any: a number, or a string such as "1k".
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for InflightSeed {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        let n = MinU32Visitor(1).visit_u64(v)?;
        if self.rate_numeric {
            return Err(E::custom(INFLIGHT_NEEDS_MAX));
        }
        Ok(n)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        if v < 1 {
            return MinU32Visitor(1).visit_i64(v);
        }
        self.visit_u64(v as u64)
    }
    /// `inflight: 1k`.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        self.visit_u64(super::units::parse_count(v).map_err(E::custom)?)
    }
}
