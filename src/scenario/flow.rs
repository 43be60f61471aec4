//! `flow:` what each connection does, step by step: send, expect, sleep,
//! think, loop, ping, close, reconnect; with reply correlation, matching and
//! capture. Without `flow:` a connection runs the default flow: a loop,
//! paced by the phase rate, that sends `message:` and awaits its echo.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::message::Message;
use super::protocol::CloseSettings;
use super::template::Template;
use super::units::{de_positive_duration, parse_duration};

/// One step of a flow.
#[derive(Debug, Clone)]
pub enum Step {
    /// `send: { text | binary | json, correlate, replies, timeout }`.
    Send(SendStep),
    /// `expect: { contains | regex | json, timeout, capture, count, on_timeout }`.
    Expect(ExpectStep),
    /// `sleep: 100ms`.
    Sleep(Duration),
    /// `think: 50ms..500ms`: a uniformly random pause.
    Think(Duration, Duration),
    /// `loop: [steps]` (paced by the phase rate) or `loop: { count, steps }`.
    Loop(LoopStep),
    /// `ping`: a ping, its pong timed as metric `ping`.
    Ping,
    /// `close` or `close: { code, reason }`: close the connection; the flow ends.
    Close(CloseSettings),
    /// `reconnect`: close and open the connection again, then go on.
    Reconnect,
}

/// `send:`.
#[derive(Debug, Clone)]
pub struct SendStep {
    /// What is sent.
    pub message: Message,
    /// How replies are matched to it. Default `none` in a flow (`echo` in
    /// the default flow).
    pub correlate: Correlate,
    /// Replies expected per message with `field` or `regex` correlation.
    /// Default 1.
    pub replies: u32,
    /// A message without all its replies after this long counts as a
    /// `timeout` error. Default: until 2 s after the last phase.
    pub timeout: Option<Duration>,
}

/// How replies are matched to sent messages.
#[derive(Debug, Clone)]
pub enum Correlate {
    /// Replies are not matched (a later `expect` may look for them).
    None,
    /// The next data message is the reply (FIFO per connection).
    Echo,
    /// The reply carries the same value at this JSON path (`seq`, `a.b.id`).
    Field(String),
    /// The reply matches this regex with the same first capture group.
    Regex(Regex),
}

/// `expect:` waits for a matching message.
#[derive(Debug, Clone)]
pub struct ExpectStep {
    /// What a matching message looks like.
    pub matcher: Matcher,
    /// How long to wait for `count` matches. Default 10s.
    pub timeout: Duration,
    /// Values taken from the (last) matching message, by name.
    pub capture: Vec<(String, Capture)>,
    /// Matching messages to wait for. Default 1.
    pub count: u32,
    /// What a timeout does (it is always counted as a `timeout` error).
    pub on_timeout: OnTimeout,
}

/// What a matching message contains.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Any data message (no `contains`, `regex` or `json` given).
    Any,
    /// The text contains this.
    Contains(String),
    /// The text matches this regex.
    Regex(Regex),
    /// The JSON message has these values at these paths (compared as text:
    /// strings without quotes, numbers and literals as written).
    Json(Vec<(String, String)>),
}

/// Where a captured value comes from.
#[derive(Debug, Clone)]
pub enum Capture {
    /// A JSON path, e.g. `token` or `$.session.token`.
    Path(String),
    /// The first capture group of a regex.
    Regex(Regex),
}

/// What an `expect` timeout does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Go on with the next step. The default.
    #[default]
    Continue,
    /// Close the connection.
    Close,
}

/// `loop:`.
#[derive(Debug, Clone)]
pub struct LoopStep {
    /// `Some(n)`: run the steps n times in a row. `None`: run them once per
    /// scheduled iteration of the phase rate until the phases end.
    pub count: Option<u64>,
    /// The steps of one iteration.
    pub steps: Vec<Step>,
}

impl Step {
    /// The default flow: `loop: [ send: { message, correlate: echo } ]`.
    pub fn default_flow(message: &Message) -> Vec<Step> {
        vec![Step::Loop(LoopStep {
            count: None,
            steps: vec![Step::Send(SendStep {
                message: message.clone(),
                correlate: Correlate::Echo,
                replies: 1,
                timeout: None,
            })],
        })]
    }
}

/// Strips an optional `$.` from a JSON path.
fn path(p: &str) -> Result<String, String> {
    let p = p.trim();
    let p = p.strip_prefix("$.").unwrap_or(p);
    if p.is_empty() || p.split('.').any(str::is_empty) {
        return Err(format!("\"{p}\" is not a JSON path (write a.b.c)"));
    }
    Ok(p.to_string())
}

/// Compiles a regex, naming the problem.
fn regex(r: &str, groups: bool) -> Result<Regex, String> {
    let re = Regex::new(r).map_err(|e| format!("bad regex: {e}"))?;
    if groups && re.captures_len() < 2 {
        return Err(format!("regex \"{r}\" needs a capture group: (...)"));
    }
    Ok(re)
}

/// A `think` range `50ms..500ms`.
fn think(s: &str) -> Result<(Duration, Duration), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("\"{s}\" is not a range; write e.g. 50ms..500ms"))?;
    let (a, b) = (parse_duration(a.trim())?, parse_duration(b.trim())?);
    if b < a {
        return Err(format!("\"{s}\": the upper end is below the lower"));
    }
    Ok((a, b))
}

/// Reads a flow: a list of steps.
pub(crate) fn de_flow<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Step>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Step>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of steps")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Step>, A::Error> {
            let mut steps = Vec::new();
            while let Some(s) = seq.next_element::<Step>()? {
                steps.push(s);
            }
            if steps.is_empty() {
                return Err(de::Error::custom("a flow needs at least one step"));
            }
            Ok(steps)
        }
    }
    d.deserialize_seq(V)
}

/// Step names, for messages.
const STEPS: &[&str] = &[
    "send",
    "expect",
    "sleep",
    "think",
    "loop",
    "ping",
    "close",
    "reconnect",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: send, expect, sleep, think, loop, ping, close or reconnect")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Step, E> {
                match v.trim() {
                    "ping" => Ok(Step::Ping),
                    "reconnect" => Ok(Step::Reconnect),
                    "close" => Ok(Step::Close(CloseSettings::default())),
                    other => Err(E::unknown_variant(other, STEPS)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty step"));
                };
                let step = match key.as_str() {
                    "send" => Step::Send(map.next_value()?),
                    "expect" => Step::Expect(map.next_value()?),
                    "sleep" => Step::Sleep(map.next_value::<PositiveDuration>()?.0),
                    "think" => {
                        let s: String = map.next_value()?;
                        let (a, b) = think(&s).map_err(de::Error::custom)?;
                        Step::Think(a, b)
                    }
                    "loop" => Step::Loop(map.next_value()?),
                    "close" => Step::Close(map.next_value()?),
                    "ping" | "reconnect" => {
                        return Err(de::Error::custom(format!(
                            "{key} takes no settings: write `- {key}`"
                        )));
                    }
                    other => return Err(de::Error::unknown_variant(other, STEPS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "one step per list item: `{extra}` must be its own `- {extra}: ...`"
                    )));
                }
                Ok(step)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration > 0 with a unit.
struct PositiveDuration(Duration);

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_positive_duration(d).map(PositiveDuration)
    }
}

/// `correlate:` as written.
#[derive(Deserialize)]
#[serde(untagged)]
enum CorrelateSpec {
    Word(String),
    Map(CorrelateMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrelateMap {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

impl<'de> Deserialize<'de> for Correlate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Correlate, D::Error> {
        let spec = CorrelateSpec::deserialize(d).map_err(|_| {
            de::Error::custom("expected echo, none, { field: PATH } or { regex: '...(id)...' }")
        })?;
        match spec {
            CorrelateSpec::Word(w) => match w.as_str() {
                "echo" => Ok(Correlate::Echo),
                "none" => Ok(Correlate::None),
                other => Err(de::Error::custom(format!(
                    "unknown correlation \"{other}\"; use echo, none, {{ field: PATH }} or {{ regex: ... }}"
                ))),
            },
            CorrelateSpec::Map(CorrelateMap {
                field: Some(f),
                regex: None,
            }) => path(&f).map(Correlate::Field).map_err(de::Error::custom),
            CorrelateSpec::Map(CorrelateMap {
                field: None,
                regex: Some(r),
            }) => regex(&r, true)
                .map(Correlate::Regex)
                .map_err(de::Error::custom),
            CorrelateSpec::Map(_) => Err(de::Error::custom("set exactly one of field or regex")),
        }
    }
}

impl<'de> Deserialize<'de> for SendStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SendStep, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SendStep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping with one of text, binary or json, and optionally correlate, replies, timeout")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SendStep, A::Error> {
                let mut message = None;
                let mut correlate = None;
                let mut replies = None;
                let mut timeout = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "text" | "binary" | "json" => {
                            if message.is_some() {
                                return Err(de::Error::custom(
                                    "set exactly one of text, binary or json",
                                ));
                            }
                            message = Some(match key.as_str() {
                                "text" => Message::Text(map.next_value()?),
                                "binary" => {
                                    let spec: BinarySize = map.next_value()?;
                                    Message::Binary { size: spec.size }
                                }
                                _ => {
                                    let v: serde_json::Value = map.next_value()?;
                                    let t = Template::compile_open(&v.to_string())
                                        .map_err(de::Error::custom)?;
                                    Message::Text(t)
                                }
                            });
                        }
                        "correlate" => correlate = Some(map.next_value::<Correlate>()?),
                        "replies" => {
                            let n: u32 = map.next_value()?;
                            if n == 0 {
                                return Err(de::Error::custom("replies must be at least 1"));
                            }
                            replies = Some(n);
                        }
                        "timeout" => timeout = Some(map.next_value::<PositiveDuration>()?.0),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["text", "binary", "json", "correlate", "replies", "timeout"],
                            ));
                        }
                    }
                }
                let message =
                    message.ok_or_else(|| de::Error::custom("set one of text, binary or json"))?;
                let correlate = correlate.unwrap_or(Correlate::None);
                if replies.is_some_and(|n| n > 1)
                    && matches!(correlate, Correlate::None | Correlate::Echo)
                {
                    return Err(de::Error::custom(
                        "replies: N needs correlate: { field } or { regex } (echo takes one reply per message)",
                    ));
                }
                Ok(SendStep {
                    message,
                    correlate,
                    replies: replies.unwrap_or(1),
                    timeout,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// `binary: { size }` in a send step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BinarySize {
    #[serde(deserialize_with = "de_binary_size")]
    size: usize,
}

fn de_binary_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(super::units::SizeVisitor {
        min: 1,
        max: 64 << 20,
    })
}

/// `expect:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    json: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    capture: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    on_timeout: OnTimeout,
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_positive_duration(d).map(Some)
}

/// Default `expect` timeout.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

impl<'de> Deserialize<'de> for ExpectStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExpectStep, D::Error> {
        let spec = ExpectSpec::deserialize(d)?;
        let given = [
            spec.contains.is_some(),
            spec.regex.is_some(),
            spec.json.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(de::Error::custom(
                "set at most one of contains, regex or json",
            ));
        }
        let matcher = if let Some(c) = spec.contains {
            Matcher::Contains(c)
        } else if let Some(r) = spec.regex {
            Matcher::Regex(regex(&r, false).map_err(de::Error::custom)?)
        } else if let Some(j) = spec.json {
            let mut pairs = Vec::new();
            for (k, v) in j {
                let value = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                        return Err(de::Error::custom(format!(
                            "json.{k}: compare one value per path (write a.b: value)"
                        )));
                    }
                    other => other.to_string(),
                };
                pairs.push((path(&k).map_err(de::Error::custom)?, value));
            }
            Matcher::Json(pairs)
        } else {
            Matcher::Any
        };
        let mut capture = Vec::new();
        for (name, v) in spec.capture.unwrap_or_default() {
            let c = match v {
                serde_json::Value::String(p) => Capture::Path(
                    path(&p).map_err(|e| de::Error::custom(format!("capture.{name}: {e}")))?,
                ),
                serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("regex") => {
                    let r = m["regex"].as_str().unwrap_or_default();
                    Capture::Regex(
                        regex(r, true)
                            .map_err(|e| de::Error::custom(format!("capture.{name}: {e}")))?,
                    )
                }
                _ => {
                    return Err(de::Error::custom(format!(
                        "capture.{name}: write a JSON path or {{ regex: '...(value)...' }}"
                    )));
                }
            };
            capture.push((name, c));
        }
        if spec.count == Some(0) {
            return Err(de::Error::custom("count must be at least 1"));
        }
        Ok(ExpectStep {
            matcher,
            timeout: spec.timeout.unwrap_or(EXPECT_TIMEOUT),
            capture,
            count: spec.count.unwrap_or(1),
            on_timeout: spec.on_timeout,
        })
    }
}

impl<'de> Deserialize<'de> for LoopStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LoopStep, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LoopStep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of steps, or { count: N, steps: [...] }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LoopStep, A::Error> {
                let steps = de_flow(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(LoopStep { count: None, steps })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LoopStep, A::Error> {
                let (mut count, mut steps) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "count" => {
                            let n: u64 = map.next_value()?;
                            if n == 0 {
                                return Err(de::Error::custom("count must be at least 1"));
                            }
                            count = Some(n);
                        }
                        "steps" => steps = Some(map.next_value_seed(FlowSeed)?),
                        other => return Err(de::Error::unknown_field(other, &["count", "steps"])),
                    }
                }
                Ok(LoopStep {
                    count,
                    steps: steps.ok_or_else(|| de::Error::missing_field("steps"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Seed reading a flow (for `steps:` inside a loop).
struct FlowSeed;

impl<'de> de::DeserializeSeed<'de> for FlowSeed {
    type Value = Vec<Step>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Step>, D::Error> {
        de_flow(d)
    }
}

/// Visits every step, loops included, in order.
pub fn walk<'a>(steps: &'a [Step], f: &mut dyn FnMut(&'a Step)) {
    for s in steps {
        f(s);
        if let Step::Loop(l) = s {
            walk(&l.steps, f);
        }
    }
}

/// Visits every step mutably, loops included, in order.
pub fn walk_mut(steps: &mut [Step], f: &mut dyn FnMut(&mut Step)) {
    for s in steps {
        f(s);
        if let Step::Loop(l) = s {
            walk_mut(&mut l.steps, f);
        }
    }
}

/// Whether the flow has a loop paced by the phase rate.
pub fn is_paced(steps: &[Step]) -> bool {
    let mut paced = false;
    walk(steps, &mut |s| {
        if let Step::Loop(LoopStep { count: None, .. }) = s {
            paced = true;
        }
    });
    paced
}

/// `roles:` a weighted population with its own flow. YAML:
/// `roles: { publisher: { weight: 1%, rate: 10/s, flow: [...] }, subscriber: { weight: 99%, flow: [...] } }`.
#[derive(Debug, Clone)]
pub struct Role {
    /// The role's name (the key), `{{role}}` in templates.
    pub name: String,
    /// Share of the connections, from 0 to 1 (weights are normalised).
    pub weight: f64,
    /// Total rate of this role's paced loop over its connections; default:
    /// the phase rates, spread over every connection with a paced loop.
    pub rate: Option<super::units::Rate>,
    /// What each connection of the role does.
    pub flow: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSpec {
    weight: Weight,
    #[serde(default)]
    rate: Option<super::units::Rate>,
    #[serde(deserialize_with = "de_flow")]
    flow: Vec<Step>,
}

/// A weight: `1%` or a plain number.
struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Weight;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a weight such as 1% or 3")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Weight, E> {
                let (num, scale) = match v.trim().strip_suffix('%') {
                    Some(n) => (n, 0.01),
                    None => (v.trim(), 1.0),
                };
                let n: f64 = num
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("\"{v}\" is not a weight such as 1% or 3")))?;
                self.visit_f64(n * scale)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Weight, E> {
                if !(v.is_finite() && v > 0.0) {
                    return Err(E::custom("a weight must be greater than 0"));
                }
                Ok(Weight(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Weight, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Weight, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads `roles:`, normalising the weights.
pub(crate) fn de_roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Role>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Role>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping of role name to { weight, flow }")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Role>, A::Error> {
            let mut roles: Vec<Role> = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                let spec: RoleSpec = map.next_value()?;
                roles.push(Role {
                    name,
                    weight: spec.weight.0,
                    rate: spec.rate,
                    flow: spec.flow,
                });
            }
            if roles.is_empty() {
                return Err(de::Error::custom("list at least one role"));
            }
            let total: f64 = roles.iter().map(|r| r.weight).sum();
            for r in &mut roles {
                r.weight /= total;
            }
            Ok(roles)
        }
    }
    d.deserialize_map(V)
}

/// `delivery:` push latency from a timestamp carried in received messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// JSON path of the timestamp (unix time), e.g. `ts`. Required.
    #[serde(deserialize_with = "de_path")]
    pub field: String,
    /// Unit of the timestamp: `s`, `ms`, `us` or `ns`. Default `us`.
    #[serde(default)]
    pub unit: TimeUnit,
}

pub(super) fn de_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    path(&s).map_err(de::Error::custom)
}

/// A unit of unix timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds (the default; `{{now_us}}` writes them).
    #[default]
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// Nanoseconds per unit.
    pub fn ns(self) -> u64 {
        match self {
            TimeUnit::S => 1_000_000_000,
            TimeUnit::Ms => 1_000_000,
            TimeUnit::Us => 1_000,
            TimeUnit::Ns => 1,
        }
    }
}

/// Checks the shape of a flow: at most one loop paced by the phase rate,
/// not inside another loop; nothing after `close`.
pub fn check_shape(steps: &[Step]) -> Result<(), String> {
    fn go(steps: &[Step], in_loop: bool, paced: &mut u32) -> Result<(), String> {
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Loop(l) => {
                    if l.count.is_none() {
                        if in_loop {
                            return Err("a loop paced by the phase rate cannot be inside another loop (give the inner one a count)".into());
                        }
                        *paced += 1;
                    }
                    go(&l.steps, true, paced)?;
                }
                Step::Close(_) if i + 1 < steps.len() => {
                    return Err("close ends the flow: no steps may follow it".into());
                }
                _ => {}
            }
        }
        Ok(())
    }
    let mut paced = 0;
    go(steps, false, &mut paced)?;
    if paced > 1 {
        return Err(
            "a flow may have only one loop paced by the phase rate (it runs until the phases end)"
                .into(),
        );
    }
    Ok(())
}

/// Capture names of a flow, in order of first appearance.
pub fn capture_names(steps: &[Step]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    walk(steps, &mut |s| {
        if let Step::Expect(e) = s {
            for (n, _) in &e.capture {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
    });
    names
}
